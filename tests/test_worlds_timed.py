"""The timed worlds (growth, audiovisual): files decode, same seed -> same bytes, and their known answers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chronoclip.data.manifest import load_manifest
from chronoclip.data.worlds import make_world
from chronoclip.data.worlds.growth import STAGES
from chronoclip.io.audio import load_audio
from chronoclip.io.video import probe_video, read_video

#: The worlds of this file (the visual worlds are tested in test_worlds_visual.py).
SMALL = {
    "growth": {"n": 6, "frames": 6, "size": 32},
    "audiovisual": {"n": 2, "duration": 3.0},
}


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize("name", sorted(SMALL))
def test_world_writes_valid_decodable_files_deterministically(name: str, tmp_path: Path) -> None:
    manifest_path = make_world(name, tmp_path / "a", seed=1, **SMALL[name])
    manifest = load_manifest(manifest_path)
    assert json.loads((tmp_path / "a" / "world.json").read_text())["world"] == name
    assert set(manifest.splits) <= {"train", "val", "test"} and "train" in manifest.splits
    for record in manifest.records[:4]:
        if record["path"].suffix == ".png":
            assert Image.open(record["path"]).size[0] > 0
        else:
            assert read_video(record["path"], 2).frames.shape[0] == 2
    make_world(name, tmp_path / "b", seed=1, **SMALL[name])
    make_world(name, tmp_path / "c", seed=2, **SMALL[name])
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_growth_series_notes_stages_and_rates(tmp_path: Path) -> None:
    manifest = load_manifest(make_world("growth", tmp_path, seed=0, n=12, frames=8, size=32))
    by_series: dict[str, list[dict[str, object]]] = {}
    for record in manifest:
        by_series.setdefault(record["series"], []).append(record)
    splits_of = {s: {r["split"] for r in rows} for s, rows in by_series.items()}
    assert all(len(v) == 1 for v in splits_of.values())
    for rows in by_series.values():
        assert len({r["text"] for r in rows}) == 1  # the note cannot tell the time
        text = str(rows[0]["text"])
        assert not any(stage in text for stage in STAGES)
        stages = [STAGES.index(str(r["stage"])) for r in sorted(rows, key=lambda r: float(r["timestamp"]))]
        assert stages == sorted(stages)
    final = {int(rows[0]["temperature"]): STAGES.index(str(rows[-1]["stage"])) for rows in by_series.values()}
    if 18 in final and 30 in final:
        assert final[30] >= final[18]


def test_growth_images_redden_with_progress(tmp_path: Path) -> None:
    manifest = load_manifest(make_world("growth", tmp_path, seed=3, n=3, frames=10, size=32, temperatures=[30]))
    redness, progress = [], []
    for record in manifest:
        image = np.asarray(Image.open(record["path"])).astype(float)
        redness.append((image[..., 0] - image[..., 1]).mean())
        progress.append(float(record["progress"]))
    assert np.corrcoef(redness, progress)[0, 1] > 0.9


def test_audiovisual_flashes_and_clicks_align(tmp_path: Path) -> None:
    manifest = load_manifest(make_world("audiovisual", tmp_path, seed=0, n=1, duration=4.0, offset_fraction=0.5))
    for record in manifest:
        info = probe_video(record["path"])
        assert info.has_audio and info.fps == 8.0
        brightness = read_video(record["path"], info.num_frames).frames.astype(float).mean(axis=(1, 2, 3))
        flashes = np.nonzero(brightness > np.median(brightness) + 40)[0] / info.fps
        events = np.array(json.loads(record["events"]))
        assert len(flashes) == len({int(t * 8) for t in events})
        assert all(np.abs(flashes[:, None] - events[None]).min(1) <= 1 / 8)
        audio = load_audio(record["path"], 16000)
        envelope = np.convolve(np.abs(audio), np.ones(80) / 80, mode="same")
        offset = float(record["offset"] or 0.0)
        for time in events + offset:
            if 0.05 < time < 3.95:
                window = envelope[int((time - 0.05) * 16000):int((time + 0.05) * 16000)]
                assert window.max() > 2 * np.median(envelope), (record["path"], time)
