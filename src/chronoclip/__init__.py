"""chronoclip: teach CLIP-style image-text models about time and other modalities."""

__version__ = "0.1.0"
