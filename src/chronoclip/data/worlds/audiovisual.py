"""The ``audiovisual`` world: the "shortcut-sync" AV world of spec A.11, for CrissCross.

Each clip's class is an object of the universe, weakly present in both modalities for the whole
clip: its shape/colour at low contrast under noise in the video, its harmonic sound (pitch and
timbre from ``universe.SOUNDS``) at about 0 dB SNR in the audio. A class-independent *shortcut* is
strong and perfectly synchronous: Poisson events (about 1/s), each a global flash in the video and
a click in the audio at the same instant. Strict audio-video synchrony rewards learning the
shortcut; relaxed (time-offset) pairing does not — which is what CrissCross's sampler exploits.

Stressors: a fraction ``offset_fraction`` of clips get a recording offset U(-max_offset, max_offset)
between audio and video; a fraction ``switch_fraction`` switch class at mid-clip. Audio is stored as
16-bit PCM inside the mp4 so event timing is sample-exact (no codec priming or noise substitution).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chronoclip.data.worlds.base import World, WorldParams, assign_splits, write_world
from chronoclip.data.worlds.universe import (
    COLOURS,
    SHAPES,
    SIZES,
    SOUNDS,
    STYLES,
    Thing,
    object_sound,
    render_background,
    render_scene,
)
from chronoclip.io.writers import write_video

log = logging.getLogger(__name__)

CLASSES = SHAPES[:8]
_CLICK_SECONDS = 0.01


@dataclass
class AudiovisualParams(WorldParams):
    """Parameters of the audiovisual world.

    Attributes:
        n: clips per class.
        duration: seconds per clip.
        size: frame side in pixels (even).
        fps: video frame rate.
        sample_rate: audio sample rate.
        event_rate: shortcut events (flash + click) per second.
        contrast: visibility of the class object in the video (0 = invisible).
        snr_db: class tone power over noise power in the audio.
        offset_fraction: fraction of clips with a random audio-video recording offset.
        max_offset: largest such offset in seconds.
        switch_fraction: fraction of clips whose class switches at mid-clip.
    """

    n: int = 8
    duration: float = 8.0
    size: int = 32
    fps: float = 8.0
    sample_rate: int = 16000
    event_rate: float = 1.0
    contrast: float = 0.35
    snr_db: float = 0.0
    offset_fraction: float = 0.0
    max_offset: float = 1.0
    switch_fraction: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n < 1 or self.duration <= 0 or self.size < 8 or self.size % 2 or self.fps <= 0:
            raise ValueError(f"need n >= 1, duration > 0, an even size >= 8 and fps > 0: {self}")
        if not 0 <= self.offset_fraction <= 1 or not 0 <= self.switch_fraction <= 1 or self.max_offset < 0:
            raise ValueError(f"offset_fraction and switch_fraction in [0, 1], max_offset >= 0: {self}")


@dataclass(frozen=True)
class ClipPlan:
    """What one clip contains: its classes over time, shortcut events and recording offset."""

    label: str
    second_label: str | None
    switch_time: float | None
    events: np.ndarray  # event times in video time, seconds
    offset: float  # audio time = video time + offset
    colour: str


def plan_clip(label: str, params: AudiovisualParams, rng: np.random.Generator) -> ClipPlan:
    """Draw one clip's events, offset and (optional) class switch."""
    count = rng.poisson(params.event_rate * params.duration)
    events = np.sort(rng.uniform(0.1, params.duration - 0.1, size=count))
    offset = float(rng.uniform(-params.max_offset, params.max_offset)) if rng.random() < params.offset_fraction else 0.0
    switched = rng.random() < params.switch_fraction
    second = str(rng.choice([c for c in CLASSES if c != label])) if switched else None
    return ClipPlan(label, second, params.duration / 2 if switched else None, events, offset,
                    str(rng.choice(list(COLOURS))))


def _label_at(plan: ClipPlan, time: float) -> str:
    if plan.second_label is not None and plan.switch_time is not None and time >= plan.switch_time:
        return plan.second_label
    return plan.label


def render_video(plan: ClipPlan, params: AudiovisualParams, rng: np.random.Generator) -> np.ndarray:
    """``uint8 [T, S, S, 3]``: the faint class object, pixel noise, and a flash on each event's frame."""
    frames = round(params.duration * params.fps)
    style = STYLES["source"]
    noisy = type(style)("av", noise=0.08, contrast=params.contrast)
    background = render_background(params.size, style, rng)
    flash_frames = {int(t * params.fps) for t in plan.events}
    clip = []
    for index in range(frames):
        shape = _label_at(plan, index / params.fps)
        thing = Thing(shape, plan.colour, SIZES["large"], 0.5, 0.5, 0.0)
        brightness = 0.35 if index in flash_frames else 0.0
        clip.append(render_scene([thing], params.size, noisy, rng, background=background, brightness=brightness))
    return np.stack(clip)


def render_audio(plan: ClipPlan, params: AudiovisualParams, rng: np.random.Generator) -> np.ndarray:
    """``float32 [S]``: the class tone in noise at ``snr_db``, plus a click at each (offset) event."""
    rate, total = params.sample_rate, round(params.duration * params.sample_rate)
    tone = object_sound(plan.label, params.duration, rate, amplitude=1.0, detune=float(rng.uniform(-0.02, 0.02)))
    if plan.switch_time is not None and plan.second_label is not None:
        switch = round(plan.switch_time * rate)
        tone[switch:] = object_sound(plan.second_label, params.duration, rate, amplitude=1.0)[switch:]
    tone_power = float(np.mean(tone**2))
    noise = rng.normal(0, np.sqrt(tone_power / 10 ** (params.snr_db / 10)), size=total).astype(np.float32)
    wave = tone + noise
    click = np.hanning(round(_CLICK_SECONDS * rate)).astype(np.float32) * 6 * np.sqrt(tone_power)
    for time in plan.events + plan.offset:
        start = round(time * rate)
        if start >= 0 and start + len(click) <= total:
            wave[start:start + len(click)] += click * rng.choice([-1.0, 1.0])
    return (0.9 * wave / max(float(np.abs(wave).max()), 1e-6)).astype(np.float32)


def generate(out: Path, params: AudiovisualParams) -> Path:
    """Write ``clips/NNNNN.mp4`` (H.264 + PCM audio) and the manifest."""
    rng = np.random.default_rng(params.seed)
    splits = {label: assign_splits(params.n, params.splits, rng) for label in CLASSES}
    records: list[dict[str, object]] = []
    for repeat in range(params.n):
        for label in CLASSES:
            plan = plan_clip(label, params, rng)
            path = out / "clips" / f"{len(records):05d}.mp4"
            write_video(path, render_video(plan, params, rng), params.fps, audio=render_audio(plan, params, rng),
                        sample_rate=params.sample_rate, audio_codec="pcm_s16le", codec="mpeg4")
            records.append({"path": path, "label": label, "split": splits[label][repeat], "offset": plan.offset,
                            "events": json.dumps([round(float(t), 4) for t in plan.events]),
                            "switch_time": plan.switch_time, "switch_label": plan.second_label})
    log.info("audiovisual: wrote %d clips to %s", len(records), out)
    answer = {"classes": {c: {"f0": SOUNDS[c][0]} for c in CLASSES}, "event_rate": params.event_rate,
              "offset": "audio time = video time + offset (s)", "events": "event times in video time (s)"}
    return write_world(out, "audiovisual", params, records, answer)


WORLD = World("audiovisual", AudiovisualParams, generate,
              "weak class evidence in both modalities plus a strong synchronous flash/click shortcut")
