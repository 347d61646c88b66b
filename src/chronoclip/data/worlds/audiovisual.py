"""The ``audiovisual`` world: the "shortcut-sync AV world" of spec A.11, for CrissCross.

K = 8 classes, the first eight shapes of the universe, each with a fixed colour and its own sound
(pitch and timbre from :data:`~chronoclip.data.worlds.universe.SOUNDS`). Every clip is a video
with an audio track:

- **class evidence**, time-invariant, weak and noisy: the class's shape in its colour at low
  contrast under per-pixel noise in the video; the class's harmonic tone at about 0 dB SNR in white
  noise in the audio;
- **shortcut**, class-independent, strong and perfectly synchronous: events of a renewal process
  (about ``event_rate`` per second, at least two video frames apart), each a global brightness flash
  in the video *and* a click in the audio at the same instant.

Strict audio-video synchrony rewards learning the shortcut; relaxed (time-offset) pairing does not,
which is what CrissCross's sampler exploits. Stressors: exactly ``round(offset_fraction · clips)``
clips get a recording offset U(−max_offset, max_offset) s (an event at video time e is heard at
e + offset), and ``round(switch_fraction · clips)`` clips switch to another class at mid-clip (in
the video at duration / 2, in the audio at duration / 2 + offset).

Timing is exact by construction: an event at video time e flashes the frame that is on screen at e
(index ⌊e · fps⌋) and starts its click at audio sample round((e + offset) · sample_rate), so the
click begins within one frame period after the flashed frame's start. Events are drawn over
[−max_offset, duration + max_offset] so that flashes and clicks are equally dense everywhere in
the clip whatever its offset.

Audio is stored as 16-bit PCM in the mp4 by default (``audio_codec="pcm_s16le"``): sample-exact with
any demuxer and lossless, so the SNR is what was asked for. AAC (``"aac"``) is available to exercise
the path real data takes; FFmpeg's mp4 edit list removes the encoder's 1024-sample priming, so PyAV
decodes it without delay (tested), but decoders that ignore edit lists hear everything 1024 samples
late — 64 ms at 16 kHz, 128 ms (more than a frame period at 8 fps) at 8 kHz.

Example:
    >>> import numpy as np
    >>> params = AudiovisualParams(duration=2.0)
    >>> plan = plan_clip("ring", params, np.random.default_rng(0), offset=0.0, switch=False)
    >>> render_video(plan, params, np.random.default_rng(0)).shape
    (16, 32, 32, 3)
    >>> render_audio(plan, params, np.random.default_rng(0)).shape
    (32000,)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from chronoclip.data.worlds.base import World, WorldParams, assign_splits, write_world
from chronoclip.data.worlds.universe import (
    COLOURS,
    SHAPES,
    SIZES,
    SOUNDS,
    STYLES,
    Style,
    Thing,
    object_sound,
    render_background,
    render_scene,
)
from chronoclip.io.writers import write_video

log = logging.getLogger(__name__)

#: The classes: the first eight shapes of the universe.
CLASSES: tuple[str, ...] = SHAPES[:8]
#: Each class's colour in the video (one colour word per class).
CLASS_COLOURS: dict[str, str] = dict(zip(CLASSES, COLOURS, strict=True))
AUDIO_CODECS: tuple[str, ...] = ("pcm_s16le", "aac")

_TONE_PEAK = 0.1  # peak amplitude of a class tone before noise
# Louder noise would clip the 16-bit file and bury the clicks: below the SNR that needs more, the tone is
# made fainter instead (at 0 dB the noise std is 0.046-0.081 by class, below the cap).
_MAX_NOISE_STD = 0.1
_CLICK_SECONDS = 0.01  # a click: random-sign samples under an envelope decaying with a 3 ms time constant
_CLICK_DECAY = 0.003
_MIN_GAP_FRAMES = 2  # events are at least this many frame periods apart


@dataclass
class AudiovisualParams(WorldParams):
    """Parameters of the ``audiovisual`` world.

    Attributes:
        n: clips per class (8 classes); splits are stratified by class.
        duration: seconds per clip.
        size: frame side in pixels (even: the video is yuv420p).
        fps: video frame rate.
        sample_rate: audio sample rate in Hz.
        event_rate: shortcut events (flash + click) per second.
        flash: brightness added to every pixel of a flashed frame, in [0, 1] units.
        click: peak amplitude of a click (the class tone peaks at 0.1).
        contrast: visibility of the class object in the video (0 = invisible, 1 = full colour).
        video_noise: standard deviation of per-pixel Gaussian noise, in [0, 1] units.
        snr_db: class tone power over noise power in the audio, in dB. The noise std is at most 0.1
            (so the file does not clip and a click stays well above the noise); a lower SNR makes the tone
            fainter.
        offset_fraction: fraction of clips with an audio-video recording offset.
        max_offset: such offsets are drawn from U(−max_offset, max_offset) seconds.
        switch_fraction: fraction of clips whose class switches to another one at mid-clip.
        audio_codec: ``pcm_s16le`` (lossless, sample-exact) or ``aac``.
    """

    n: int = 8
    duration: float = 8.0
    size: int = 32
    fps: float = 8.0
    sample_rate: int = 16000
    event_rate: float = 1.0
    flash: float = 0.35
    click: float = 0.7
    contrast: float = 0.3
    video_noise: float = 0.08
    snr_db: float = 0.0
    offset_fraction: float = 0.0
    max_offset: float = 1.0
    switch_fraction: float = 0.0
    audio_codec: str = "pcm_s16le"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n < 1 or self.duration <= 0 or self.size < 8 or self.size % 2 or self.fps <= 0:
            raise ValueError(f"need n >= 1, duration > 0, an even size >= 8 and fps > 0; got {self}")
        if not 0 < self.event_rate < self.fps / _MIN_GAP_FRAMES:
            raise ValueError(f"event_rate must be in (0, fps / {_MIN_GAP_FRAMES}), got {self.event_rate}")
        if not 0 <= self.offset_fraction <= 1 or not 0 <= self.switch_fraction <= 1 or self.max_offset < 0:
            raise ValueError(f"need offset_fraction and switch_fraction in [0, 1] and max_offset >= 0; got {self}")
        if self.audio_codec not in AUDIO_CODECS:
            raise ValueError(f"audio_codec must be one of {AUDIO_CODECS}, got '{self.audio_codec}'")


@dataclass(frozen=True)
class ClipPlan:
    """What one clip contains.

    Attributes:
        label: the class (of the first half, for a switching clip).
        switch_label: the class after ``switch_time``; ``None`` if the clip does not switch.
        switch_time: video time of the switch in seconds, or ``None``.
        events: ``float [E]`` event times in video time (seconds), sorted; those in [0, duration)
            flash, those with ``e + offset`` in [0, duration) click.
        offset: audio time = video time + offset (seconds).
        position: (x, y) centre of the class object, frame fractions.
    """

    label: str
    switch_label: str | None
    switch_time: float | None
    events: np.ndarray
    offset: float
    position: tuple[float, float]


def event_times(params: AudiovisualParams, rng: np.random.Generator) -> np.ndarray:
    """Sorted event times ``float [E]`` over [−max_offset, duration + max_offset].

    A renewal process with rate ``event_rate``: gaps are a dead time of two frame periods plus an
    exponential, so no two events share or neighbour a flashed frame. Times are rounded to 1 µs, the
    precision the manifest records.
    """
    dead = _MIN_GAP_FRAMES / params.fps
    low, high = -params.max_offset, params.duration + params.max_offset
    time, times = low - float(rng.uniform(0, 1 / params.event_rate)), []
    while (time := time + dead + float(rng.exponential(1 / params.event_rate - dead))) < high:
        if time >= low:
            times.append(round(time, 6))
    return np.array(times)


def plan_clip(label: str, params: AudiovisualParams, rng: np.random.Generator, offset: float,
              switch: bool) -> ClipPlan:
    """Draw one clip's events, object position and (with ``switch``) its second class."""
    events = event_times(params, rng)
    position = (float(rng.uniform(0.4, 0.6)), float(rng.uniform(0.4, 0.6)))
    second = str(rng.choice([c for c in CLASSES if c != label])) if switch else None
    return ClipPlan(label, second, params.duration / 2 if switch else None, events, offset, position)


