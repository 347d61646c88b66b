"""TRUST (AAAI 2026) on LaGTrAn (ICML 2024): caption-guided unsupervised domain adaptation.

- :mod:`~chronoclip.methods.trust.method`: the method (``chronoclip train trust``) and its variants;
- :mod:`~chronoclip.methods.trust.config`: its configuration;
- :mod:`~chronoclip.methods.trust.loss`: uncertainty weights, weighted / self-training CE, soft-contrastive;
- :mod:`~chronoclip.methods.trust.text`: the caption classifier;
- :mod:`~chronoclip.methods.trust.data`: paired, cycling source / target samples.
"""

from chronoclip.methods.trust.config import TrustConfig, TrustDataConfig
from chronoclip.methods.trust.method import Trust

__all__ = ["Trust", "TrustConfig", "TrustDataConfig"]
