"""DiST (ICCV 2023): frozen CLIP spatial encoder, dense temporal encoder, integration branch.

- :mod:`~chronoclip.methods.dist.method`: the method (``chronoclip train dist``) and its config;
- :mod:`~chronoclip.methods.dist.branch`: the trainable network;
- :mod:`~chronoclip.methods.dist.official`: loading the released checkpoints (key map).
"""

from chronoclip.methods.dist.method import DiST, DiSTConfig

__all__ = ["DiST", "DiSTConfig"]
