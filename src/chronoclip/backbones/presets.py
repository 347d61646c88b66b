"""Named backbone presets: CLIP architectures (random init) and Hugging Face folders shipped in the package.

- ``tiny``: a real ViT/transformer pair small enough for instant unit tests (random init, seeded).
- ``tiny-world-init``: the architecture of ``tiny-world`` (48 px, patch 8, width 128), random init: what
  ``make tiny-world`` pretrains with ``chronoclip train clip`` (see ``configs/tiny-world.yaml``).
- ``clip-b32``, ``clip-b16``, ``clip-l14``: OpenAI CLIP architectures, random init. Cost does not depend
  on weight values, so they serve speed and memory benchmarks. For real weights, pass a local Hugging Face
  folder (e.g. a download of ``openai/clip-vit-base-patch16``) as the backbone spec instead.
- Every folder ``chronoclip/backbones/weights/<name>/`` that holds a ``config.json`` is the preset ``<name>``
  (Hugging Face format: ``config.json``, ``model.safetensors``, tokenizer files). An optional
  ``chronoclip.json`` beside them gives its ``description``, its default zero-shot ``templates`` and the
  ``sha256`` of every file (checked by the tests). This is how ``tiny-world``, the project's pretrained
  small CLIP, ships: adding the folder is enough, no code changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import CLIPConfig

from chronoclip.backbones.tokenizer import END, START, builtin_vocab_size, vocabulary

#: Where shipped pretrained presets live (package data), one Hugging Face folder per preset.
WEIGHTS_DIR = Path(__file__).parent / "weights"
#: The file beside a Hugging Face folder's files that holds chronoclip's metadata of it.
META_FILE = "chronoclip.json"


@dataclass(frozen=True)
class Preset:
    """A named backbone: either an architecture factory (random init) or a folder of weights."""

    name: str
    description: str
    config: Callable[[], CLIPConfig] | None = None
    weights: Path | None = None


def clip_config(*, image_size: int, patch_size: int, vision_width: int, vision_layers: int, vision_heads: int,
                text_width: int, text_layers: int, text_heads: int, context_length: int, projection: int,
                vocab_size: int | None = None) -> CLIPConfig:
    """A ``CLIPConfig`` in OpenAI's proportions (MLP 4× width, quick-GELU) using the built-in tokenizer's ids.

    ``vocab_size`` defaults to the built-in tokenizer's size; real-size presets keep OpenAI's 49 408 so
    the token embedding (and the parameter count) is that of the real model.
    """
    vocab, _ = vocabulary()
    text = {"hidden_size": text_width, "intermediate_size": 4 * text_width, "num_hidden_layers": text_layers,
            "num_attention_heads": text_heads, "max_position_embeddings": context_length,
            "vocab_size": vocab_size or builtin_vocab_size(), "bos_token_id": vocab[START],
            "eos_token_id": vocab[END], "pad_token_id": vocab[END], "hidden_act": "quick_gelu"}
    vision = {"hidden_size": vision_width, "intermediate_size": 4 * vision_width,
              "num_hidden_layers": vision_layers, "num_attention_heads": vision_heads, "image_size": image_size,
              "patch_size": patch_size, "hidden_act": "quick_gelu"}
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection)


def _tiny() -> CLIPConfig:
    return clip_config(image_size=32, patch_size=8, vision_width=64, vision_layers=3, vision_heads=4,
                       text_width=64, text_layers=2, text_heads=4, context_length=32, projection=64)


def _tiny_world() -> CLIPConfig:
    return clip_config(image_size=48, patch_size=8, vision_width=128, vision_layers=4, vision_heads=4,
                       text_width=128, text_layers=3, text_heads=4, context_length=32, projection=128)


def _openai(patch_size: int, large: bool = False) -> Callable[[], CLIPConfig]:
    def build() -> CLIPConfig:
        return clip_config(image_size=224, patch_size=patch_size, vision_width=1024 if large else 768,
                           vision_layers=24 if large else 12, vision_heads=16 if large else 12,
                           text_width=768 if large else 512, text_layers=12, text_heads=12 if large else 8,
                           context_length=77, projection=768 if large else 512, vocab_size=49408)
    return build


_BRING_WEIGHTS = "random init, for benchmarks; for real weights pass a local Hugging Face folder"
_BUILT_IN: tuple[Preset, ...] = (
    Preset("tiny", "random-init tiny CLIP (32 px, patch 8, width 64, 3+2 blocks) for unit tests", _tiny),
    Preset("tiny-world-init", "random-init architecture of tiny-world (48 px, patch 8, width 128, 4+3 blocks); "
           "pretrain it with `make tiny-world`", _tiny_world),
    Preset("clip-b32", f"OpenAI ViT-B/32 architecture, {_BRING_WEIGHTS}", _openai(32)),
    Preset("clip-b16", f"OpenAI ViT-B/16 architecture, {_BRING_WEIGHTS}", _openai(16)),
    Preset("clip-l14", f"OpenAI ViT-L/14 architecture, {_BRING_WEIGHTS}", _openai(14, large=True)),
)


def read_meta(folder: Path) -> dict[str, Any]:
    """The folder's :data:`META_FILE` contents (``{}`` when absent)."""
    meta = folder / META_FILE
    return dict(json.loads(meta.read_text(encoding="utf-8"))) if meta.is_file() else {}


def _shipped(root: Path) -> list[Preset]:
    """Presets for the weight folders under ``root`` (sorted by name; folders without config.json skipped)."""
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if (p / "config.json").is_file()):
        description = read_meta(folder).get("description", "")
        found.append(Preset(folder.name, description or f"pretrained CLIP shipped in {folder}", weights=folder))
    return found


def presets() -> dict[str, Preset]:
    """All presets by name: the built-in architectures, then the shipped weight folders (a folder named like
    a built-in preset replaces it)."""
    return {p.name: p for p in (*_BUILT_IN, *_shipped(WEIGHTS_DIR))}


def list_presets() -> list[str]:
    """Names of the backbone presets (what ``load_backbone`` accepts besides folders and hub ids)."""
    return list(presets())
