"""``cliptime``: developmental stage and timestamp from an image and its note (spec C.3–C.4).

- Towers: the CLIP image tower embeds the image, ``e_I [B, D]``; the text tower embeds the note,
  ``e_T [B, D]`` (both L2-normalised). Frozen towers (the default) leave no graph: the engine caches the
  image embeddings (:meth:`CLIPTime.frozen_features`) and the note embeddings are computed once per
  distinct note and memoised; ``finetune`` trains a tower at ``tower_lr_scale`` × the heads' lr. By
  default (``text_pooling=sentences``) each sentence of a note is embedded on its own and the sentence
  embeddings ``[S, D]`` are pooled by a learned attention query into ``e_T``.
- Fusion: ``h0 = [e_I ; e_T ; e_I ⊙ e_T] [B, 3D]`` → (Linear → LayerNorm → GELU → Dropout) × L →
  ``h [B, H]``. Image-only / text-only modes replace the missing embedding by a learned null vector.
- Heads: stage logits ``[B, K]``; time ``τ̂ = sigmoid(Linear(h)) [B]`` ∈ [0, 1], the time normalised
  by the training split's range, reported as ``t_min + τ̂ · t_range`` in the run's unit.
- Temporal embedding (training only): ``e_τ`` of the true τ is aligned with ``proj(h)`` by a
  soft-target InfoNCE (:mod:`~chronoclip.methods.cliptime.temporal`); at test τ can also be read out
  by retrieval over a τ grid.
- Loss: ``λ_c·CE + λ_r·MSE(τ̂, τ) + λ_a·L_align`` (defaults 1, 50, 0.5; the spec's λ_r is 1, see
  :class:`CLIPTimeConfig` for why the time term is weighted up).

The forward pass reads the image and the note only: no timestamp enters it at test time.

- [0] CLIPTime (spec C.1: CLIP, multi-modal, CE + MSE multi-task, temporal embeddings); the design
  details are ours (spec C.3–C.5).

Example:
    >>> from chronoclip.backbones import load_backbone
    >>> model = CLIPTime(CLIPTimeConfig(), load_backbone("tiny"), ["spore", "hyphae", "mycelium"])
    >>> model.sample_spec().fields
    ('timestamp', 'stage', 'series')
"""

from __future__ import annotations

import logging
import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from chronoclip.data.datasets import SampleSpec
from chronoclip.data.manifest import Manifest
from chronoclip.errors import ChronoclipError, ConfigError
from chronoclip.methods.base import Batch, FrozenFeatures, Method, ParamGroup
from chronoclip.methods.cliptime.config import TIME_UNITS, CLIPTimeConfig
from chronoclip.methods.cliptime.data import StageTimeDataset, TimeStats, elapsed_seconds, fit_time_stats
from chronoclip.methods.cliptime.temporal import TimeEmbedding, soft_alignment_loss
from chronoclip.methods.common import frame_embeddings

log = logging.getLogger(__name__)

_UNITS = tuple(TIME_UNITS)
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")


def sentences(note: str) -> list[str]:
    """The sentences of ``note`` (split after ``.``, ``!``, ``?`` or ``;`` and white space); ``[""]`` if empty."""
    return [part for part in (p.strip() for p in _SENTENCE_END.split(note)) if part] or [""]


def _fusion(in_dim: int, hidden: int, layers: int, dropout: float) -> nn.Sequential:
    blocks: list[nn.Module] = []
    for i in range(layers):
        blocks += [nn.Linear(in_dim if i == 0 else hidden, hidden), nn.LayerNorm(hidden), nn.GELU(),
                   nn.Dropout(dropout)]
    return nn.Sequential(*blocks)


