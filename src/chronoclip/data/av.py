"""Audio-visual samples of a manifest: two (video, audio) window pairs per training item, multi-window views
for evaluation (CrissCross, spec A.2-A.3).

Training samples (the windows from :func:`chronoclip.data.sampling.sample_pair`)::

    video1, video2   float [T, 3, S, S]  normalised, each its own augmentation (``spec.augment``)
    audio1, audio2   float [1, M, F]     normalised log-mel, each its own augmentation
    video_offset, audio_offset           realised |t2 - t1| in seconds (logged: pitfall A.9.4)
    fallback         1.0 when the mode could not be realised as asked (short clip), else 0.0
    label, index

Evaluation samples hold ``eval_clips`` evenly spaced windows (multi-crop testing)::

    video  float [V, T, 3, S, S]   audio  float [V, 1, M, F]   windows  float [V, 2] (video, audio start, s)

Rows whose file has no audio stream are dropped when the data set is built, counted and logged
(``missing_audio="skip"``), or get silence (``"silence"``); they never crash a run. ``modalities=("audio",)``
gives audio-only samples (ESC-50: no video). Randomness is drawn from a generator seeded by
``(seed, epoch, index)`` (:func:`~chronoclip.data.datasets.sample_seed`), so samples are reproducible.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from chronoclip.config import require_one_of
from chronoclip.data import av_augment as A
from chronoclip.data.datasets import sample_seed
from chronoclip.data.manifest import Manifest, Record
from chronoclip.data.sampling import SAMPLER_MODES, Window, eval_windows, sample_pair
from chronoclip.errors import ConfigError, MediaError
from chronoclip.io.audio import MelConfig, load_audio, log_mel

log = logging.getLogger(__name__)

MISSING_AUDIO = ("skip", "silence")
AV_MODALITIES = ("video", "audio")


@dataclass(frozen=True)
class AVSpec:
    """What an audio-visual sample holds and how it is drawn.

    Attributes:
        frames: video frames per window (8 in the released recipe).
        fps: rate the frames are sampled at (16; frames / fps = the 0.5 s video window).
        image_size: square crop side (112).
        mean, std: video normalisation (ImageNet's; CLIP's for a CLIP tower).
        audio_seconds: audio window (2 s); it contains the video window.
        mel: the log-mel front end (16 kHz, n_fft 1024, hop 160, 80 bins, fixed global normalisation).
        mode: the sampler mode (:data:`~chronoclip.data.sampling.SAMPLER_MODES`).
        augment: the train-time augmentation level (:data:`~chronoclip.data.av_augment.AUGMENT_LEVELS`):
            ``strong`` (the released recipe), ``light`` (keeps colour and pitch) or ``none`` (the
            evaluation transform).
        eval_clips: evenly spaced windows per evaluation sample.
        missing_audio: ``skip`` rows without an audio stream, or give them ``silence``.
        modalities: ``("video", "audio")``, or one of them alone.
        cache_media: decode each file once and keep it in memory (small data sets, benchmarks).
    """

    frames: int = 8
    fps: float = 16.0
    image_size: int = 112
    mean: tuple[float, ...] = A.IMAGENET_MEAN
    std: tuple[float, ...] = A.IMAGENET_STD
    audio_seconds: float = 2.0
    mel: MelConfig = field(default_factory=lambda: MelConfig(normalize=True))
    mode: str = "mild"
    augment: str = "strong"
    eval_clips: int = 1
    missing_audio: str = "skip"
    modalities: tuple[str, ...] = AV_MODALITIES
    cache_media: bool = False

    def __post_init__(self) -> None:
        require_one_of({"sampler.mode": (self.mode, SAMPLER_MODES),
                        "model.augment": (self.augment, A.AUGMENT_LEVELS),
                        "model.missing_audio": (self.missing_audio, MISSING_AUDIO)})
        if not self.modalities or set(self.modalities) - set(AV_MODALITIES):
            raise ConfigError(f"modalities must be a non-empty subset of {AV_MODALITIES}, got {self.modalities}")
        if self.frames < 1 or self.fps <= 0 or self.image_size < 8 or self.eval_clips < 1:
            raise ConfigError(f"need frames >= 1, fps > 0, image_size >= 8, eval_clips >= 1; got {self}")
        if self.video_seconds > self.audio_seconds:
            raise ConfigError(f"the video window ({self.frames} frames at {self.fps} fps = {self.video_seconds} s) "
                              f"must fit in the audio window (model.audio_seconds={self.audio_seconds})")

    @property
    def video_seconds(self) -> float:
        return self.frames / self.fps

    @property
    def audio_samples(self) -> int:
        return round(self.audio_seconds * self.mel.sample_rate)


@dataclass
class _Media:
    """One row's media: where it starts and ends (seconds of the file), and its decoded content when cached."""

    start: float
    duration: float
    has_audio: bool
    frames: np.ndarray | None = None  # uint8 [N, H, W, 3], cached
    fps: float = 0.0
    num_frames: int = 0  # of the video file
    wave: np.ndarray | None = None  # float32 [S], cached (from ``start``)


