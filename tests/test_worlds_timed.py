"""The timed worlds (growth, audiovisual): valid, decodable, deterministic files, and each world's
known answer checked on the decoded pixels and samples and on the written notes."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from chronoclip.data.manifest import Manifest, load_manifest
from chronoclip.data.worlds import make_world
from chronoclip.data.worlds.audiovisual import CLASS_COLOURS
from chronoclip.data.worlds.growth import RATES, STAGES, make_culture, stage_of, structures
from chronoclip.data.worlds.universe import COLOURS, SOUNDS
from folder_digest import folder_digest

GROWTH: dict[str, Any] = {"n": 9, "frames": 8, "size": 32}
AV: dict[str, Any] = {"n": 1, "duration": 4.0, "offset_fraction": 0.5, "switch_fraction": 0.25}
FPS, RATE = 8.0, 16000


def _video(path: Path) -> np.ndarray:
    """Every frame, ``uint8 [T, H, W, 3]``."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def _audio(path: Path) -> tuple[np.ndarray, int]:
    """The mono audio track as ``float [S]`` in [-1, 1], and its sample rate (decoded with PyAV)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        chunks = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
        rate = stream.codec_context.sample_rate
    samples = np.concatenate(chunks)
    scale = 32768.0 if samples.dtype == np.int16 else 1.0
    return samples.astype(np.float64) / scale, rate


def _click_onsets(wave: np.ndarray, rate: int) -> np.ndarray:
    """Onset times (s) of clicks: where the 1 ms mean power first jumps 20× above its median."""
    power = np.convolve(wave**2, np.ones(16) / 16)[: len(wave)]  # causal: sample i sees [i - 15, i]
    loud = power > 20 * np.median(power)
    starts = np.flatnonzero(loud & ~np.concatenate([[False], loud[:-1]]))
    keep = np.concatenate([[True], np.diff(starts) > 0.05 * rate])  # one onset per click
    return starts[keep] / rate


def _flashed_frames(frames: np.ndarray) -> np.ndarray:
    brightness = frames.astype(np.float64).mean(axis=(1, 2, 3))
    return np.flatnonzero(brightness > np.median(brightness) + 40)


@pytest.fixture(scope="module")
def growth(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    return load_manifest(make_world("growth", tmp_path_factory.mktemp("growth"), seed=0, **GROWTH))


@pytest.fixture(scope="module")
def audiovisual(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    return load_manifest(make_world("audiovisual", tmp_path_factory.mktemp("av"), seed=0, **AV))


def _by_series(manifest: Manifest) -> dict[str, list[dict[str, Any]]]:
    series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in manifest:
        series[record["series"]].append(record)
    return {key: sorted(rows, key=lambda r: r["timestamp"]) for key, rows in series.items()}


# ------------------------------------------------------------------------------------------ growth

def test_growth_writes_decodable_pngs_deterministically(tmp_path: Path) -> None:
    manifest = load_manifest(make_world("growth", tmp_path / "a", seed=1, **GROWTH))
    assert len(manifest) == GROWTH["n"] * GROWTH["frames"]
    assert {"path", "text", "split", "timestamp", "stage", "series", "hours", "temperature", "progress",
            "stage_by_progress"} <= set(manifest.columns)
    for record in manifest:
        with Image.open(record["path"]) as image:
            assert image.format == "PNG" and image.size == (32, 32) and image.mode == "RGB"
    info = json.loads((tmp_path / "a" / "world.json").read_text())
    assert info["world"] == "growth" and info["answer"]["rates"] == {"18": 0.6, "24": 1.0, "30": 1.4}
    assert "dominant structure type" in info["answer"]["stage_rule"]
    make_world("growth", tmp_path / "b", seed=1, **GROWTH)
    make_world("growth", tmp_path / "c", seed=2, **GROWTH)
    assert folder_digest(tmp_path / "a") == folder_digest(tmp_path / "b")
    assert folder_digest(tmp_path / "a") != folder_digest(tmp_path / "c")


def test_growth_splits_by_series_and_times_follow_the_rate(growth: Manifest) -> None:
    series = _by_series(growth)
    assert all(len({r["split"] for r in rows}) == 1 for rows in series.values())
    assert {rows[0]["split"] for rows in series.values()} == {"train", "val", "test"}
    assert sorted(int(rows[0]["temperature"]) for rows in series.values()) == [18] * 3 + [24] * 3 + [30] * 3
    for rows in series.values():
        hours = np.array([float(r["hours"]) for r in rows])
        assert np.allclose([r["timestamp"] for r in rows], hours * 3600)
        expected = np.clip(RATES[int(rows[0]["temperature"])] * hours / 48.0, 0, 1)
        assert np.allclose([float(r["progress"]) for r in rows], expected, atol=1e-6)


def test_growth_notes_state_the_temperature_only(growth: Manifest) -> None:
    for rows in _by_series(growth).values():
        assert len({r["text"] for r in rows}) == 1  # one note per series: it cannot tell the time
        text, temperature = rows[0]["text"], rows[0]["temperature"]
        assert f"incubated at {temperature} °C" in text
        words = set(re.findall(r"[a-z]+", text.lower()))
        assert not words & {"spore", "spores", "hyphae", "hypha", "mycelium", "day", "days", "hour", "hours"}
        assert not re.search(r"\d", text.replace(f"{temperature} °C", ""))  # no other number, so no t


def test_growth_stages_are_monotone_and_warmer_cultures_are_further_along(growth: Manifest) -> None:
    series = _by_series(growth)
    for rows in series.values():
        order = [STAGES.index(r["stage"]) for r in rows]
        assert order == sorted(order) and order[0] == 0
    assert {r["stage"] for r in growth} == set(STAGES)
    for frame in range(GROWTH["frames"]):
        mean_stage = {t: np.mean([STAGES.index(rows[frame]["stage"]) for rows in series.values()
                                  if int(rows[0]["temperature"]) == t]) for t in RATES}
        assert mean_stage[18] <= mean_stage[24] <= mean_stage[30]
    last = {t: [STAGES.index(rows[-1]["stage"]) for rows in series.values() if int(rows[0]["temperature"]) == t]
            for t in RATES}
    assert max(last[18]) < min(last[30])


def test_growth_images_redden_with_progress(growth: Manifest) -> None:
    redness, progress = [], []
    for record in growth:
        image = np.asarray(Image.open(record["path"]), dtype=np.float64)
        redness.append((image[..., 0] - image[..., 1]).mean())
        progress.append(float(record["progress"]))
    assert np.corrcoef(redness, progress)[0, 1] > 0.9


def test_growth_structures_only_grow_and_stage_rule_is_monotone() -> None:
    grid = np.linspace(0, 1, 41)
    for seed in range(5):
        culture = make_culture(np.random.default_rng(seed), spores=20)
        coverage = np.stack([structures(culture, p, 32)[0] for p in grid])
        assert (np.diff(coverage, axis=0) >= -1e-9).all()  # branch geometry is shared and only grows
        order = [STAGES.index(stage_of(culture, p)) for p in grid]
        assert order == sorted(order) and order[0] == 0 and order[-1] == 2


# ------------------------------------------------------------------------------------- audiovisual

def test_audiovisual_writes_decodable_clips_deterministically(tmp_path: Path) -> None:
    small = {"n": 1, "duration": 2.0, "offset_fraction": 0.5}
    manifest = load_manifest(make_world("audiovisual", tmp_path / "a", seed=1, **small))
    assert manifest.labels == sorted(CLASS_COLOURS) and len(manifest) == 8
    assert {"path", "label", "split", "offset", "events", "switch_time", "switch_label"} <= set(
        (tmp_path / "a" / "manifest.csv").read_text().splitlines()[0].split(","))
    for record in manifest:
        frames = _video(record["path"])
        wave, rate = _audio(record["path"])
        assert frames.shape == (16, 32, 32, 3) and rate == RATE and len(wave) == 2 * RATE
    info = json.loads((tmp_path / "a" / "world.json").read_text())
    assert info["answer"]["classes"]["ring"] == {"colour": "white", "f0": 440.0, "harmonics": [1.0, 0.0, 0.0, 0.5]}
    make_world("audiovisual", tmp_path / "b", seed=1, **small)
    make_world("audiovisual", tmp_path / "c", seed=2, **small)
    assert folder_digest(tmp_path / "a") == folder_digest(tmp_path / "b")
    assert folder_digest(tmp_path / "a") != folder_digest(tmp_path / "c")


def _check_sync(record: dict[str, Any], duration: float) -> None:
    """Flashes on the frames of the events; each click within one frame period after its flash's start."""
    events = np.array(json.loads(record["events"]))
    offset = float(record["offset"])
    frames = _video(record["path"])
    shown = events[(events >= 0) & (events < duration)]
    assert _flashed_frames(frames).tolist() == sorted(np.floor(shown * FPS).astype(int).tolist())
    wave, rate = _audio(record["path"])
    heard = events + offset
    heard = heard[(heard >= 0) & (heard < duration - 0.01)]
    onsets = _click_onsets(wave, rate)
    assert len(onsets) == len(heard) and np.abs(onsets - heard).max() < 0.003, record["path"]
    in_video = onsets - offset
    on_screen = (in_video >= 0) & (in_video < duration)
    flash_start = np.floor(in_video[on_screen] * FPS) / FPS
    assert np.isin(np.floor(in_video[on_screen] * FPS), _flashed_frames(frames)).all()
    lag = in_video[on_screen] - flash_start
    assert ((lag >= -1e-3) & (lag < 1 / FPS)).all()


