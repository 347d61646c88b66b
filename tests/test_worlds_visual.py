"""The visual worlds (captions, motion, captioned-motion, domains): valid, decodable, deterministic
files, and each world's known answer checked on the decoded pixels and the written captions."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from chronoclip.data.manifest import Manifest, load_manifest
from chronoclip.data.worlds import make_world, world_params
from chronoclip.data.worlds.animation import BY_LABEL, CLASSES, FORWARD, trajectory
from chronoclip.data.worlds.captioned_motion import DIRECTIONS, heading
from chronoclip.data.worlds.captions import apart, scene
from chronoclip.data.worlds.domains import GENERIC_NOUNS
from chronoclip.data.worlds.universe import COLOURS, SHAPES, SIZES, SYNONYMS, Thing
from chronoclip.errors import ConfigError
from folder_digest import folder_digest

#: Small but complete versions of each world (parameters every world shares: seed, n, size).
SMALL: dict[str, dict[str, Any]] = {
    "captions": {"n": 30, "size": 32},
    "motion": {"n": 3, "size": 32, "frames": 8},
    "captioned-motion": {"n": 3, "size": 32, "frames": 8},
    "domains": {"n": 2, "size": 32},
}
#: Columns each world must write.
COLUMNS: dict[str, set[str]] = {
    "captions": {"path", "text", "split", "shape", "colour"},
    "motion": {"path", "label", "split", "text", "kind"},
    "captioned-motion": {"path", "label", "split", "text", "kind", "transcript"},
    "domains": {"path", "label", "text", "domain", "split", "caption_noise"},
}
ORDER_PAIRS: list[tuple[str, str]] = [(c.label, c.partner) for c in CLASSES if c.partner and c.label in FORWARD]


def _frames(path: Path) -> np.ndarray:
    """Every frame of a video, ``uint8 [T, H, W, 3]``."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def _silhouettes(frames: np.ndarray) -> np.ndarray:
    """Colour-blind object masks ``bool [T, H, W]``: pixels far from the frame's (plain) background."""
    pixels = frames.astype(np.float32)
    background = np.median(pixels, axis=(1, 2), keepdims=True)
    return np.abs(pixels - background).max(-1) > 40


def _words(text: str) -> str:
    return f" {re.sub(r'[^a-z-]+', ' ', text.lower())} "


def _names(text: str, shape: str) -> bool:
    """Whether a caption names ``shape`` by one of its synonyms (whole words)."""
    return any(f" {synonym} " in _words(text) for synonym in SYNONYMS[shape])


