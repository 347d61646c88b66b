"""CrissCross (Sarkar & Etemad, AAAI 2023): audio-visual SimSiam with relaxed cross-modal synchronicity.

Each training item gives two time points t1, t2 of one clip, so four inputs v1, v2 (video) and a1, a2
(audio), each strongly augmented on its own. Per modality m an encoder (backbone + projector) gives
``z ∈ R^d`` and a predictor gives ``p = h_m(z)``. With ``D(p, z) = −⟨p/‖p‖, sg(z)/‖z‖⟩`` (batch mean) and
the symmetric pair loss ``L(x, y) = ½ D(h_x(z_x), z_y) + ½ D(h_y(z_y), z_x)``, the objective is

    L = [L(v1,v2) + L(a1,a2)  (intra)  +  L(v1,a1) + L(v2,a2)  (sync)  +  L(v1,a2) + L(a1,v2)  (async)] / n

with ``n = 2 × enabled groups``. How relaxed the async pairs are is set only by the sampler
(``sampler.mode``, :mod:`chronoclip.data.sampling`); with ``none`` (t1 = t2) async pairs are sync pairs
under other augmentations.

Shapes (released K400 config): video ``[B, 8, 3, 112, 112]`` → R(2+1)D-18 ``[B, 512]`` → projector
``[B, 2048]`` → predictor ``[B, 2048]``; audio log-mel ``[B, 1, 80, 201]`` → ResNet-18 ``[B, 512]`` → the
same head sizes. ``model.video_encoder=clip`` uses the run's CLIP image tower instead (frames through the
tower, mean over time), so CrissCross composes with the rest of the library.

Evaluation (run protocol ``av_probe``): linear probes of the class on frozen backbone features of both
modalities (fitted on the training split, scored on the test split).

- [0] Sarkar & Etemad 2023, https://arxiv.org/abs/2111.05329; code pritamqu/CrissCross
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from chronoclip.backbones.av import AudioResNet, R2Plus1D
from chronoclip.config import require_at_least, require_one_of
from chronoclip.data.av import AVDataset, AVSpec
from chronoclip.data.av_augment import AUGMENT_LEVELS, IMAGENET_MEAN, IMAGENET_STD
from chronoclip.data.datasets import SampleSpec
from chronoclip.data.manifest import Manifest
from chronoclip.data.sampling import SAMPLER_MODES
from chronoclip.errors import ConfigError
from chronoclip.io.audio import MelConfig
from chronoclip.methods.base import Batch, Method, ParamGroup

log = logging.getLogger(__name__)

VIDEO_ENCODERS = ("r2plus1d", "clip")
#: The loss's pair groups: each a pair of (x, y) input pairs.
PAIR_GROUPS: dict[str, tuple[tuple[str, str], ...]] = {
    "intra": (("v1", "v2"), ("a1", "a2")),
    "sync": (("v1", "a1"), ("v2", "a2")),
    "async": (("v1", "a2"), ("a1", "v2")),
}


@dataclass
class SamplerConfig:
    """The sampler section (set as ``sampler.mode=...`` on the command line).

    Attributes:
        mode: ``none`` (strict sync), ``mild`` (overlapped, the released default), ``medium`` (adjacent),
            ``far`` (half the clip apart) or ``random``.
    """

    mode: str = "mild"

    def __post_init__(self) -> None:
        require_one_of({"sampler.mode": (self.mode, SAMPLER_MODES)})


@dataclass
class CrissCrossConfig:
    """Configuration of ``crisscross`` (defaults: the released Kinetics-400 recipe's model).

    Attributes:
        video_encoder: ``r2plus1d`` (R(2+1)D-18) or ``clip`` (the run backbone's image tower per frame).
        clip_trainable: with ``clip``: train the image tower (else it is frozen).
        video_width, audio_width: first-stage channels of R(2+1)D / the audio ResNet (64 = the -18 nets).
        frames, fps: video window (8 frames at 16 fps = 0.5 s).
        image_size: video crop side (112; the CLIP tower's own size with ``clip``).
        audio_seconds: audio window (2 s), containing the video window.
        sample_rate, n_fft, hop_length, n_mels: the log-mel front end (16 kHz, 1024, 160, 80 → 80×201).
        mel_mean, mel_std: fixed global log-mel statistics (CrissCross's; recompute for another front end).
        proj_dim, proj_hidden, proj_layers: projector (2048, 2048, 3 layers; 2 drops the middle one).
        pred_hidden: predictor bottleneck (512).
        loss_intra, loss_sync, loss_async: the pair groups in the loss.
        predictor_lr_scale: predictors' constant lr relative to the base lr (2e-3 / 2e-4 = 10).
        augment: train-time augmentation of both modalities: ``strong`` (the released recipe, spec A.2),
            ``light`` (no hue rotation or grayscale, crops of >= 40 %, spectrogram crops along time only:
            for data whose classes differ by colour or pitch) or ``none``.
        eval_clips: evenly spaced windows per clip at evaluation (features averaged by the probe).
        missing_audio: ``skip`` rows without sound (counted, logged) or feed ``silence``.
        cache_media: decode each file once and keep it in memory (small data sets).
        collapse_warn: warn when the per-dimension std of normalised z falls below this fraction of the
            healthy ``1/√proj_dim``.
        sampler: the sampler section.
    """

    video_encoder: str = "r2plus1d"
    clip_trainable: bool = True
    video_width: int = 64
    audio_width: int = 64
    frames: int = 8
    fps: float = 16.0
    image_size: int = 112
    audio_seconds: float = 2.0
    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 160
    n_mels: int = 80
    mel_mean: float = -5.3688107
    mel_std: float = 4.410007
    proj_dim: int = 2048
    proj_hidden: int = 2048
    proj_layers: int = 3
    pred_hidden: int = 512
    loss_intra: bool = True
    loss_sync: bool = True
    loss_async: bool = True
    predictor_lr_scale: float = 10.0
    augment: str = "strong"
    eval_clips: int = 3
    missing_audio: str = "skip"
    cache_media: bool = False
    collapse_warn: float = 0.1
    sampler: SamplerConfig = field(default_factory=SamplerConfig)

    def __post_init__(self) -> None:
        require_one_of({"model.video_encoder": (self.video_encoder, VIDEO_ENCODERS),
                        "model.augment": (self.augment, AUGMENT_LEVELS)})
        require_at_least({"model.video_width": self.video_width, "model.audio_width": self.audio_width,
                          "model.proj_dim": self.proj_dim, "model.proj_hidden": self.proj_hidden,
                          "model.pred_hidden": self.pred_hidden, "model.eval_clips": self.eval_clips})
        if self.proj_layers not in (2, 3):
            raise ConfigError(f"model.proj_layers={self.proj_layers} must be 2 or 3")
        if not (self.loss_intra or self.loss_sync or self.loss_async):
            raise ConfigError("model.loss_intra, loss_sync and loss_async are all off: enable at least one group")
        if self.predictor_lr_scale <= 0 or self.collapse_warn < 0:
            raise ConfigError("model.predictor_lr_scale must be > 0 and model.collapse_warn >= 0")
        if isinstance(self.sampler, SamplerConfig):
            self.sampler.__post_init__()

    def groups(self) -> list[str]:
        """The enabled pair groups."""
        flags = {"intra": self.loss_intra, "sync": self.loss_sync, "async": self.loss_async}
        return [name for name, on in flags.items() if on]


def projector(in_dim: int, hidden: int, out: int, layers: int) -> nn.Sequential:
    """SimSiam projector: (Linear, BN, ReLU) × (layers − 1), then Linear, BN (no ReLU)."""
    blocks: list[nn.Module] = []
    width = in_dim
    for _ in range(layers - 1):
        blocks += [nn.Linear(width, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
        width = hidden
    return nn.Sequential(*blocks, nn.Linear(width, out, bias=False), nn.BatchNorm1d(out))


def predictor(dim: int, hidden: int) -> nn.Sequential:
    """SimSiam predictor: a bottleneck Linear, BN, ReLU, then Linear back to ``dim`` (no BN)."""
    return nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, dim))


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``D(p, z) = −mean_b ⟨p_b/‖p_b‖, sg(z_b)/‖z_b‖⟩`` in [−1, 1]; no gradient reaches ``z``."""
    return -(F.normalize(p, dim=-1) * F.normalize(z.detach(), dim=-1)).sum(dim=-1).mean()


def pair_loss(outputs: dict[str, torch.Tensor], x: str, y: str) -> torch.Tensor:
    """Symmetric ``L(x, y) = ½ D(p_x, z_y) + ½ D(p_y, z_x)`` for inputs named e.g. ``v1``, ``a2``."""
    return 0.5 * negative_cosine(outputs[f"p_{x}"], outputs[f"z_{y}"]) + \
        0.5 * negative_cosine(outputs[f"p_{y}"], outputs[f"z_{x}"])


def normalised_std(z: torch.Tensor) -> torch.Tensor:
    """SimSiam's collapse check: mean over dimensions of the batch std of ``z/‖z‖`` (≈ 1/√d when healthy)."""
    return F.normalize(z.detach().float(), dim=-1).std(dim=0).mean()


class CrissCross(Method):
    """Video and audio encoders with per-modality SimSiam heads, trained on the six-pair loss."""

    name = "crisscross"
    Config = CrissCrossConfig
    protocols = ("linear_probe",)
    run_protocol = "av_probe"
    best_metric = ("probe_top1", "max")

    def __init__(self, cfg: CrissCrossConfig, backbone: Any, class_names: list[str]) -> None:
        super().__init__(cfg, backbone, class_names)
        self.use_clip = cfg.video_encoder == "clip"
        backbone.freeze(image=not (self.use_clip and cfg.clip_trainable), text="all")
        self.video_net = None if self.use_clip else R2Plus1D(cfg.video_width)
        video_dim = backbone.embed_dim if self.use_clip else cfg.video_width * 8
        self.audio_net = AudioResNet(cfg.audio_width)
        self.video_projector = projector(video_dim, cfg.proj_hidden, cfg.proj_dim, cfg.proj_layers)
        self.audio_projector = projector(self.audio_net.out_dim, cfg.proj_hidden, cfg.proj_dim, cfg.proj_layers)
        self.video_predictor = predictor(cfg.proj_dim, cfg.pred_hidden)
        self.audio_predictor = predictor(cfg.proj_dim, cfg.pred_hidden)
        self._collapsed: set[str] = set()

    # ------------------------------------------------------------------------------------ data
    def av_spec(self) -> AVSpec:
        """What the method's samples hold (windows, front ends, sampler mode)."""
        cfg: CrissCrossConfig = self.cfg
        mel = MelConfig(sample_rate=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
                        normalize=True, mean=cfg.mel_mean, std=cfg.mel_std)
        size = self.backbone.image_size if self.use_clip else cfg.image_size
        mean, std = (tuple(self.backbone.mean), tuple(self.backbone.std)) if self.use_clip \
            else (IMAGENET_MEAN, IMAGENET_STD)
        return AVSpec(frames=cfg.frames, fps=cfg.fps, image_size=size, mean=mean, std=std,
                      audio_seconds=cfg.audio_seconds, mel=mel, mode=cfg.sampler.mode, augment=cfg.augment,
                      eval_clips=cfg.eval_clips, missing_audio=cfg.missing_audio, cache_media=cfg.cache_media)

    def sample_spec(self) -> SampleSpec:
        spec = self.av_spec()
        return SampleSpec(modality="video", frames=spec.frames, image_size=spec.image_size, mean=spec.mean,
                          std=spec.std, label=True, eval_clips=spec.eval_clips)

    def dataset(self, rows: Manifest, train: bool, seed: int = 0) -> Dataset[dict[str, Any]]:
        return AVDataset(rows, self.av_spec(), self.class_names, train=train, seed=seed)

    # ------------------------------------------------------------------------------------ model
    def video_features(self, video: torch.Tensor) -> torch.Tensor:
        """Backbone features ``[B, D]`` of ``[B, T, 3, S, S]`` clips."""
        if self.video_net is not None:
            return self.video_net(video)
        cfg: CrissCrossConfig = self.cfg
        with torch.set_grad_enabled(cfg.clip_trainable and torch.is_grad_enabled()):
            return self.backbone.encode_video_frames(video).mean(dim=1)

    def audio_features(self, audio: torch.Tensor) -> torch.Tensor:
        """Backbone features ``[B, 8·audio_width]`` of log-mel ``[B, 1, M, F]``."""
        return self.audio_net(audio)

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Training batch (``video1/2``, ``audio1/2``) → ``z_*`` and ``p_*`` ``[B, proj_dim]`` for v1, v2, a1, a2.

        Both clips of a modality go through the encoder as one batch of 2B, so BatchNorm sees both.
        An evaluation batch (``video``/``audio`` ``[B, V, ...]``) gives :meth:`embed`'s features instead.
        """
        if "video1" not in batch:
            return self.embed(batch)
        outputs: dict[str, torch.Tensor] = {}
        for modality, features, project, predict in (
                ("v", self.video_features, self.video_projector, self.video_predictor),
                ("a", self.audio_features, self.audio_projector, self.audio_predictor)):
            key = "video" if modality == "v" else "audio"
            both = torch.cat([batch[f"{key}1"], batch[f"{key}2"]])
            z = project(features(both))
            p = predict(z)
            size = batch[f"{key}1"].shape[0]
            outputs.update({f"z_{modality}1": z[:size], f"z_{modality}2": z[size:],
                            f"p_{modality}1": p[:size], f"p_{modality}2": p[size:]})
        return outputs

    def embed(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Frozen features for probes: ``video``/``audio`` ``[B, V, ...]`` → ``[B, V, D]`` backbone features
        (whichever modalities the batch holds)."""
        result = {}
        for key, features in (("video", self.video_features), ("audio", self.audio_features)):
            if key in batch:
                views = batch[key]
                result[key] = features(views.flatten(0, 1)).view(*views.shape[:2], -1)
        return result

    def pair_losses(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``L(x, y)`` of every pair, named ``"x-y"`` (e.g. ``"v1-a2"``), all six whatever is enabled."""
        return {f"{x}-{y}": pair_loss(outputs, x, y) for pairs in PAIR_GROUPS.values() for x, y in pairs}

    def loss(self, outputs: dict[str, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
        """The normalised sum of the enabled groups' pair losses, with group means, the collapse monitor
        (``video.z_std``, ``audio.z_std``) and the realised window offsets as logged parts."""
        cfg: CrissCrossConfig = self.cfg
        groups = cfg.groups()
        parts: dict[str, torch.Tensor] = {}
        total = torch.zeros((), device=outputs["z_v1"].device)
        for group in groups:
            group_sum = torch.stack([pair_loss(outputs, x, y) for x, y in PAIR_GROUPS[group]]).sum()
            total = total + group_sum
            parts[group] = group_sum.detach() / len(PAIR_GROUPS[group])
        parts["loss"] = total / (2 * len(groups))
        for modality, name in (("v", "video"), ("a", "audio")):
            std = normalised_std(torch.cat([outputs[f"z_{modality}1"], outputs[f"z_{modality}2"]]))
            parts[f"{name}.z_std"] = std
            self._watch_collapse(name, float(std))
        for key in ("video_offset", "audio_offset", "fallback"):
            if key in batch:
                parts[key] = batch[key].float().mean()
        return parts

    def _watch_collapse(self, name: str, std: float) -> None:
        """Warn once when ``name``'s std of normalised z falls below ``collapse_warn/√d`` (re-armed on recovery)."""
        cfg: CrissCrossConfig = self.cfg
        threshold = cfg.collapse_warn / math.sqrt(cfg.proj_dim)
        if std < threshold and name not in self._collapsed and self.training:
            self._collapsed.add(name)
            log.warning("crisscross: %s embeddings may be collapsing: std of normalised z %.2g < %.2g "
                        "(healthy ≈ 1/√%d = %.3g)", name, std, threshold, cfg.proj_dim, 1 / math.sqrt(cfg.proj_dim))
        elif std >= threshold:
            self._collapsed.discard(name)

    def predict(self, batch: Batch) -> list[dict[str, Any]]:
        """Per sample: the cosine similarity of its video and audio projections (views averaged)."""
        features = self.embed(batch)
        z_video = self.video_projector(features["video"].flatten(0, 1)).view(*features["video"].shape[:2], -1)
        z_audio = self.audio_projector(features["audio"].flatten(0, 1)).view(*features["audio"].shape[:2], -1)
        similarity = F.cosine_similarity(z_video.mean(1), z_audio.mean(1), dim=-1)
        return [{"av_similarity": round(float(s), 4)} for s in similarity]

    def param_groups(self) -> list[ParamGroup]:
        """Video encoder (backbone + projector), video predictor, audio encoder, audio predictor; the
        predictors keep a constant ``predictor_lr_scale`` × base lr (not scheduled, not warmed up)."""
        cfg: CrissCrossConfig = self.cfg

        def trainable(*modules: nn.Module | None) -> list[nn.Parameter]:
            return [p for m in modules if m is not None for p in m.parameters() if p.requires_grad]

        video_backbone: nn.Module | None = self.video_net if self.video_net is not None else self.backbone
        return [ParamGroup("video_encoder", trainable(video_backbone, self.video_projector)),
                ParamGroup("video_predictor", trainable(self.video_predictor), lr_scale=cfg.predictor_lr_scale,
                           fixed_lr=True),
                ParamGroup("audio_encoder", trainable(self.audio_net, self.audio_projector)),
                ParamGroup("audio_predictor", trainable(self.audio_predictor), lr_scale=cfg.predictor_lr_scale,
                           fixed_lr=True)]
