"""The ``domains`` world: the same shape classes in a source style and a shifted target style, with
target captions of controlled noise (TRUST / LaGTrAn's setting; spec B.9).

Every image's class is its object's shape. Source images are clean (plain background, solid shapes);
target images use ``target_style`` (textured background, colour shift, ...). Every image has a
caption; in the target domain a fraction ``caption_noise`` of captions is corrupted — half of them
name a wrong shape (``swapped``), half name none (``removed``). The ``label`` column holds the true
class for every row; a domain-adaptation method must not read target labels outside evaluation.

Splits: source ``train`` / ``val``; target ``train`` (the unlabelled adaptation pool) / ``test``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chronoclip.data.worlds.base import World, WorldParams, assign_splits, write_world
from chronoclip.data.worlds.universe import SHAPES, STYLES, SYNONYMS, Thing, position_phrase, random_thing, \
    render_scene, size_word
from chronoclip.io.writers import write_png

log = logging.getLogger(__name__)

_TEMPLATES = ("a {size} {colour} {noun} {where}", "a picture of a {colour} {noun} {where}",
              "a {noun} drawn in {colour} {where}", "there is a {size} {noun} {where}")
_GENERIC_NOUNS = ("object", "shape", "thing")


@dataclass
class DomainsParams(WorldParams):
    """Parameters of the domains world.

    Attributes:
        n: images per class and domain.
        size: image side in pixels.
        target_style: the target domain's style (a name of ``universe.STYLES`` other than ``source``).
        caption_noise: probability that a target caption is corrupted (half swapped, half removed).
        source_val: fraction of source images held out as ``val``.
        target_test: fraction of target images held out as ``test``.
    """

    n: int = 30
    size: int = 64
    target_style: str = "textured"
    caption_noise: float = 0.2
    source_val: float = 0.2
    target_test: float = 0.3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.target_style not in STYLES or self.target_style == "source":
            raise ValueError(f"target_style must be one of {[s for s in STYLES if s != 'source']}, "
                             f"got '{self.target_style}'")
        if not 0 <= self.caption_noise <= 1 or not 0 < self.source_val < 1 or not 0 < self.target_test < 1:
            raise ValueError(f"caption_noise in [0, 1], source_val and target_test in (0, 1): {self}")
        if self.n < 2 or self.size < 8:
            raise ValueError(f"need n >= 2 and size >= 8; got {self}")


def caption(thing: Thing, noise: str, rng: np.random.Generator) -> str:
    """A caption of one object; ``noise`` is ``clean``, ``swapped`` (a wrong shape) or ``removed`` (no shape)."""
    if noise == "swapped":
        wrong = str(rng.choice([s for s in SHAPES if s != thing.shape]))
        noun = str(rng.choice(SYNONYMS[wrong]))
    elif noise == "removed":
        noun = str(rng.choice(_GENERIC_NOUNS))
    else:
        noun = str(rng.choice(SYNONYMS[thing.shape]))
    template = str(rng.choice(_TEMPLATES))
    return template.format(size=size_word(thing.size), colour=thing.colour, noun=noun,
                           where=position_phrase(thing.x, thing.y))


def _noise_kind(domain: str, q: float, rng: np.random.Generator) -> str:
    if domain == "source" or rng.random() >= q:
        return "clean"
    return "swapped" if rng.random() < 0.5 else "removed"


def generate(out: Path, params: DomainsParams) -> Path:
    """Write ``{source,target}/NNNNN.png`` and the manifest (path, label, text, domain, split, caption_noise)."""
    rng = np.random.default_rng(params.seed)
    records = []
    for domain, style_name, held_out, held_name, fit_name in (
            ("source", "source", params.source_val, "val", "train"),
            ("target", params.target_style, params.target_test, "test", "train")):
        for shape in SHAPES:
            splits = assign_splits(params.n, (1 - held_out, 0.0, held_out), rng)
            for k in range(params.n):
                thing = random_thing(rng, shapes=(shape,))
                noise = _noise_kind(domain, params.caption_noise, rng)
                path = out / domain / f"{len(records):05d}.png"
                write_png(path, render_scene([thing], params.size, STYLES[style_name], rng))
                split = fit_name if splits[k] == "train" else held_name
                records.append({"path": path, "label": shape, "text": caption(thing, noise, rng), "domain": domain,
                                "split": split, "caption_noise": noise, "style": style_name})
    target = [r for r in records if r["domain"] == "target"]
    realised = {kind: sum(r["caption_noise"] == kind for r in target) / len(target) for kind in ("swapped", "removed")}
    log.info("domains: wrote %d images to %s (target caption noise %s)", len(records), out, realised)
    answer = {"classes": list(SHAPES), "target_style": params.target_style, "caption_noise": params.caption_noise,
              "realised_noise": realised}
    return write_world(out, "domains", params, records, answer)


WORLD = World("domains", DomainsParams, generate,
              "shape classes in a source and a shifted target style, target captions with controlled noise")
