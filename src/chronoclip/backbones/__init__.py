"""Backbones: CLIP towers from Hugging Face weights (presets, local folders, hub ids) and text encoders."""

from chronoclip.backbones.clip import Backbone, load_backbone
from chronoclip.backbones.presets import list_presets

__all__ = ["Backbone", "list_presets", "load_backbone"]
