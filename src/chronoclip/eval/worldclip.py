"""What a CLIP knows of the synthetic universe: zero-shot shape / colour / shape+colour and text→image retrieval.

Images are rendered fresh (a seed of their own, never the pretraining images) at the ``captions``
world's resolution and go through the evaluation pipeline (resize, centre crop, normalise):

- **zero-shot**, per rendering style: one object per image; the classes are its shape (10), its colour
  (8) or both (80). Prompts average out the attributes a class leaves open: a shape's classifier is
  the mean embedding of ``"a {size} {colour} {shape}"`` over sizes and colours, a colour's over sizes
  and shapes; shape+colour uses the ``world`` template set.
- **retrieval**: captioned source-style scenes (one or two objects, as in ``captions``); each caption
  queries all images (``t2i``) and each image all captions (``i2t``).

``benchmarks/worldclip.py`` prints these for ``tiny-world`` and the random-init ``tiny``; the tests
check the shipped preset reproduces its figure.

Example:
    >>> from chronoclip.backbones import load_backbone
    >>> result = universe_zero_shot(load_backbone("tiny"), styles=("source",), n=16)
    >>> sorted(result["source"])
    ['colour', 'shape', 'shape+colour']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from chronoclip.data import transforms as T
from chronoclip.data.worlds.captions import caption, scene
from chronoclip.data.worlds.universe import COLOURS, SHAPES, SIZES, STYLES, random_thing, render_scene
from chronoclip.eval.metrics import classification_metrics
from chronoclip.eval.retrieval import evaluate_retrieval
from chronoclip.eval.zero_shot import backbone_text_encoder, build_text_classifier, load_templates, zero_shot_scores

#: Side of the rendered images (the ``captions`` world's default), resized to the backbone's input.
RENDER_SIZE = 64


def backbone_pixels(images: Sequence[np.ndarray], backbone: Any) -> torch.Tensor:
    """``uint8 [H, W, 3]`` images → the backbone's normalised input ``[N, 3, S, S]``."""
    preprocess = T.clip_preprocess(backbone.image_size, backbone.mean, backbone.std)
    return preprocess(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2))


@torch.no_grad()
def _embed_images(backbone: Any, pixels: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    backbone.eval()
    return torch.cat([backbone.encode_image(pixels[i:i + batch_size].to(backbone.device), normalize=True).cpu()
                      for i in range(0, len(pixels), batch_size)])


def _top1(features: torch.Tensor, classifier: torch.Tensor, targets: torch.Tensor) -> float:
    return float(classification_metrics(zero_shot_scores(features, classifier), targets)["top1"])


def universe_zero_shot(backbone: Any, styles: Sequence[str] = tuple(STYLES), n: int = 400, seed: int = 20261123
                       ) -> dict[str, dict[str, float]]:
    """Zero-shot top1 (percent) per style: ``{style: {"shape", "colour", "shape+colour"}}``.

    Args:
        backbone: a :class:`~chronoclip.backbones.clip.Backbone`.
        styles: rendering styles (``source`` and shifted ones, see ``universe.STYLES``).
        n: one-object images per style (the same objects in every style).
        seed: of the objects and the rendering noise.
    """
    unknown = sorted(set(styles) - set(STYLES))
    if unknown:
        raise ValueError(f"unknown styles {unknown}; known: {', '.join(STYLES)}")
    encode, colours = backbone_text_encoder(backbone), list(COLOURS)
    shape_classifier = build_text_classifier(SHAPES, [f"a {z} {c} {{}}" for z in SIZES for c in colours], encode)
    colour_classifier = build_text_classifier(colours, [f"a {z} {{}} {s}" for z in SIZES for s in SHAPES], encode)
    pairs = [f"{c} {s}" for s in SHAPES for c in colours]
    pair_classifier = build_text_classifier(pairs, load_templates("world"), encode)
    things = [random_thing(np.random.default_rng([seed, i])) for i in range(n)]
    shapes = torch.tensor([SHAPES.index(t.shape) for t in things])
    colour_ids = torch.tensor([colours.index(t.colour) for t in things])
    result = {}
    for style in styles:
        images = [render_scene([thing], RENDER_SIZE, STYLES[style], np.random.default_rng([seed, i, 1]))
                  for i, thing in enumerate(things)]
        features = _embed_images(backbone, backbone_pixels(images, backbone))
        result[style] = {"shape": _top1(features, shape_classifier, shapes),
                         "colour": _top1(features, colour_classifier, colour_ids),
                         "shape+colour": _top1(features, pair_classifier, shapes * len(colours) + colour_ids)}
    return result


def universe_retrieval(backbone: Any, n: int = 500, seed: int = 20261123, two_objects: float = 0.3
                       ) -> dict[str, Any]:
    """Text→image and image→text ``R@1/5/10`` (percent) on ``n`` fresh captioned source-style scenes."""
    rng = np.random.default_rng([seed, 2])
    images, captions = [], []
    for _ in range(n):
        things = scene(rng, two_objects)
        images.append(render_scene(things, RENDER_SIZE, STYLES["source"], rng))
        captions.append(caption(things, rng))
    features = _embed_images(backbone, backbone_pixels(images, backbone))
    texts = torch.cat([backbone_text_encoder(backbone)(captions[i:i + 256]) for i in range(0, n, 256)])
    result = evaluate_retrieval(texts, features, protocol={"images": "fresh captions-world scenes"})
    return {key.replace("t2v", "t2i").replace("v2t", "i2t"): value for key, value in result.items()}