class CLIPTime(Method):
    """Image ``[B,3,H,W]`` (or cached ``[B,1,D]``) and note → stage logits ``[B,K]`` and ``τ̂ [B]``."""

    name = "cliptime"
    Config = CLIPTimeConfig
    protocols = ("classify", "regress")
    run_protocol = "stage_time"
    best_metric = ("mae", "min")
    label_column = "stage"
    # buffers fitted on the training split (see set_time_stats)
    time_min: torch.Tensor
    time_range: torch.Tensor
    unit_index: torch.Tensor
    stage_order: torch.Tensor
    stage_bounds: torch.Tensor

    def __init__(self, cfg: CLIPTimeConfig, backbone: Any, class_names: list[str]) -> None:
        super().__init__(cfg, backbone, class_names)
        if len(class_names) < 2:
            raise ConfigError(f"{self.name} needs at least 2 stages in the training split's 'stage' column, "
                              f"got {class_names}")
        backbone.freeze(image=cfg.image_tower == "frozen" or not cfg.uses_image,
                        text=cfg.text_tower == "frozen" or not cfg.uses_text)
        dim = backbone.embed_dim
        hidden = cfg.hidden or dim
        self.null_image = None if cfg.uses_image else nn.Parameter(torch.zeros(dim))
        self.null_text = None if cfg.uses_text else nn.Parameter(torch.zeros(dim))
        # attention query over a note's sentence embeddings; zero = mean pooling at the start
        pooled = cfg.uses_text and cfg.text_pooling == "sentences"
        self.sentence_query = nn.Parameter(torch.zeros(dim)) if pooled else None
        self.fusion = _fusion(3 * dim, hidden, cfg.fusion_layers, cfg.dropout)
        self.stage_head = nn.Linear(hidden, len(class_names))
        self.time_head = nn.Linear(hidden, 1)
        aligned = cfg.loss_weights[2] > 0
        self.time_embedding = TimeEmbedding(cfg.fourier_frequencies, hidden) if aligned else None
        self.align_proj = nn.Linear(hidden, hidden) if aligned else None
        # fitted on the training split (dataset(train=True)); saved with the checkpoint
        self.register_buffer("time_min", torch.zeros((), dtype=torch.float64))
        self.register_buffer("time_range", torch.zeros((), dtype=torch.float64))
        self.register_buffer("unit_index", torch.zeros((), dtype=torch.long))
        self.register_buffer("stage_order", torch.arange(len(class_names)))
        self.register_buffer("stage_bounds", torch.zeros(len(class_names) - 1, dtype=torch.float64))
        self._text_memo: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ data
    def sample_spec(self) -> SampleSpec:
        cfg: CLIPTimeConfig = self.cfg
        return SampleSpec(modality="image", frames=1, image_size=self.backbone.image_size,
                          mean=tuple(self.backbone.mean), std=tuple(self.backbone.std), train_sampling="uniform",
                          augment=cfg.augment, text=True, label=False, fields=("timestamp", "stage", "series"))

    def dataset(self, rows: Manifest, train: bool, seed: int = 0) -> Dataset[dict[str, Any]]:
        """Samples with ``stage_index``, ``time`` and ``tau``; a training split first fits the time stats."""
        cfg: CLIPTimeConfig = self.cfg
        if train:
            self.set_time_stats(fit_time_stats(rows, self.class_names, cfg.time_origin, cfg.time_unit))
            truncated, total = self.truncation(sorted({r.get("text") or "" for r in rows}))
            if truncated:
                log.warning("%d of %d distinct notes are longer than the text tower's %d tokens and are cut",
                            truncated, total, cfg.context_length or self.backbone.text_context_length)
        elif not self.fitted:
            raise ChronoclipError(f"{self.name}: the time normalisation is not fitted; build the training split's "
                                  "data set first (dataset(rows, train=True)) or load a trained run")
        seconds = elapsed_seconds(rows, cfg.time_origin)
        times = [None if s is None else s / self.unit_seconds for s in seconds]
        return StageTimeDataset(rows, self.sample_spec(), self.class_names, train, seed, times,
                                float(self.time_min), float(self.time_range))

    def set_time_stats(self, stats: TimeStats) -> None:
        """Store the training split's time unit, range and stage boundaries in the model's buffers."""
        self.time_min.fill_(stats.t_min)
        self.time_range.fill_(stats.t_range)
        self.unit_index.fill_(_UNITS.index(stats.unit))
        self.stage_order.copy_(torch.as_tensor(stats.order))
        self.stage_bounds.copy_(torch.as_tensor(stats.bounds))

    @property
    def fitted(self) -> bool:
        return bool(self.time_range > 0)

    @property
    def time_unit(self) -> str:
        """The unit reported times are in (e.g. ``hours``)."""
        return _UNITS[int(self.unit_index)]

    @property
    def unit_seconds(self) -> float:
        return TIME_UNITS[self.time_unit]

    def to_time(self, tau: torch.Tensor) -> torch.Tensor:
        """Normalised ``τ [N]`` → time in :attr:`time_unit` (float64)."""
        return self.time_min + tau.double() * self.time_range

    def to_tau(self, time: torch.Tensor) -> torch.Tensor:
        """Time in :attr:`time_unit` ``[N]`` → normalised τ (float64)."""
        return (time.double() - self.time_min) / self.time_range

    def stage_from_tau(self, tau: torch.Tensor) -> torch.Tensor:
        """The stage index ``[N]`` that τ implies under the training split's stage boundaries."""
        position = torch.searchsorted(self.stage_bounds, tau.double().contiguous(), right=True)
        return self.stage_order[position]

    def text_units(self, note: str) -> list[str]:
        """The texts the text tower embeds for ``note``: its sentences, or the whole note."""
        cfg: CLIPTimeConfig = self.cfg
        return sentences(note) if cfg.text_pooling == "sentences" else [note]

    def truncation(self, texts: list[str]) -> tuple[int, int]:
        """How many of the notes ``texts`` lose tokens at the context (a note counts once if any of the
        texts embedded for it is cut), and how many notes there are."""
        cfg: CLIPTimeConfig = self.cfg
        if not texts:
            return 0, 0
        context = cfg.context_length or None
        units = [self.text_units(t) for t in texts]
        distinct = {u for group in units for u in group}
        cut = {u for u in distinct if self.backbone.tokenize([u], context)["num_truncated"]}
        return sum(any(u in cut for u in group) for group in units), len(texts)

    # ------------------------------------------------------------------ model
    def frozen_features(self) -> FrozenFeatures | None:
        cfg: CLIPTimeConfig = self.cfg
        return frame_embeddings(self.backbone) if cfg.image_tower == "frozen" else None

    def param_groups(self) -> list[ParamGroup]:
        cfg: CLIPTimeConfig = self.cfg
        towers = [p for p in self.backbone.parameters() if p.requires_grad]
        heads = [p for name, p in self.named_parameters() if p.requires_grad and not name.startswith("backbone.")]
        groups = [ParamGroup("heads", heads)]
        return groups + ([ParamGroup("towers", towers, lr_scale=cfg.tower_lr_scale)] if towers else [])

    def image_embedding(self, batch: Batch) -> torch.Tensor:
        """``e_I [B, D]``: cached ``features [B, 1, D]`` or ``pixels [B, (1,) 3, H, W]`` through the tower."""
        cfg: CLIPTimeConfig = self.cfg
        if "features" in batch:
            features = batch["features"]
            return features[:, 0] if features.dim() == 3 else features
        pixels = batch["pixels"]
        pixels = pixels[:, 0] if pixels.dim() == 5 else pixels
        with torch.set_grad_enabled(cfg.image_tower == "finetune" and torch.is_grad_enabled()):
            return self.backbone.encode_image(pixels, normalize=True)

    def text_embedding(self, texts: list[str]) -> torch.Tensor:
        """``e_T [B, D]`` of the notes ``texts``: each note's units (:meth:`text_units`) are embedded,
        ``[S, D]``, and pooled (:meth:`pool_sentences`). A frozen tower embeds each distinct unit once
        (no graph) and reuses it; a fine-tuned one embeds each distinct unit of the batch once (frames of
        a series share their note)."""
        cfg: CLIPTimeConfig = self.cfg
        context = cfg.context_length or None
        groups = [self.text_units(t) for t in texts]
        distinct = sorted({u for group in groups for u in group})
        if cfg.text_tower == "finetune":
            embedded = self.backbone.encode_text(self.backbone.tokenize(distinct, context), normalize=True)
            table = dict(zip(distinct, embedded, strict=True))
        else:
            missing = [u for u in distinct if u not in self._text_memo]
            if missing:
                with torch.no_grad():
                    embedded = self.backbone.encode_text(self.backbone.tokenize(missing, context), normalize=True)
                self._text_memo.update(zip(missing, embedded, strict=True))
            table = self._text_memo
        device = self.time_head.weight.device
        if self.sentence_query is None:
            return torch.stack([table[group[0]] for group in groups]).to(device)
        width = max(len(group) for group in groups)
        padded = torch.zeros(len(groups), width, self.backbone.embed_dim, device=device)
        mask = torch.zeros(len(groups), width, dtype=torch.bool, device=device)
        for i, group in enumerate(groups):
            padded[i, : len(group)] = torch.stack([table[u] for u in group]).to(device)
            mask[i, : len(group)] = True
        return self.pool_sentences(padded, mask)

    def pool_sentences(self, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention pooling of sentence embeddings ``[B, S, D]`` (``mask [B, S]``: real sentences) by the
        learned query: ``e_T = normalize(Σ_s softmax_s(√D · q · e_s) e_s)`` ``[B, D]``. The √D scale lets
        a small query (the heads' lr, weight decay) already prefer one unit-norm sentence embedding."""
        assert self.sentence_query is not None
        scale = embeddings.shape[-1] ** 0.5
        scores = (scale * embeddings @ self.sentence_query).masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=1)
        return F.normalize((weights[..., None] * embeddings).sum(dim=1), dim=-1)

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """``stage_logits [B, K]``, ``tau [B]`` ∈ [0, 1], ``hidden [B, H]`` and, with the temporal
        embedding, ``time_query [B, H]`` (L2-normalised). Reads the image and ``text`` only."""
        texts = list(batch["text"])
        size = len(texts)
        e_image = self.image_embedding(batch) if self.null_image is None else self.null_image.expand(size, -1)
        e_text = self.text_embedding(texts) if self.null_text is None else self.null_text.expand(size, -1)
        hidden = self.fusion(torch.cat([e_image, e_text, e_image * e_text], dim=-1))
        outputs = {"stage_logits": self.stage_head(hidden), "tau": torch.sigmoid(self.time_head(hidden))[:, 0],
                   "hidden": hidden}
        if self.align_proj is not None:
            outputs["time_query"] = F.normalize(self.align_proj(hidden), dim=-1)
        return outputs

    def retrieve_tau(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """``τ̂_ret [B]`` by retrieval over the τ grid, or ``None`` without a temporal embedding."""
        cfg: CLIPTimeConfig = self.cfg
        if self.time_embedding is None:
            return None
        return self.time_embedding.retrieve(outputs["time_query"], cfg.retrieval_grid)

    def loss(self, outputs: dict[str, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
        cfg: CLIPTimeConfig = self.cfg
        stage_weight, time_weight, align_weight = cfg.loss_weights
        logits, tau_hat = outputs["stage_logits"], outputs["tau"]
        stages, tau = batch["stage_index"], batch["tau"].to(tau_hat.dtype)
        labelled, timed = stages >= 0, ~tau.isnan()
        zero = tau_hat.sum() * 0
        ce = F.cross_entropy(logits[labelled].float(), stages[labelled]) if labelled.any() else zero
        regress = F.mse_loss if cfg.time_loss == "mse" else F.smooth_l1_loss
        time = regress(tau_hat[timed].float(), tau[timed].float()) if timed.any() else zero
        parts = {"ce": ce, "time": time}
        total = stage_weight * ce + time_weight * time
        if self.time_embedding is not None and int(timed.sum()) > 1:
            keys = self.time_embedding(tau[timed])
            parts["align"] = soft_alignment_loss(outputs["time_query"][timed].float(), keys, tau[timed],
                                                 cfg.align_sigma, cfg.align_temperature)
            total = total + align_weight * parts["align"]
        return {"loss": total, **{k: v.detach() for k, v in parts.items()}}

    def predict(self, batch: Batch) -> list[dict[str, Any]]:
        """Per sample: the stage with every stage's probability, and the time in :attr:`time_unit`
        (head readout, and the retrieval readout when the temporal embedding exists)."""
        outputs = self(batch)
        probabilities = outputs["stage_logits"].float().softmax(dim=-1)
        times = self.to_time(outputs["tau"])
        retrieved = self.retrieve_tau(outputs)
        results = []
        for i, row in enumerate(probabilities):
            ranked = sorted(zip(self.class_names, row.tolist(), strict=True), key=lambda pair: -pair[1])
            result: dict[str, Any] = {"stage": ranked[0][0],
                                      "stage_probabilities": {name: round(p, 4) for name, p in ranked},
                                      "time": round(float(times[i]), 4), "time_unit": self.time_unit}
            if retrieved is not None:
                result["time_retrieval"] = round(float(self.to_time(retrieved[i : i + 1])[0]), 4)
            results.append(result)
        return results