def label_at(plan: ClipPlan, time: float) -> str:
    """The class on show at ``time`` (seconds, in the modality's own time)."""
    if plan.switch_label is not None and plan.switch_time is not None and time >= plan.switch_time:
        return plan.switch_label
    return plan.label


def render_video(plan: ClipPlan, params: AudiovisualParams, rng: np.random.Generator) -> np.ndarray:
    """``uint8 [T, S, S, 3]``: the faint class object, a flash on each event's frame, pixel noise."""
    frames = round(params.duration * params.fps)
    style = Style("av", contrast=params.contrast)
    background = render_background(params.size, STYLES["source"], rng)
    stills = {label: render_scene([Thing(label, CLASS_COLOURS[label], SIZES["large"], *plan.position)],
                                  params.size, style, rng, background=background).astype(np.float32) / 255
              for label in dict.fromkeys([plan.label, label_at(plan, params.duration)])}
    clip = np.stack([stills[label_at(plan, index / params.fps)] for index in range(frames)])
    flashed = np.floor(plan.events[(plan.events >= 0) & (plan.events < params.duration)] * params.fps).astype(int)
    clip[np.minimum(flashed, frames - 1)] += params.flash
    clip += rng.normal(0, params.video_noise, size=clip.shape).astype(np.float32)
    return (np.clip(clip, 0, 1) * 255 + 0.5).astype(np.uint8)


