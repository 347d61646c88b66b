"""Time-window sampling for audio-visual pairs: CrissCross's sampler, which *is* its mechanism (spec A.3).

A training item takes two time points t1, t2 of one clip and delivers, for each, a video window of
``video_seconds`` lying inside an audio window of ``audio_seconds`` ("synchronous" means containment,
not centre alignment: the video start is uniform inside its audio window). How far t2 is from t1 is
set only here, by the mode:

===========  ===========================  ==================================  ====================
mode         paper wording (inferred)     video offset t2 − t1                audio offset
===========  ===========================  ==================================  ====================
``none``     strict sync                  0 (one window, augmented twice)     0
``mild``     overlapped (released default) ½ video window (4 of 8 frames)     ½ audio window (1 s)
``medium``   adjacent                     1 video window (contiguous)         1 audio window
``far``      far apart                    duration / 2                        duration / 2
``random``   random                       t1, t2 independent                  independent
===========  ===========================  ==================================  ====================

In ``mild`` and ``medium`` both clips' video windows lie inside their own audio windows, so the video
start is drawn uniformly where that holds for both clips at once (in ``medium`` that is one place: the
end of audio window 1, which is where video window 2 starts).

Short clips never degrade silently (the released code's pitfall A.9.4): when the asked offset does not
fit, the offset is shrunk to the largest that fits and the draw says so (``fallback``); a clip shorter
than the audio window starts at 0 and its audio is zero-padded by the reader (``fallback="short"``).
Draws are made from a ``torch.Generator`` the caller seeds per ``(seed, epoch, index)``.

Example:
    >>> import torch
    >>> pair = sample_pair(10.0, 0.5, 2.0, "mild", torch.Generator().manual_seed(0))
    >>> round(pair.video_offset, 6), round(pair.audio_offset, 6)
    (0.25, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from chronoclip.config import require_one_of
from chronoclip.errors import ConfigError

SAMPLER_MODES = ("none", "mild", "medium", "far", "random")


@dataclass(frozen=True)
class Window:
    """One time point: the start (seconds) of its video window and of the audio window containing it."""

    video: float
    audio: float


@dataclass(frozen=True)
class PairDraw:
    """The two windows of one training item and whether the mode had to fall back.

    Attributes:
        first, second: the windows at t1 and t2.
        fallback: ``""`` when the mode was realised as asked; ``"short"`` (the clip is shorter than an
            audio window: start 0, audio zero-padded), or ``"shrunk"`` (the clip is too short for the
            mode's offset: the largest one that fits was used).
    """

    first: Window
    second: Window
    fallback: str = ""

    @property
    def video_offset(self) -> float:
        """Realised |t2 − t1| of the video windows, seconds."""
        return abs(self.second.video - self.first.video)

    @property
    def audio_offset(self) -> float:
        """Realised |t2 − t1| of the audio windows, seconds."""
        return abs(self.second.audio - self.first.audio)


def _uniform(low: float, high: float, generator: torch.Generator) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def _check(duration: float, video_seconds: float, audio_seconds: float) -> None:
    if not duration > 0 or not 0 < video_seconds <= audio_seconds:
        raise ConfigError(f"need duration > 0 and 0 < video window <= audio window; got duration={duration}, "
                          f"video={video_seconds}, audio={audio_seconds} (model.frames / model.fps vs "
                          f"model.audio_seconds)")


def sample_window(duration: float, video_seconds: float, audio_seconds: float,
                  generator: torch.Generator) -> tuple[Window, bool]:
    """The single-window rule: audio start uniform in ``[0, duration − audio]``, the video start uniform
    inside that audio window. Returns the window and whether the clip was too short (start 0)."""
    _check(duration, video_seconds, audio_seconds)
    short = duration < audio_seconds
    audio = 0.0 if short else _uniform(0.0, duration - audio_seconds, generator)
    video_room = min(audio_seconds, duration) - video_seconds
    video = audio + (_uniform(0.0, video_room, generator) if video_room > 0 else 0.0)
    return Window(video, audio), short


def _shifted_pair(duration: float, video_seconds: float, audio_seconds: float, video_shift: float,
                  audio_shift: float, generator: torch.Generator) -> PairDraw:
    """Two windows, the second shifted by (``video_shift``, ``audio_shift``) from the first, both videos
    inside their audio windows; shifts are shrunk (in proportion) when the clip is too short for them."""
    if duration < audio_seconds:
        window, _ = sample_window(duration, video_seconds, audio_seconds, generator)
        return PairDraw(window, window, "short")
    fallback = ""
    room = duration - audio_seconds
    if audio_shift > room:
        scale = room / audio_shift
        video_shift, audio_shift, fallback = video_shift * scale, room, "shrunk"
    audio = _uniform(0.0, room - audio_shift, generator)
    # video start v - audio start a must satisfy, for clip 1: 0 <= v - a <= A - V, and for clip 2:
    # 0 <= (v + dv) - (a + da) <= A - V.
    low = max(0.0, audio_shift - video_shift)
    high = min(audio_seconds - video_seconds, audio_seconds - video_seconds + audio_shift - video_shift)
    lead = _uniform(low, high, generator) if high > low else low
    first = Window(audio + lead, audio)
    return PairDraw(first, Window(first.video + video_shift, audio + audio_shift), fallback)


def sample_pair(duration: float, video_seconds: float, audio_seconds: float, mode: str,
                generator: torch.Generator) -> PairDraw:
    """The two windows (t1, t2) of one training item under ``mode`` (one of :data:`SAMPLER_MODES`).

    Args:
        duration: usable length of the clip in seconds.
        video_seconds: video window length (frames / fps).
        audio_seconds: audio window length; at least the video window.
        mode: ``none``, ``mild``, ``medium``, ``far`` or ``random``.
        generator: the item's random source.

    Raises:
        ConfigError: an unknown mode or inconsistent window lengths.
    """
    require_one_of({"sampler.mode": (mode, SAMPLER_MODES)})
    _check(duration, video_seconds, audio_seconds)
    if mode == "none":
        window, short = sample_window(duration, video_seconds, audio_seconds, generator)
        return PairDraw(window, window, "short" if short else "")
    if mode == "random":
        first, short = sample_window(duration, video_seconds, audio_seconds, generator)
        second, _ = sample_window(duration, video_seconds, audio_seconds, generator)
        return PairDraw(first, second, "short" if short else "")
    if mode == "far":
        half = duration / 2
        return _shifted_pair(duration, video_seconds, audio_seconds, half, half, generator)
    fraction = 0.5 if mode == "mild" else 1.0
    return _shifted_pair(duration, video_seconds, audio_seconds, fraction * video_seconds,
                         fraction * audio_seconds, generator)


def eval_windows(duration: float, video_seconds: float, audio_seconds: float, count: int) -> list[Window]:
    """``count`` evenly spaced windows for multi-crop testing, each video centred in its audio window."""
    _check(duration, video_seconds, audio_seconds)
    if count < 1:
        raise ConfigError(f"model.eval_clips={count} must be at least 1")
    room = max(duration - audio_seconds, 0.0)
    starts = [room / 2] if count == 1 else [room * i / (count - 1) for i in range(count)]
    inner = (min(audio_seconds, duration) - video_seconds) / 2
    return [Window(start + max(inner, 0.0), start) for start in starts]
