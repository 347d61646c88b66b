"""The ``domains`` world: the ten shape classes in a source style and a shifted target style, with
target captions of controlled noise (TRUST / LaGTrAn's setting; methods-multimodal §B.9).

Every image shows one object; its class is the object's shape (:data:`~chronoclip.data.worlds.universe.SHAPES`).
Source images are clean (plain background, solid shapes); target images use ``target_style``
(default ``textured``: a checkerboard background, a hue shift and pixel noise — the silhouette that
defines the class survives, so the shift is clear but bridgeable). Every image has a caption; in
the target domain each caption is corrupted with probability ``caption_noise``: half of the
corrupted ones name a wrong shape (``swapped``), half name none (``removed``). Source captions are
always clean. The ``label`` column holds the true class of every row; a domain-adaptation method
must not read target labels outside evaluation.

Splits: source rows are ``train`` / ``val``; target rows are ``train`` (the unlabelled adaptation
pool) / ``test``; each split is stratified by class.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from chronoclip.data.worlds.base import World, WorldParams, assign_splits, write_world
from chronoclip.data.worlds.universe import (
    SHAPES,
    STYLES,
    SYNONYMS,
    Thing,
    position_phrase,
    random_thing,
    render_scene,
    size_word,
)
from chronoclip.io.writers import write_png

log = logging.getLogger(__name__)

_TEMPLATES = ("a {size} {colour} {noun} {where}", "a picture of a {colour} {noun} {where}",
              "a drawing of a {size} {noun} {where}", "there is a {size} {colour} {noun} {where}",
              "a {colour} {noun} {where}")
#: Nouns of a caption whose class word was removed.
GENERIC_NOUNS: tuple[str, ...] = ("object", "shape", "thing")
#: Values of the ``caption_noise`` column.
NOISE_KINDS: tuple[str, ...] = ("clean", "swapped", "removed")
_VOWEL_AFTER_A = re.compile(r"\ba (?=[aeiou])")


@dataclass
class DomainsParams(WorldParams):
    """Parameters of the ``domains`` world.

    Attributes:
        n: images per class and domain (10 classes, 2 domains: ``20 * n`` images).
        size: image side in pixels.
        target_style: the target domain's style, a name of ``universe.STYLES`` other than ``source``.
        caption_noise: probability that a target caption is corrupted (half swapped, half removed).
        splits: proportions (train, val, test): source images are split train : val, target images
            train : test (the default gives source 82 % / 18 %, target 70 % / 30 %).
    """

    n: int = 50
    size: int = 64
    target_style: str = "textured"
    caption_noise: float = 0.2
    splits: tuple[float, float, float] = (0.7, 0.15, 0.3)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.target_style not in STYLES or self.target_style == "source":
            raise ValueError(f"target_style must be one of {[s for s in STYLES if s != 'source']}, "
                             f"got '{self.target_style}'")
        if not 0 <= self.caption_noise <= 1:
            raise ValueError(f"caption_noise must be in [0, 1], got {self.caption_noise}")
        if self.n < 2 or self.size < 8 or self.splits[0] <= 0 or self.splits[2] <= 0:
            raise ValueError(f"need n >= 2, size >= 8 and train and test proportions > 0; got {self}")


def caption(thing: Thing, noise: str, rng: np.random.Generator) -> str:
    """A caption of one object; ``noise`` is ``clean`` (its shape, a synonym), ``swapped`` (a wrong
    shape) or ``removed`` (a generic noun)."""
    if noise == "swapped":
        wrong = str(rng.choice([s for s in SHAPES if s != thing.shape]))
        noun = str(rng.choice(SYNONYMS[wrong]))
    elif noise == "removed":
        noun = str(rng.choice(GENERIC_NOUNS))
    else:
        noun = str(rng.choice(SYNONYMS[thing.shape]))
    text = str(rng.choice(_TEMPLATES)).format(size=size_word(thing.size), colour=thing.colour, noun=noun,
                                              where=position_phrase(thing.x, thing.y))
    return _VOWEL_AFTER_A.sub("an ", text)


def noise_kind(q: float, rng: np.random.Generator) -> str:
    """``clean`` with probability ``1 - q``, else ``swapped`` or ``removed`` with equal probability."""
    if rng.random() >= q:
        return "clean"
    return "swapped" if rng.random() < 0.5 else "removed"


def _domain_records(out: Path, domain: str, params: DomainsParams, rng: np.random.Generator,
                    first_index: int) -> list[dict[str, Any]]:
    """The rows of one domain (files written as ``{domain}/NNNNN.png``), classes in order."""
    source = domain == "source"
    style = STYLES["source" if source else params.target_style]
    train, val, test = params.splits
    held_name, held = ("val", val) if source else ("test", test)
    records: list[dict[str, Any]] = []
    for shape in SHAPES:
        splits = assign_splits(params.n, (train, 0.0, held), rng)
        for split in splits:
            thing = random_thing(rng, shapes=(shape,))
            noise = "clean" if source else noise_kind(params.caption_noise, rng)
            path = out / domain / f"{first_index + len(records):05d}.png"
            write_png(path, render_scene([thing], params.size, style, rng))
            records.append({"path": path, "label": shape, "text": caption(thing, noise, rng), "domain": domain,
                            "split": "train" if split == "train" else held_name, "caption_noise": noise,
                            "style": style.name})
    return records


def generate(out: Path, params: DomainsParams) -> Path:
    """Write ``source/NNNNN.png`` and ``target/NNNNN.png`` (``uint8 [size, size, 3]``) and the manifest
    (path, label, text, domain, split, and extras ``caption_noise`` and ``style``)."""
    rng = np.random.default_rng(params.seed)
    records = _domain_records(out, "source", params, rng, 0)
    target = _domain_records(out, "target", params, rng, len(records))
    realised = {kind: sum(r["caption_noise"] == kind for r in target) / len(target) for kind in NOISE_KINDS[1:]}
    log.info("domains: wrote %d images to %s (target caption noise %s)", len(records) + len(target), out, realised)
    answer = {"classes": list(SHAPES), "target_style": params.target_style, "caption_noise": params.caption_noise,
              "realised_noise": {**realised, "noisy": sum(realised.values())}}
    return write_world(out, "domains", params, records + target, answer)


WORLD = World("domains", DomainsParams, generate,
              "shape classes in a source and a shifted target style, target captions with controlled noise")