def _tone(plan: ClipPlan, params: AudiovisualParams, rng: np.random.Generator) -> np.ndarray:
    """``float32 [S]``: the class tone (slightly detuned per clip), switching at switch_time + offset."""
    detune = float(rng.uniform(-0.02, 0.02))
    tone = object_sound(plan.label, params.duration, params.sample_rate, _TONE_PEAK, detune)
    if plan.switch_time is not None and plan.switch_label is not None:
        switch = int(np.clip(round((plan.switch_time + plan.offset) * params.sample_rate), 0, len(tone)))
        tone[switch:] = object_sound(plan.switch_label, params.duration, params.sample_rate, _TONE_PEAK,
                                     detune)[switch:]
    return tone


def render_audio(plan: ClipPlan, params: AudiovisualParams, rng: np.random.Generator) -> np.ndarray:
    """``float32 [S]``: the class tone in white noise at ``snr_db``, plus a click at each event + offset."""
    rate, total = params.sample_rate, round(params.duration * params.sample_rate)
    tone = _tone(plan, params, rng)
    noise_std = float(np.sqrt(np.mean(tone.astype(np.float64) ** 2) / 10 ** (params.snr_db / 10)))
    if noise_std > _MAX_NOISE_STD:
        tone *= np.float32(_MAX_NOISE_STD / noise_std)
        noise_std = _MAX_NOISE_STD
    wave = tone + rng.normal(0, noise_std, size=total).astype(np.float32)
    envelope = params.click * np.exp(-np.arange(round(_CLICK_SECONDS * rate)) / (_CLICK_DECAY * rate))
    for time in plan.events + plan.offset:
        start = round(time * rate)
        if 0 <= start < total:
            burst = rng.choice([-1.0, 1.0], size=len(envelope)) * envelope
            end = min(total, start + len(burst))
            wave[start:end] += burst[:end - start].astype(np.float32)
    return wave


def _stressed(count: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """``bool [count]`` with exactly ``round(fraction · count)`` true entries at random places."""
    chosen = np.zeros(count, bool)
    chosen[rng.permutation(count)[:round(fraction * count)]] = True
    return chosen


def answer(params: AudiovisualParams) -> dict[str, Any]:
    """The known answer recorded in ``world.json``: the class table, the shortcut and the timing rules."""
    return {
        "classes": {c: {"colour": CLASS_COLOURS[c], "f0": SOUNDS[c][0], "harmonics": list(SOUNDS[c][1])}
                    for c in CLASSES},
        "event_rate": params.event_rate,
        "min_event_gap_s": _MIN_GAP_FRAMES / params.fps,
        "offset": ("audio time = video time + offset (s); offset clips draw it from "
                   f"U(-{params.max_offset}, {params.max_offset}), the others have 0"),
        "events": "event times in video time (s); a flash for e in [0, duration), a click for e + offset in it",
        "flash_frame": "floor(e * fps)",
        "click_sample": "round((e + offset) * sample_rate), the click's onset",
        "switch": "label holds before switch_time (video time; audio: switch_time + offset), switch_label after",
        "audio": f"{params.audio_codec} inside the mp4 at {params.sample_rate} Hz",
    }


def generate(out: Path, params: AudiovisualParams) -> Path:
    """Write ``clips/NNNNN.mp4`` (MPEG-4 video with an audio track) and the manifest; return its path.

    Columns: ``path``, ``label``, ``split`` and extras ``offset`` (s), ``events`` (JSON list of
    event times in video time), ``switch_time`` and ``switch_label`` (empty if the clip does not switch).
    """
    rng = np.random.default_rng(params.seed)
    splits = {label: assign_splits(params.n, params.splits, rng) for label in CLASSES}
    total = params.n * len(CLASSES)
    offsets = np.where(_stressed(total, params.offset_fraction, rng),
                       rng.uniform(-params.max_offset, params.max_offset, total), 0.0)
    switches = _stressed(total, params.switch_fraction, rng)
    records = []
    for index in range(total):
        repeat, label = divmod(index, len(CLASSES))
        plan = plan_clip(CLASSES[label], params, rng, round(float(offsets[index]), 4), bool(switches[index]))
        path = out / "clips" / f"{index:05d}.mp4"
        write_video(path, render_video(plan, params, rng), params.fps, audio=render_audio(plan, params, rng),
                    sample_rate=params.sample_rate, audio_codec=params.audio_codec, codec="mpeg4")
        records.append({"path": path, "label": plan.label, "split": splits[plan.label][repeat],
                        "offset": plan.offset, "events": json.dumps([float(t) for t in plan.events]),
                        "switch_time": "" if plan.switch_time is None else plan.switch_time,
                        "switch_label": plan.switch_label or ""})  # "": the columns exist, empty
    log.info("audiovisual: wrote %d clips to %s", len(records), out)
    return write_world(out, "audiovisual", params, records, answer(params))


WORLD = World("audiovisual", AudiovisualParams, generate,
              "weak class evidence in both modalities plus a strong synchronous flash/click shortcut")
