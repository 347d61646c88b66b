"""Configuration of ``cliptime`` (spec C.3–C.4; every design choice of the spec is a switch here)."""

from __future__ import annotations

from dataclasses import dataclass

from chronoclip.config import require_one_of
from chronoclip.errors import ConfigError

#: Named ablations of spec C.3: which inputs the fusion sees, or which loss term is switched off.
MODES = ("image+text", "image-only", "text-only", "single-task", "no-temporal-embedding")
#: How a CLIP tower is used: frozen (its outputs cached or memoised) or fine-tuned at ``tower_lr_scale``.
TOWER_MODES = ("frozen", "finetune")
#: Seconds per time unit; ``auto`` picks the largest unit in which the training range is at least 10.
TIME_UNITS: dict[str, float] = {"seconds": 1.0, "minutes": 60.0, "hours": 3600.0, "days": 86400.0}
#: ``series``: time is elapsed since the first frame of the row's series; ``absolute``: the timestamp itself.
TIME_ORIGINS = ("series", "absolute")
TIME_LOSSES = ("mse", "smooth_l1")
#: How a note becomes ``e_T``: ``note`` embeds it whole; ``sentences`` embeds each sentence and pools them.
TEXT_POOLINGS = ("note", "sentences")


@dataclass
class CLIPTimeConfig:
    """Configuration of ``cliptime``. Defaults are the spec's ([ours] where the paper is silent), except λ_r.

    Attributes:
        mode: ``image+text`` (the full model); ``image-only`` / ``text-only`` replace the other
            embedding by a learned null vector; ``single-task`` trains the time head alone
            (λ_stage = 0); ``no-temporal-embedding`` drops the alignment loss (λ_align = 0) and the
            retrieval readout.
        hidden: width of the fused representation h and of the temporal embedding; 0 = the towers'
            embedding width D (the spec's 3D → D fusion, 1536 → 512 for ViT-B/32).
        fusion_layers: Linear → LayerNorm → GELU → Dropout blocks of the fusion MLP (spec: 1).
        dropout: dropout of the fusion MLP.
        lambda_stage, lambda_time, lambda_align: loss weights λ_c, λ_r, λ_a of the full model. λ_r is 50,
            not the spec's 1 [ours]: the spec sets λ_c = λ_r = 1 because "MSE is on normalised τ, so the
            two task scales match", but they do not — an MSE of τ ∈ [0, 1] near convergence is ~0.005
            (4 % of the range) against a cross-entropy of ~0.1, so with λ_r = 1 the time term barely
            trains the fusion (growth benchmark, 50 training series: MAE 3.61 h at λ_r = 1, 2.13 h at 50).
        time_loss: ``mse`` (faithful) or ``smooth_l1`` on normalised time τ.
        fourier_frequencies: k = 1..K of the Fourier features [sin 2πkτ, cos 2πkτ].
        align_sigma: width σ of the soft targets q_ij ∝ exp(−|τ_i − τ_j| / σ).
        align_temperature: temperature of the alignment InfoNCE over cosine similarities.
        retrieval_grid: points of the τ grid the retrieval readout searches.
        image_tower, text_tower: ``frozen`` or ``finetune`` (see :data:`TOWER_MODES`).
        tower_lr_scale: learning rate of fine-tuned towers relative to the heads' (spec: 1e-5 / 1e-3).
        time_unit: unit of reported times (:data:`TIME_UNITS` or ``auto``).
        time_origin: :data:`TIME_ORIGINS`.
        augment: random resized crop + horizontal flip at training time (no hue jitter: colour carries
            time in the synthetic world); disables the feature cache.
        context_length: text tokens per embedded text (0 = the text tower's maximum); longer texts are
            cut and counted in the truncation rate.
        text_pooling: ``note`` embeds the whole note (one pass, cut at the context); ``sentences``
            [ours] embeds each sentence of the note on its own and pools them with a learned attention
            query (initialised to the mean), so a long note is not cut and the sentence that carries the
            information (e.g. the temperature) is not drowned in the pooled token of a long text.
    """

    mode: str = "image+text"
    hidden: int = 0
    fusion_layers: int = 1
    dropout: float = 0.1
    lambda_stage: float = 1.0
    lambda_time: float = 50.0
    lambda_align: float = 0.5
    time_loss: str = "mse"
    fourier_frequencies: int = 16
    align_sigma: float = 0.05
    align_temperature: float = 0.1
    retrieval_grid: int = 101
    image_tower: str = "frozen"
    text_tower: str = "frozen"
    tower_lr_scale: float = 0.01
    time_unit: str = "auto"
    time_origin: str = "series"
    augment: bool = False
    context_length: int = 0
    text_pooling: str = "sentences"

    def __post_init__(self) -> None:
        require_one_of({"model.mode": (self.mode, MODES), "model.image_tower": (self.image_tower, TOWER_MODES),
                        "model.text_tower": (self.text_tower, TOWER_MODES),
                        "model.time_origin": (self.time_origin, TIME_ORIGINS),
                        "model.time_loss": (self.time_loss, TIME_LOSSES),
                        "model.text_pooling": (self.text_pooling, TEXT_POOLINGS),
                        "model.time_unit": (self.time_unit, ("auto", *TIME_UNITS))})
        if self.hidden < 0 or self.fusion_layers < 1 or self.fourier_frequencies < 1 or self.retrieval_grid < 2:
            raise ConfigError("model.hidden must be >= 0, model.fusion_layers and model.fourier_frequencies positive "
                              "and model.retrieval_grid at least 2")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout={self.dropout} must be in [0, 1)")
        weights = {"lambda_stage": self.lambda_stage, "lambda_time": self.lambda_time,
                   "lambda_align": self.lambda_align}
        negative = [f"model.{k}={v}" for k, v in weights.items() if v < 0]
        if negative or not any(self.loss_weights):
            raise ConfigError(f"loss weights must be >= 0 with at least one positive: {negative or weights}")
        if self.align_sigma <= 0 or self.align_temperature <= 0 or self.tower_lr_scale <= 0:
            raise ConfigError("model.align_sigma, model.align_temperature and model.tower_lr_scale must be positive")
        if self.context_length < 0:
            raise ConfigError(f"model.context_length={self.context_length} must be >= 0")

    @property
    def uses_image(self) -> bool:
        """Whether the fusion sees the image embedding (else a learned null vector)."""
        return self.mode != "text-only"

    @property
    def uses_text(self) -> bool:
        """Whether the fusion sees the note's embedding (else a learned null vector)."""
        return self.mode != "image-only"

    @property
    def loss_weights(self) -> tuple[float, float, float]:
        """The effective (λ_stage, λ_time, λ_align) after the mode's ablation."""
        stage = 0.0 if self.mode == "single-task" else self.lambda_stage
        align = 0.0 if self.mode == "no-temporal-embedding" else self.lambda_align
        return stage, self.lambda_time, align
