"""Manifest rows -> training / evaluation samples (tensors), as a method's :class:`SampleSpec` asks.

Randomness (frame sampling, crops, flips) is drawn from a generator seeded by
``(seed, epoch, index)``, so a sample is reproducible per epoch whatever the worker, process count
or resume point — the basis of exact resume and of CPU/GPU, 1/N-process agreement.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch.utils.data import Dataset

from chronoclip.data import transforms as T
from chronoclip.data.manifest import Manifest, Record
from chronoclip.errors import ConfigError, MediaError
from chronoclip.io.orientation import ORIENTATION_RULES

MODALITIES = ("video", "image")


@dataclass(frozen=True)
class SampleSpec:
    """What each sample of a method's data set must contain (declared by the method).

    Attributes:
        modality: ``video`` (frames decoded from a video file) or ``image`` (a still, seen as 1 frame).
        frames: frames per clip (``video``).
        image_size: square crop side in pixels.
        mean, std: per-channel normalisation (CLIP's by default).
        train_sampling / eval_sampling: frame-index strategies of ``chronoclip.io.video``.
        stride: source frames between consecutive frames of a ``dense`` clip (e.g. 2: 8 frames of a
            25 fps video span 0.6 s); a dense evaluation clip is centred in its window.
        augment: random resized crop + horizontal flip at training time (one draw per clip).
        flip: whether ``augment`` flips (off where left / right is part of the label, e.g. SSv2).
        text: include the row's ``text``.
        label: include the class index (``-1`` for rows without a label).
        eval_clips / eval_crops: multi-view testing: temporal clips × spatial crops (1 or 3).
        fields: further manifest columns copied into each sample as they are (e.g. ``timestamp``,
            ``stage``, ``series``); a row without the column gets ``None``.
        autorotate: decode videos as displayed (display matrix, square pixels; ``io.autorotate``), else
            as stored.
    """

    modality: str = "video"
    frames: int = 8
    image_size: int = 224
    mean: tuple[float, ...] = T.CLIP_MEAN
    std: tuple[float, ...] = T.CLIP_STD
    train_sampling: str = "random"
    eval_sampling: str = "uniform"
    stride: int = 1
    augment: bool = False
    flip: bool = True
    text: bool = False
    label: bool = True
    eval_clips: int = 1
    eval_crops: int = 1
    fields: tuple[str, ...] = ()
    autorotate: bool = True

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ConfigError(f"modality '{self.modality}' is not one of {', '.join(MODALITIES)}")
        if self.frames < 1 or self.image_size < 1 or self.eval_clips < 1 or self.stride < 1:
            raise ConfigError(f"frames, image_size, eval_clips and stride must be positive: {self}")
        if self.eval_crops not in (1, 3):
            raise ConfigError(f"eval_crops must be 1 or 3, got {self.eval_crops}")

    def views(self, train: bool) -> int:
        """Views per sample: 1 at training time, clips × crops at evaluation."""
        return 1 if train else self.eval_clips * self.eval_crops

    def pixel_params(self, train: bool) -> dict[str, Any]:
        """Everything that determines a sample's pixels besides the file (for feature-cache keys)."""
        return {"modality": self.modality, "frames": self.frames, "image_size": self.image_size,
                "mean": list(self.mean), "std": list(self.std),
                "sampling": self.train_sampling if train else self.eval_sampling, "stride": self.stride,
                "augment": self.augment and train, "views": self.views(train),
                "crops": 1 if train else self.eval_crops,
                **({"orientation": ORIENTATION_RULES if self.autorotate else "stored"}
                   if self.modality == "video" else {})}

    def deterministic(self, train: bool) -> bool:
        """Whether a sample's pixels are the same every epoch (so frozen features may be cached)."""
        return not train or (not self.augment and self.train_sampling in ("uniform", "segment"))


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed that depends only on ``(seed, epoch, index)``."""
    digest = hashlib.blake2b(f"{seed}/{epoch}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class ManifestDataset(Dataset[dict[str, Any]]):
    """Samples of a manifest: ``{"pixels", "label", "text", "index"}`` as the spec asks.

    ``pixels`` is float ``[T, 3, S, S]`` at training time and ``[V, T, 3, S, S]`` at evaluation time
    (V = clips × crops views, V = 1 included), normalised; images have T = 1.

    Args:
        manifest: the rows (already split).
        spec: what each sample holds.
        class_names: label order; a label not in it raises with the row number.
        train: training-time sampling and augmentation.
        seed: base seed; call :meth:`set_epoch` each epoch.
        repeats: training only: each row appears this many times per epoch, each time with its own
            random clip (e.g. CrissCross's fine-tuning draws 10 clips per video per epoch).
    """

    def __init__(self, manifest: Manifest, spec: SampleSpec, class_names: list[str], train: bool,
                 seed: int = 0, repeats: int = 1) -> None:
        if repeats < 1 or (repeats > 1 and not train):
            raise ConfigError(f"repeats={repeats}: must be >= 1, and 1 for an evaluation data set")
        self.manifest, self.spec, self.train, self.seed, self.repeats = manifest, spec, train, seed, repeats
        self.class_index = {name: i for i, name in enumerate(class_names)}
        self.epoch = 0
        unknown = sorted({r["label"] for r in manifest if r.get("label") and r["label"] not in self.class_index})
        if spec.label and unknown:
            raise ConfigError(f"{manifest.name}: labels {unknown[:10]} are not among the model's "
                              f"{len(class_names)} classes; train on data that contains them")

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random draws ``__getitem__`` makes."""
        self.epoch = epoch

    def with_spec(self, **changes: Any) -> ManifestDataset:
        """The same rows with the spec's fields ``changes`` replaced (e.g. ``autorotate=False``)."""
        changed = copy.copy(self)
        changed.spec = replace(self.spec, **changes)
        return changed

    def __len__(self) -> int:
        return len(self.manifest) * self.repeats

    def __getitem__(self, draw: int) -> dict[str, Any]:
        if not 0 <= draw < len(self):  # also ends iteration (``for sample in dataset``)
            raise IndexError(f"sample {draw} of a data set of {len(self)} ({self.manifest.name})")
        index = draw % len(self.manifest)  # the row; ``draw`` seeds this repeat's random clip
        record = self.manifest[index]
        generator = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, draw))
        try:
            clips = self._load_clips(record, generator)
        except MediaError as exc:
            raise exc.at_row(self.manifest.name, self.manifest.rows[index]) from exc
        views = [view for clip in clips for view in self._views(clip, generator)]
        pixels = views[0] if self.train else torch.stack(views)
        return {"pixels": pixels, **self.row_fields(index)}

    def row_fields(self, index: int) -> dict[str, Any]:
        """What a sample holds besides its media: ``index``, and ``label``, ``text`` and the spec's
        ``fields`` as it asks — read from the row alone, without decoding anything."""
        record = self.manifest[index]
        sample: dict[str, Any] = {"index": index}
        if self.spec.label:
            label = record.get("label")
            sample["label"] = self.class_index[label] if label is not None else -1
        if self.spec.text:
            sample["text"] = record.get("text") or ""
        for name in self.spec.fields:
            sample[name] = record.get(name)
        return sample

    def _load_clips(self, record: Record, generator: torch.Generator) -> list[torch.Tensor]:
        """Decoded ``uint8 [T, 3, H, W]`` clips: 1 at training time, ``eval_clips`` at evaluation."""
        if self.spec.modality == "image":
            from chronoclip.io.image import load_image

            return [torch.from_numpy(load_image(record["path"])).permute(2, 0, 1).unsqueeze(0)]
        from chronoclip.io.video import probe_video, read_video

        start, end = record.get("start"), record.get("end")
        clips = 1 if self.train else self.spec.eval_clips
        if clips > 1:
            start = start or 0.0
            end = end if end is not None else probe_video(record["path"], self.spec.autorotate).duration
            bounds = np.linspace(start, end, clips + 1)
            windows = list(itertools.pairwise(bounds))
        else:
            windows = [(start, end)]
        strategy = self.spec.train_sampling if self.train else self.spec.eval_sampling
        dense = strategy == "dense"
        result = []
        for window_start, window_end in windows:
            seed = int(torch.randint(2**31 - 1, (), generator=generator))
            clip = read_video(record["path"], self.spec.frames, strategy, start=window_start, end=window_end,
                              stride=self.spec.stride if dense else 1,
                              seed=None if dense and not self.train else seed,  # None: centred
                              autorotate=self.spec.autorotate)
            result.append(torch.from_numpy(clip.frames).permute(0, 3, 1, 2))
        return result

    def _views(self, clip: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        """Normalised ``[T, 3, S, S]`` views of one clip: one augmented or centred view, or 3 crops."""
        size = self.spec.image_size
        if self.train and self.spec.augment:
            clip = T.random_resized_crop(clip, size, scale=(0.5, 1.0), generator=generator)
            if self.spec.flip:
                clip = T.random_horizontal_flip(clip, generator=generator)
            crops = [clip]
        else:
            resized = T.resize(clip, size)
            count = 1 if self.train else self.spec.eval_crops
            boxes = T.crop_boxes(resized.shape[-2], resized.shape[-1], size, count)
            crops = list(T.take_crops(resized, boxes))
        return [T.normalize(view, self.spec.mean, self.spec.std) for view in crops]


@runtime_checkable
class PartedDataset(Protocol):
    """A data set assembled from other data sets (e.g. paired source and target domains), whose parts the
    engine may replace — a :class:`ManifestDataset` part by its cached frozen features."""

    def map_parts(self, transform: Callable[[Dataset[dict[str, Any]]], Dataset[dict[str, Any]]]
                  ) -> Dataset[dict[str, Any]]:
        """The same data set with every part replaced by ``transform(part)``."""
        ...


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch samples: stack tensors, tensorise numbers (when every sample has one), keep the rest as lists."""
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if isinstance(values[0], torch.Tensor):
            batch[key] = torch.stack(values)
        elif all(isinstance(v, (int, float)) for v in values):
            batch[key] = torch.tensor(values)
        else:
            batch[key] = values
    return batch


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move a batch's tensors to ``device``."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