def test_audiovisual_flashes_and_clicks_align_up_to_the_recorded_offset(audiovisual: Manifest) -> None:
    offsets = np.array([float(r["offset"]) for r in audiovisual])
    assert (offsets == 0).sum() == 4 and (np.abs(offsets[offsets != 0]) <= 1.0).all()
    for record in audiovisual:
        _check_sync(record, AV["duration"])
    shifted = [r for r in audiovisual if abs(float(r["offset"])) > 2 / FPS]
    for record in shifted:  # the offset is real: clicks do not sit on flashes without it
        frames = _video(record["path"])
        onsets = _click_onsets(*_audio(record["path"]))
        onsets = onsets[onsets < AV["duration"]]
        assert not np.isin(np.floor(onsets * FPS), _flashed_frames(frames)).all()


def test_audiovisual_aac_keeps_clicks_on_time(tmp_path: Path) -> None:
    manifest = load_manifest(make_world("audiovisual", tmp_path, seed=3, n=1, duration=3.0, audio_codec="aac"))
    for record in manifest.records[:4]:
        _check_sync(record, 3.0)


def test_audiovisual_low_snr_fades_the_tone_instead_of_clipping_the_noise(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """At −20 dB the noise std would be 0.5-0.8 and the 16-bit file would clip it, burying the clicks."""
    with caplog.at_level("WARNING", logger="chronoclip.io.writers"):
        manifest = load_manifest(make_world("audiovisual", tmp_path, seed=4, n=1, duration=3.0, snr_db=-20.0))
    assert not caplog.records  # the writer warns when it clips a mix
    for record in manifest.records[:4]:
        wave, _ = _audio(record["path"])
        assert np.abs(wave).max() < 0.999 and 0.09 < np.median(np.abs(wave)) / 0.6745 < 0.11  # noise std 0.1
        _check_sync(record, 3.0)


def test_audiovisual_class_evidence_in_sound_and_picture(audiovisual: Manifest) -> None:
    for record in audiovisual:
        if record["switch_label"] is not None:
            assert record["switch_time"] == str(AV["duration"] / 2) and record["switch_label"] != record["label"]
            continue
        wave, rate = _audio(record["path"])
        spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
        peak = np.fft.rfftfreq(len(wave), 1 / rate)[np.argmax(spectrum)]
        f0, harmonics = SOUNDS[record["label"]]
        ratio = peak / f0
        assert abs(ratio - round(ratio)) < 0.03 * ratio and 1 <= round(ratio) <= len(harmonics), record["label"]
        still = np.median(_video(record["path"]).astype(np.float64) / 255, axis=0)  # flashes and noise gone
        background = np.median(np.concatenate([still[:2], still[-2:]], axis=0).reshape(-1, 3), axis=0)
        shift = (still[8:24, 8:24] - background).mean(axis=(0, 1))  # the object is near the centre
        directions = {c: np.array(COLOURS[colour]) - background for c, colour in CLASS_COLOURS.items()}
        cosine = {c: shift @ d / np.linalg.norm(shift) / np.linalg.norm(d) for c, d in directions.items()}
        assert max(cosine, key=cosine.__getitem__) == record["label"]
