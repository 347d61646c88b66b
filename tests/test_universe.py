"""The shared synthetic universe: deterministic rendering, distinct shapes, captions and sounds."""

from __future__ import annotations

import numpy as np
import pytest

from chronoclip.data.worlds import list_worlds, world_params
from chronoclip.data.worlds.base import assign_splits
from chronoclip.data.worlds.universe import (
    COLOURS,
    SHAPES,
    SIZES,
    STYLES,
    Thing,
    describe,
    object_sound,
    position_phrase,
    random_thing,
    render_scene,
    shape_coverage,
)
from chronoclip.errors import ConfigError


def test_rendering_is_a_function_of_the_seed() -> None:
    def draw(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return render_scene([random_thing(rng), random_thing(rng)], 48, STYLES["textured"], rng)

    assert np.array_equal(draw(3), draw(3))
    assert not np.array_equal(draw(3), draw(4))


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_is_drawn_inside_its_box(shape: str) -> None:
    thing = Thing(shape, "red", size=0.5, x=0.5, y=0.5)
    coverage = shape_coverage(thing, 64)
    assert coverage.max() == pytest.approx(1.0)
    ys, xs = np.nonzero(coverage > 0)
    assert xs.min() >= 64 * 0.25 - 1 and xs.max() <= 64 * 0.75 + 1
    assert ys.min() >= 64 * 0.25 - 1 and ys.max() <= 64 * 0.75 + 1


def test_shapes_are_mutually_distinct() -> None:
    masks = np.stack([shape_coverage(Thing(s, "red", 0.6), 48) for s in SHAPES]).reshape(len(SHAPES), -1)
    distances = np.abs(masks[:, None, :] - masks[None, :, :]).mean(-1)
    off_diagonal = distances[~np.eye(len(SHAPES), dtype=bool)]
    assert off_diagonal.min() > 0.02


def test_outline_styles_draw_less_than_solid() -> None:
    thing = Thing("square", "blue", 0.6)
    solid, outline, dashed = (shape_coverage(thing, 48, fill).sum() for fill in ("solid", "outline", "dashed"))
    assert dashed < outline < solid


def test_object_colour_reaches_the_pixels_in_the_source_style() -> None:
    image = render_scene([Thing("circle", "green", 0.6)], 32, STYLES["source"], np.random.default_rng(0))
    centre = image[16, 16] / 255.0
    assert np.allclose(centre, COLOURS["green"], atol=0.01)


def test_shifted_styles_change_the_pixels_of_the_same_scene() -> None:
    scene = [Thing("star", "yellow", 0.6)]
    images = {name: render_scene(scene, 32, style, np.random.default_rng(0)) for name, style in STYLES.items()}
    for name, image in images.items():
        if name != "source":
            assert np.abs(image.astype(int) - images["source"]).mean() > 10, name


def test_captions_use_the_vocabulary() -> None:
    thing = Thing("hexagon", "purple", SIZES["small"], x=0.2, y=0.8)
    assert describe(thing) == "a small purple hexagon at the bottom left"
    assert position_phrase(0.5, 0.5) == "in the centre"
    words = {describe(thing, np.random.default_rng(s), with_position=False).split()[-1] for s in range(20)}
    assert words <= {"hexagon", "tile"}


def test_unknown_words_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown shape 'blob'"):
        Thing("blob", "red")
    with pytest.raises(ValueError, match="unknown colour"):
        Thing("circle", "teal")


def test_object_sound_has_its_pitch() -> None:
    rate = 16000
    wave = object_sound("ring", 1.0, rate)
    assert wave.shape == (rate,) and wave.dtype == np.float32
    assert np.abs(wave).max() == pytest.approx(0.3, rel=1e-3)
    spectrum = np.abs(np.fft.rfft(wave))
    assert np.fft.rfftfreq(rate, 1 / rate)[spectrum.argmax()] == pytest.approx(440.0, abs=1.0)


@pytest.mark.parametrize("count", [1, 3, 10, 101])
def test_assign_splits_covers_every_item_with_the_fractions(count: int) -> None:
    splits = assign_splits(count, (0.7, 0.15, 0.15), np.random.default_rng(0))
    assert len(splits) == count
    if count >= 3:
        assert set(splits) == {"train", "val", "test"}
    if count == 101:
        assert splits.count("train") == 71


def test_world_registry_and_parameter_errors() -> None:
    assert {"captions", "growth", "motion", "captioned-motion", "domains", "audiovisual"} == set(list_worlds())
    with pytest.raises(ConfigError, match="unknown world"):
        world_params("nope")