class AVDataset(Dataset[dict[str, Any]]):
    """Audio-visual samples of a manifest split (see the module docstring for their contents).

    Args:
        manifest: the rows (already split); ``path`` is the video (with its sound track) or, audio-only,
            the audio file; a separate ``audio`` column is used for the sound when present.
        spec: what each sample holds.
        class_names: label order.
        train: two augmented window pairs per item (else evaluation views).
        seed: base seed; call :meth:`set_epoch` each epoch.

    Attributes:
        counts: ``skipped_no_audio``, ``silence_filled`` (rows), and the sampler's fallbacks drawn so far
            (``short``, ``shrunk``), for the run log.
    """

    def __init__(self, manifest: Manifest, spec: AVSpec, class_names: list[str], train: bool,
                 seed: int = 0) -> None:
        self.manifest, self.spec, self.train, self.seed = manifest, spec, train, seed
        self.class_index = {name: i for i, name in enumerate(class_names)}
        self.epoch = 0
        self.counts: Counter[str] = Counter()
        self.media: dict[int, _Media] = {}
        self.keep: list[int] = []
        for row, record in enumerate(manifest):
            media = self._probe(record, row)
            if not media.has_audio and "audio" in spec.modalities:
                if spec.missing_audio == "skip":
                    self.counts["skipped_no_audio"] += 1
                    continue
                self.counts["silence_filled"] += 1
            self.media[row] = media
            self.keep.append(row)
        if self.counts:
            log.warning("%s: %d rows without an audio stream %s", manifest.name,
                        self.counts["skipped_no_audio"] + self.counts["silence_filled"],
                        "skipped" if spec.missing_audio == "skip" else "filled with silence")
        if not self.keep:
            raise MediaError(Path(manifest.name), "no row has an audio stream",
                             hint="CrissCross needs video files with sound (or model.missing_audio=silence)")

    def respec(self, spec: AVSpec) -> AVDataset:
        """The same rows and probed (or cached, decoded) media under another spec — e.g. another sampler
        mode — without probing or decoding again. The spec must keep the media the same (modalities,
        audio rate, ``missing_audio``, ``cache_media``)."""
        same = ("modalities", "missing_audio", "cache_media")
        if any(getattr(spec, key) != getattr(self.spec, key) for key in same) or \
                spec.mel.sample_rate != self.spec.mel.sample_rate:
            raise ConfigError(f"respec can change the sampling and front end, not {', '.join(same)} or the rate")
        other = copy.copy(self)
        rows = ("skipped_no_audio", "silence_filled")
        other.spec, other.counts = spec, Counter({key: self.counts[key] for key in rows if self.counts[key]})
        return other

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random draws ``__getitem__`` makes."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.keep)

    def _error(self, row: int, exc: MediaError) -> MediaError:
        return exc.at_row(self.manifest.name, self.manifest.rows[row])

    def _probe(self, record: Record, row: int) -> _Media:
        """Where the row's media start and end, and whether it has sound (decoded now if cached)."""
        start = float(record.get("start") or 0.0)
        try:
            if "video" not in self.spec.modalities:
                wave = load_audio(record.get("audio") or record["path"], self.spec.mel.sample_rate, start=start,
                                  duration=None if record.get("end") is None else record["end"] - start)
                return _Media(start, len(wave) / self.spec.mel.sample_rate, True, wave=wave)
            from chronoclip.io.video import probe_video, read_frames

            info = probe_video(record["path"])
            end = min(float(record["end"]), info.duration) if record.get("end") is not None else info.duration
            media = _Media(start, end - start, record.get("audio") is not None or info.has_audio, fps=info.fps,
                           num_frames=info.num_frames)
            if self.spec.cache_media:
                media.frames = read_frames(record["path"], np.arange(info.num_frames)).frames
                if media.has_audio:
                    media.wave = load_audio(record.get("audio") or record["path"], self.spec.mel.sample_rate,
                                            start=start, duration=media.duration)
            return media
        except MediaError as exc:
            raise self._error(row, exc) from exc

    # ------------------------------------------------------------------------------------ reading
    def _frames(self, record: Record, media: _Media, start: float) -> torch.Tensor:
        """``uint8 [T, 3, H, W]``: the frames on screen at ``start + k / fps`` (k < frames)."""
        times = media.start + start + np.arange(self.spec.frames) / self.spec.fps
        indices = np.floor(times * media.fps + 1e-6).astype(np.int64)
        indices = np.minimum(indices, media.num_frames - 1)
        if media.frames is not None:
            frames = media.frames[indices]
        else:
            from chronoclip.io.video import read_frames

            frames = read_frames(record["path"], indices).frames
        return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)

    def _wave(self, record: Record, media: _Media, start: float) -> torch.Tensor:
        """``float32 [S]``: the audio window from ``start`` (zero-padded past the end; silence without sound)."""
        length = self.spec.audio_samples
        if not media.has_audio:
            return torch.zeros(length)
        if media.wave is not None:
            first = round(start * self.spec.mel.sample_rate)
            piece = media.wave[first:first + length]
            return torch.from_numpy(np.pad(piece, (0, length - len(piece))).astype(np.float32))
        wave = load_audio(record.get("audio") or record["path"], self.spec.mel.sample_rate,
                          start=media.start + start, duration=self.spec.audio_seconds)
        return torch.from_numpy(wave)

    def _spectrogram(self, wave: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Normalised log-mel ``[1, M, F]``, augmented when a generator is given."""
        if generator is not None:
            wave = A.volume_jitter(wave, generator)
        spec = log_mel(wave, self.spec.mel).unsqueeze(0)
        if generator is not None:
            spec = A.augment_spectrogram(spec, generator, self.spec.augment)
        return spec

    def _video(self, frames: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        size, mean, std = self.spec.image_size, self.spec.mean, self.spec.std
        if generator is not None:
            return A.augment_video(frames, size, generator, mean, std, self.spec.augment)
        return A.eval_video(frames, size, mean, std)

    def _window(self, record: Record, media: _Media, window: Window, generator: torch.Generator | None
                ) -> dict[str, torch.Tensor]:
        out = {}
        if "video" in self.spec.modalities:
            out["video"] = self._video(self._frames(record, media, window.video), generator)
        if "audio" in self.spec.modalities:
            out["audio"] = self._spectrogram(self._wave(record, media, window.audio), generator)
        return out

    # ------------------------------------------------------------------------------------ samples
    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.keep[index]
        record, media = self.manifest[row], self.media[row]
        label = record.get("label")
        sample: dict[str, Any] = {"index": index,
                                  "label": self.class_index.get(label, -1) if label is not None else -1}
        spec = self.spec
        try:
            if self.train:
                generator = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, index))
                pair = sample_pair(media.duration, spec.video_seconds, spec.audio_seconds, spec.mode, generator)
                if pair.fallback:
                    self.counts[pair.fallback] += 1
                augment = generator if spec.augment != "none" else None
                for suffix, window in (("1", pair.first), ("2", pair.second)):
                    for key, value in self._window(record, media, window, augment).items():
                        sample[key + suffix] = value
                sample.update(video_offset=pair.video_offset, audio_offset=pair.audio_offset,
                              fallback=float(bool(pair.fallback)))
                return sample
            windows = eval_windows(media.duration, spec.video_seconds, spec.audio_seconds, spec.eval_clips)
            views = [self._window(record, media, window, None) for window in windows]
        except MediaError as exc:
            raise self._error(row, exc) from exc
        for key in views[0]:
            sample[key] = torch.stack([view[key] for view in views])
        sample["windows"] = torch.tensor([[w.video, w.audio] for w in windows], dtype=torch.float32)
        return sample


def mel_frames(spec: AVSpec) -> int:
    """Log-mel frames of one audio window (201 for 2 s at hop 160, centred)."""
    return spec.mel.num_frames(spec.audio_samples)