@pytest.fixture(scope="module")
def motion_world(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """A motion world large enough for class statistics (24 clips per class), without pixel noise."""
    out = tmp_path_factory.mktemp("motion")
    return load_manifest(make_world("motion", out, seed=0, n=24, size=32, frames=8, noise=0.0))


@pytest.fixture(scope="module")
def captioned_world(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    out = tmp_path_factory.mktemp("captioned")
    return load_manifest(make_world("captioned-motion", out, seed=0, n=3, size=32, frames=8))


# ------------------------------------------------------------------------------------ every world

@pytest.mark.parametrize("name", list(SMALL))
def test_world_files_validate_decode_and_are_a_function_of_the_seed(name: str, tmp_path: Path) -> None:
    params = SMALL[name]
    manifest = load_manifest(make_world(name, tmp_path / "a", seed=1, **params))
    info = json.loads((tmp_path / "a" / "world.json").read_text())
    assert info["world"] == name and info["rows"] == len(manifest) and info["answer"]
    assert COLUMNS[name] <= set(manifest.columns)
    assert {"train", "test"} <= set(manifest.splits) <= {"train", "val", "test"}
    for record in manifest:
        if record["path"].suffix == ".png":
            with Image.open(record["path"]) as image:
                assert image.size == (params["size"], params["size"]) and image.mode == "RGB"
        else:
            assert _frames(record["path"]).shape == (params["frames"], params["size"], params["size"], 3)
    make_world(name, tmp_path / "b", seed=1, **params)
    make_world(name, tmp_path / "c", seed=2, **params)
    assert folder_digest(tmp_path / "a") == folder_digest(tmp_path / "b")
    assert folder_digest(tmp_path / "a") != folder_digest(tmp_path / "c")


@pytest.mark.parametrize(("name", "override"), [
    ("motion", "size=33"), ("motion", "frames=2"), ("captioned-motion", "n=0"), ("captions", "two_objects=2.0"),
    ("domains", "target_style=source"), ("domains", "caption_noise=1.5"), ("domains", "colour=red"),
])
def test_bad_parameters_are_refused(name: str, override: str) -> None:
    with pytest.raises(ConfigError):
        world_params(name, dotlist=[override])


# ------------------------------------------------------------------------------------ captions

def test_captions_name_every_object_and_objects_do_not_overlap(tmp_path: Path) -> None:
    full = load_manifest(make_world("captions", tmp_path / "full", seed=0, n=60, size=16, drop_position=0.0,
                                    drop_size=0.0))
    positions = ("left", "right", "top", "bottom", "centre")
    for record in full:
        words = _words(record["text"])
        assert _names(record["text"], record["shape"]) and f" {record['colour']} " in words, record
        assert sum(words.count(f" {size} ") for size in SIZES) == int(record["objects"]), record
        assert sum(words.count(f" {p} ") for p in positions) >= int(record["objects"]), record
    assert {r["objects"] for r in full} == {"1", "2"}
    varied = load_manifest(make_world("captions", tmp_path / "varied", seed=0, n=60, size=16))
    sized = [sum(_words(r["text"]).count(f" {size} ") for size in SIZES) for r in varied if r["objects"] == "1"]
    assert 0 < sum(sized) < len(sized)  # drop_size=0.5 by default: some captions name the size, some do not
    for record in varied:  # colour and shape are always named
        assert _names(record["text"], record["shape"]) and f" {record['colour']} " in _words(record["text"])
    rng = np.random.default_rng(0)
    pairs = [things for things in (scene(rng, 1.0) for _ in range(200)) if len(things) == 2]
    assert len(pairs) > 150 and all(apart(first, second) for first, second in pairs)


# ------------------------------------------------------------------------------------ motion

@pytest.mark.parametrize(("forward", "backward"), ORDER_PAIRS)
def test_order_partner_is_the_time_reversal_of_a_draw_of_the_same_distribution(forward: str, backward: str) -> None:
    for seed in range(5):
        drawn = trajectory(forward, np.random.default_rng(seed), 8)
        assert trajectory(backward, np.random.default_rng(seed), 8) == drawn[::-1]
        assert drawn != drawn[::-1]  # the pair really differs in order


def test_appearance_classes_read_the_same_backwards() -> None:
    for motion in CLASSES:
        if motion.kind == "appearance":
            heights = np.array([t.y for t in trajectory(motion.label, np.random.default_rng(0), 9)])
            assert np.allclose(heights, heights[::-1]) and np.ptp(heights) > 0.1


def _centred_mean_silhouette(masks: np.ndarray, window: int = 24) -> np.ndarray:
    """Frame-order-invariant feature: the mean over frames of the mask cropped around its centroid."""
    half = window // 2
    padded = np.pad(masks, ((0, 0), (half, half), (half, half)))
    crops = []
    for mask, pad in zip(masks, padded, strict=True):
        ys, xs = np.nonzero(mask)
        if len(xs):
            cy, cx = round(ys.mean()) + half, round(xs.mean()) + half
            crops.append(pad[cy - half:cy + half, cx - half:cx + half])
    return np.mean(crops, axis=0).ravel() if crops else np.zeros(window * window)


def test_frame_averages_are_at_chance_on_order_pairs_but_see_appearance(motion_world: Manifest) -> None:
    labels = np.array(motion_world.column("label"))
    features = np.stack([_centred_mean_silhouette(_silhouettes(_frames(r["path"]))) for r in motion_world])
    train = np.array(motion_world.column("split")) == "train"

    def nearest_centroid_accuracy(classes: tuple[str, ...]) -> float:
        centroids = np.stack([features[train & (labels == c)].mean(0) for c in classes])
        rows = np.isin(labels, classes) & ~train
        predicted = np.array(classes)[((features[rows, None] - centroids[None]) ** 2).sum(-1).argmin(1)]
        return float((predicted == labels[rows]).mean())

    appearance = tuple(c.label for c in CLASSES if c.kind == "appearance")
    assert nearest_centroid_accuracy(appearance) >= 0.9
    assert np.mean([nearest_centroid_accuracy(pair) for pair in ORDER_PAIRS]) <= 0.65


def _order_statistic(label: str, frames: np.ndarray) -> float:
    """A time-aware statistic whose sign gives the direction of time of a clip of ``label``'s pair."""
    masks = _silhouettes(frames)
    t = np.arange(len(frames)) - (len(frames) - 1) / 2
    if label in ("moving right", "moving left"):
        xs = np.array([np.nonzero(m)[1].mean() for m in masks])
        return float(t @ xs)
    if label in ("growing", "shrinking", "fading in", "fading out"):
        return float(t @ masks.sum((1, 2)))
    # rotation: the silhouette's centroid circles the object's centre (y grows downwards on screen)
    centroids = np.array([[np.nonzero(m)[1].mean(), -np.nonzero(m)[0].mean()] for m in masks])
    offsets = centroids - centroids.mean(0)
    return float((offsets[:-1, 0] * offsets[1:, 1] - offsets[:-1, 1] * offsets[1:, 0]).sum())


def test_the_order_is_in_the_pixels(motion_world: Manifest) -> None:
    """Frame averages are blind to it, but a time-aware statistic reads each clip's direction of time."""
    forward = {label for label, _ in ORDER_PAIRS}
    for record in motion_world:
        if record["kind"] == "order":
            statistic = _order_statistic(record["label"], _frames(record["path"]))
            assert (statistic > 0) == (record["label"] in forward), record["label"]


def test_motion_answer_lists_pairs_and_appearance_classes(motion_world: Manifest) -> None:
    answer = json.loads((motion_world.root / "world.json").read_text())["answer"]
    assert sorted(map(sorted, answer["order_pairs"])) == sorted(map(sorted, ORDER_PAIRS))
    assert set(answer["appearance_classes"]) == {c.label for c in CLASSES if c.kind == "appearance"}
    split_counts = {tuple(sorted(r["split"] for r in motion_world if r["label"] == label)) for label in BY_LABEL}
    assert len(split_counts) == 1  # balanced classes, each split with the same fractions (stratified)
    assert len(next(iter(split_counts))) == 24 and set(next(iter(split_counts))) == {"train", "val", "test"}


# ------------------------------------------------------------------------------------ captioned-motion

def test_captions_name_the_object_colour_and_motion(captioned_world: Manifest) -> None:
    for record in captioned_world:
        segments = json.loads(record["transcript"])
        colour, shape = segments[0].split()[2], next(s for s in SHAPES if f" {s} " in _words(segments[0]))
        assert colour in COLOURS and f" {colour} " in _words(record["text"]) and _names(record["text"], shape)
        motion = BY_LABEL[record["label"]]
        assert any(phrase in record["text"] for phrase in motion.participles + motion.verbs), record


def test_transcripts_are_four_segments_in_time_order(captioned_world: Manifest) -> None:
    for record in captioned_world:
        segments = json.loads(record["transcript"])
        assert len(segments) == 4 and all(isinstance(s, str) and s for s in segments)
        label, frames = record["label"], _frames(record["path"])
        first, last = frames[1], frames[-1]  # the middle frames of the first and last quarter (8 frames)
        where = [segment.split(" pointing")[0] for segment in segments]  # position and size, not heading
        if label.startswith("moving"):
            x_first, x_last = (np.nonzero(_silhouettes(f[None])[0])[1].mean() for f in (first, last))
            assert ("left" in where[0]) == (x_first < x_last) and ("right" in where[-1]) == (x_first < x_last)
        if label in ("growing", "shrinking"):
            grows = _silhouettes(first[None]).sum() < _silhouettes(last[None]).sum()
            assert segments[0].split()[1] == ("small" if grows else "large"), segments
            assert segments[-1].split()[1] == ("large" if grows else "small"), segments
        if label in ("fading in", "fading out"):
            assert ("barely visible" in segments[0]) == (label == "fading in")
            assert ("barely visible" in segments[-1]) == (label == "fading out")
        if label.startswith("rotating"):
            steps = [(DIRECTIONS.index(b.split("pointing ")[1]) - DIRECTIONS.index(a.split("pointing ")[1])) % 8
                     for a, b in itertools.pairwise(segments)]
            assert all(1 <= (s if label.endswith("anticlockwise") else 8 - s) <= 3 for s in steps), segments


def test_heading_is_where_the_tip_points() -> None:
    angles = (0.0, np.pi / 2, np.pi, 1.5 * np.pi, np.pi / 4)
    assert [heading(Thing("heart", "red", angle=a)) for a in angles] == ["down", "right", "up", "left", "down right"]
    assert [heading(Thing("crescent", "red", angle=a)) for a in angles] == ["right", "up", "left", "down", "up right"]
    assert heading(Thing("circle", "red")) is None


# ------------------------------------------------------------------------------------ domains

def test_domains_caption_noise_is_controlled_and_only_in_the_target(tmp_path: Path) -> None:
    q = 0.4
    manifest = load_manifest(make_world("domains", tmp_path, seed=0, n=40, size=16, caption_noise=q))
    source = [r for r in manifest if r["domain"] == "source"]
    target = [r for r in manifest if r["domain"] == "target"]
    assert len(source) == len(target) == 400 and all(r["caption_noise"] == "clean" for r in source)
    assert {r["split"] for r in source} == {"train", "val"} and {r["split"] for r in target} == {"train", "test"}
    rates = {kind: np.mean([r["caption_noise"] == kind for r in target]) for kind in ("swapped", "removed")}
    assert abs(rates["swapped"] + rates["removed"] - q) < 0.06
    assert abs(rates["swapped"] - q / 2) < 0.05 and abs(rates["removed"] - q / 2) < 0.05
    realised = json.loads((tmp_path / "world.json").read_text())["answer"]["realised_noise"]
    assert realised == pytest.approx({**rates, "noisy": rates["swapped"] + rates["removed"]})
    for record in manifest:
        named = [shape for shape in SHAPES if _names(record["text"], shape)]
        expected = {"clean": [record["label"]], "removed": []}.get(record["caption_noise"])
        if expected is None:  # swapped: exactly one shape, a wrong one
            assert len(named) == 1 and named[0] != record["label"], record
        else:
            assert named == expected, record
        if record["caption_noise"] == "removed":
            assert any(f" {noun} " in _words(record["text"]) for noun in GENERIC_NOUNS)


def test_domains_classes_are_balanced_in_every_split(tmp_path: Path) -> None:
    manifest = load_manifest(make_world("domains", tmp_path, seed=3, n=10, size=16))
    for domain in ("source", "target"):
        for split in ("train", "val", "test"):
            labels = [r["label"] for r in manifest if r["domain"] == domain and r["split"] == split]
            assert len(set(labels)) in (0, len(SHAPES)) and len({labels.count(s) for s in set(labels)}) <= 1
