"""Named backbone presets: CLIP architectures, optionally with weights shipped in the package.

- ``tiny``: a real ViT/transformer pair small enough for instant unit tests (random init).
- ``clip-b32``, ``clip-b16``, ``clip-l14``: OpenAI CLIP architectures, random init — cost does not
  depend on weight values, so they serve speed and memory benchmarks; for real weights pass a local
  Hugging Face folder (e.g. a download of ``openai/clip-vit-base-patch16``) as the backbone spec.
- A preset with ``weights`` names a Hugging Face folder inside ``chronoclip/backbones/weights/``
  (how ``tiny-world``, this project's pretrained small CLIP, ships).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from transformers import CLIPConfig

from chronoclip.backbones.tokenizer import END, START, builtin_vocab_size, vocabulary

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class Preset:
    """A named backbone: an architecture factory, or a folder of shipped weights."""

    name: str
    description: str
    config: Callable[[], CLIPConfig] | None = None
    weights: str | None = None

    @property
    def weights_path(self) -> Path | None:
        return WEIGHTS_DIR / self.weights if self.weights else None


def clip_config(*, image_size: int, patch_size: int, vision_width: int, vision_layers: int, vision_heads: int,
                text_width: int, text_layers: int, text_heads: int, context_length: int, projection: int,
                vocab_size: int | None = None) -> CLIPConfig:
    """A ``CLIPConfig`` in OpenAI's proportions (MLP 4× width, quick-GELU), with the built-in tokenizer's ids."""
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


def _openai(patch_size: int, large: bool = False) -> Callable[[], CLIPConfig]:
    def build() -> CLIPConfig:
        return clip_config(image_size=224, patch_size=patch_size, vision_width=1024 if large else 768,
                           vision_layers=24 if large else 12, vision_heads=16 if large else 12,
                           text_width=768 if large else 512, text_layers=12, text_heads=12 if large else 8,
                           context_length=77, projection=768 if large else 512, vocab_size=49408)
    return build


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("tiny", "random-init tiny CLIP (32 px, patch 8, width 64) for unit tests", _tiny),
    Preset("clip-b32", "OpenAI ViT-B/32 architecture, random init (benchmarks; bring weights as a folder)",
           _openai(32)),
    Preset("clip-b16", "OpenAI ViT-B/16 architecture, random init (benchmarks; bring weights as a folder)",
           _openai(16)),
    Preset("clip-l14", "OpenAI ViT-L/14 architecture, random init (benchmarks; bring weights as a folder)",
           _openai(14, large=True)),
)}


def list_presets() -> list[str]:
    """Names of the backbone presets."""
    return list(PRESETS)
