"""Backbones: CLIP towers from Hugging Face weights (presets, local folders, hub ids) and text encoders."""

from chronoclip.backbones.clip import Backbone, load_backbone
from chronoclip.backbones.presets import list_presets
from chronoclip.backbones.text import TextEncoder, load_text_encoder

__all__ = ["Backbone", "TextEncoder", "list_presets", "load_backbone", "load_text_encoder"]
