"""CLIP image + text towers from Hugging Face weights, with the capabilities the methods need.

:func:`load_backbone` resolves a spec — a preset name, a local Hugging Face CLIP folder, or a hub id
(only where the hub is reachable) — into a :class:`Backbone`, which wraps ``transformers.CLIPModel``
(its modules are called, never re-implemented) and adds:

- ``encode_image(pixels [B,3,H,W], keep=None)`` → ``[B,D]``; ``keep [B,K]`` runs the ViT on a subset
  of patch tokens (tube masking); position embeddings are added before tokens are dropped;
- ``image_tokens(pixels, layers)`` → ``{layer: [B,1+N,C]}`` intermediate outputs (layer 0 = the
  embeddings after the pre-LayerNorm, layer i = output of block i, negative = from the end);
- ``encode_text(texts)`` → ``[B,D]`` and ``tokenize(texts)`` reporting truncations;
- ``encode_video_frames(video [B,T,3,H,W])`` → ``[B,T,D]`` (frames folded into the batch);
- ``freeze(image=..., text="all" | "none" | "all-but-last-k", k=...)``; ``fingerprint()`` for caches.

Parity: with the same weights, embeddings equal ``CLIPModel.get_image_features`` /
``get_text_features`` (tests/test_backbones.py).

Example:
    >>> import torch
    >>> backbone = load_backbone("tiny")
    >>> backbone.encode_image(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 64])
    >>> backbone.encode_text(["a red circle"]).shape
    torch.Size([1, 64])
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoTokenizer, CLIPModel, PreTrainedTokenizerBase

from chronoclip.backbones.presets import PRESETS, list_presets
from chronoclip.backbones.tokenizer import builtin_tokenizer
from chronoclip.errors import BackboneError

log = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
TEXT_MODES = ("all", "none", "all-but-last-k")
REQUIRED_FILES = "config.json, model.safetensors (or pytorch_model.bin), and tokenizer files " \
                 "(tokenizer.json, or vocab.json + merges.txt)"
_FINGERPRINT_FULL_LIMIT = 50_000_000  # parameters; above it a strided sample is hashed


def _pooled(output: Any) -> torch.Tensor:
    """Unwrap transformers' ``get_*_features`` result (a tensor in v4, an output object in v5)."""
    return getattr(output, "pooler_output", output)


class Backbone(nn.Module):
    """A CLIP image tower + text tower + tokenizer + preprocessing constants.

    Args:
        model: the Hugging Face ``CLIPModel``.
        tokenizer: its tokenizer.
        source: the spec it was loaded from (for messages and run configs).
        mean, std: the image normalisation the weights expect.
    """

    def __init__(self, model: CLIPModel, tokenizer: PreTrainedTokenizerBase, source: str,
                 mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.source = source
        self.mean, self.std = tuple(mean), tuple(std)

    # --------------------------------------------------------------------------- properties
    @property
    def vision(self) -> nn.Module:
        return self.model.vision_model

    @property
    def text(self) -> nn.Module:
        return self.model.text_model

    @property
    def embed_dim(self) -> int:
        return int(self.model.config.projection_dim)

    @property
    def image_size(self) -> int:
        return int(self.model.config.vision_config.image_size)

    @property
    def patch_size(self) -> int:
        return int(self.model.config.vision_config.patch_size)

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def vision_width(self) -> int:
        return int(self.model.config.vision_config.hidden_size)

    @property
    def num_layers(self) -> int:
        """Transformer blocks of the image tower."""
        return len(self.vision.encoder.layers)

    @property
    def text_context_length(self) -> int:
        return int(self.model.config.text_config.max_position_embeddings)

    @property
    def logit_scale(self) -> torch.Tensor:
        """The contrastive temperature as a multiplier (``exp`` of the stored log-scale)."""
        return self.model.logit_scale.exp()

    @property
    def device(self) -> torch.device:
        return self.model.logit_scale.device

    # --------------------------------------------------------------------------- image tower
    def _layer_index(self, layer: int) -> int:
        index = layer + self.num_layers + 1 if layer < 0 else layer
        if not 0 <= index <= self.num_layers:
            raise ValueError(f"layer {layer} outside [-{self.num_layers + 1}, {self.num_layers}]")
        return index

    def _run_vision(self, pixels: torch.Tensor, keep: torch.Tensor | None, layers: Sequence[int]
                    ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Token states after the last block ``[B,1+K,C]`` and the requested taps."""
        wanted = {self._layer_index(layer): layer for layer in layers}
        tokens = self.vision.embeddings(pixels.to(self.vision.embeddings.patch_embedding.weight.dtype))
        if keep is not None:
            if keep.ndim != 2 or keep.shape[0] != tokens.shape[0]:
                raise ValueError(f"keep must be [B, K] patch indices, got {tuple(keep.shape)}")
            index = keep.to(tokens.device).unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
            tokens = torch.cat([tokens[:, :1], tokens[:, 1:].gather(1, index)], dim=1)
        tokens = self.vision.pre_layrnorm(tokens)
        taps = {wanted[0]: tokens} if 0 in wanted else {}
        for depth, block in enumerate(self.vision.encoder.layers, start=1):
            tokens = block(tokens, None)
            if depth in wanted:
                taps[wanted[depth]] = tokens
        return tokens, taps

    def _project_image(self, tokens: torch.Tensor, normalize: bool) -> torch.Tensor:
        embedding = self.model.visual_projection(self.vision.post_layernorm(tokens[:, 0]))
        return F.normalize(embedding, dim=-1) if normalize else embedding

    def encode_image(self, pixels: torch.Tensor, keep: torch.Tensor | None = None,
                     normalize: bool = False) -> torch.Tensor:
        """Projected image embeddings ``[B, D]`` of normalised ``pixels [B, 3, H, W]``.

        Args:
            keep: ``[B, K]`` indices into the ``N`` patches to run the transformer on (CLS always kept).
            normalize: L2-normalise the embeddings.
        """
        tokens, _ = self._run_vision(pixels, keep, ())
        return self._project_image(tokens, normalize)

    def image_tokens(self, pixels: torch.Tensor, layers: Sequence[int],
                     keep: torch.Tensor | None = None) -> dict[int, torch.Tensor]:
        """Intermediate token states ``{layer: [B, 1+N, C]}`` (see the module docstring for indexing)."""
        return self._run_vision(pixels, keep, layers)[1]

    def image_features_and_tokens(self, pixels: torch.Tensor, layers: Sequence[int],
                                  keep: torch.Tensor | None = None, normalize: bool = False
                                  ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """The embedding ``[B, D]`` and the taps of one pass through the tower."""
        tokens, taps = self._run_vision(pixels, keep, layers)
        return self._project_image(tokens, normalize), taps

    def encode_video_frames(self, video: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Per-frame embeddings ``[B, T, D]`` of ``video [B, T, 3, H, W]`` (frames batched as ``[B*T, ...]``)."""
        if video.ndim != 5:
            raise ValueError(f"video must be [B, T, 3, H, W], got {tuple(video.shape)}")
        batch, frames = video.shape[:2]
        return self.encode_image(video.flatten(0, 1), normalize=normalize).view(batch, frames, -1)

    # --------------------------------------------------------------------------- text tower
    def tokenize(self, texts: Sequence[str], context_length: int | None = None) -> dict[str, Any]:
        """``input_ids`` / ``attention_mask`` ``[B, L]`` padded to the context length, and ``num_truncated``
        (texts longer than the context; their ends were cut)."""
        if isinstance(texts, str):
            raise TypeError("tokenize takes a list of texts, not one string")
        length = context_length or self.text_context_length
        full = self.tokenizer(list(texts), truncation=False)["input_ids"]
        encoded = self.tokenizer(list(texts), padding="max_length", truncation=True, max_length=length,
                                 return_tensors="pt")
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
                "num_truncated": sum(len(ids) > length for ids in full)}

    def encode_text(self, texts: Sequence[str] | dict[str, Any] | torch.Tensor,
                    normalize: bool = False) -> torch.Tensor:
        """Projected text embeddings ``[B, D]`` of texts, a :meth:`tokenize` result or ``input_ids [B, L]``."""
        if isinstance(texts, torch.Tensor):
            tokens: dict[str, Any] = {"input_ids": texts}
        elif isinstance(texts, dict):
            tokens = texts
        else:
            tokens = self.tokenize(texts)
        ids = tokens["input_ids"].to(self.device)
        mask = tokens.get("attention_mask")
        output = self.model.get_text_features(input_ids=ids,
                                              attention_mask=None if mask is None else mask.to(self.device))
        embedding = _pooled(output)
        return F.normalize(embedding, dim=-1) if normalize else embedding

    # --------------------------------------------------------------------------- training
    def freeze(self, image: bool = True, text: str | bool = "all", k: int = 0) -> None:
        """Choose what trains. ``image``: freeze the whole image tower. ``text``: ``all`` / ``none`` /
        ``all-but-last-k`` (the last ``k`` blocks, the final LayerNorm and the projection train).
        The temperature trains when any part does."""
        mode = {True: "all", False: "none"}.get(text, text) if isinstance(text, bool) else text
        if mode not in TEXT_MODES:
            raise ValueError(f"text must be one of {TEXT_MODES}, got '{text}'")
        layers = self.text.encoder.layers
        if mode == "all-but-last-k" and not 0 <= k <= len(layers):
            raise ValueError(f"k={k} outside [0, {len(layers)}] text blocks")
        for module in (self.vision, self.model.visual_projection):
            module.requires_grad_(not image)
        self.text.requires_grad_(mode == "none")
        self.model.text_projection.requires_grad_(mode != "all")
        if mode == "all-but-last-k":
            for block in layers[len(layers) - k:]:
                block.requires_grad_(True)
            self.text.final_layer_norm.requires_grad_(True)
        self.model.logit_scale.requires_grad_(not image or mode != "all")

    def fingerprint(self) -> str:
        """A stable hash of the architecture and weights, for feature-cache keys.

        Small models hash every weight byte; above 50 M parameters a strided sample of each tensor
        plus its sum is hashed (a few ms for ViT-B), which still changes with any training update.
        """
        config = _architecture(self.model.config.to_dict())
        digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
        state = self.model.state_dict()
        full = sum(t.numel() for t in state.values()) <= _FINGERPRINT_FULL_LIMIT
        for name in sorted(state):
            values = state[name].detach().float().reshape(-1).cpu()
            digest.update(name.encode())
            if not full:
                digest.update(repr(float(values.double().sum())).encode())
                values = values[:: max(1, values.numel() // 4096)]
            digest.update(values.numpy().tobytes())
        return digest.hexdigest()[:20]

    def describe(self) -> dict[str, Any]:
        """Architecture, sizes and fingerprint, as ``chronoclip backbone info`` prints them."""
        vision_params = sum(p.numel() for p in self.vision.parameters())
        text_params = sum(p.numel() for p in self.text.parameters())
        return {"source": self.source, "embed_dim": self.embed_dim, "image_size": self.image_size,
                "patch_size": self.patch_size, "vision_width": self.vision_width, "vision_layers": self.num_layers,
                "text_width": int(self.model.config.text_config.hidden_size),
                "text_layers": len(self.text.encoder.layers), "context_length": self.text_context_length,
                "vocab_size": int(self.model.config.text_config.vocab_size),
                "parameters": {"vision": vision_params, "text": text_params,
                               "total": sum(p.numel() for p in self.model.parameters())},
                "mean": list(self.mean), "std": list(self.std), "fingerprint": self.fingerprint()}

    def save(self, path: str | Path) -> Path:
        """Save in Hugging Face format (model, tokenizer, preprocessing) so ``load_backbone(path)`` reloads it."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path, safe_serialization=True)
        self.tokenizer.save_pretrained(path)
        size = {"shortest_edge": self.image_size}
        crop = {"height": self.image_size, "width": self.image_size}
        (path / "preprocessor_config.json").write_text(json.dumps({
            "image_processor_type": "CLIPImageProcessor", "image_mean": list(self.mean),
            "image_std": list(self.std), "size": size, "crop_size": crop, "do_resize": True,
            "do_center_crop": True, "do_normalize": True, "resample": 3}, indent=2) + "\n")
        return path


_NOT_ARCHITECTURE = frozenset({"transformers_version", "_name_or_path", "architectures", "dtype", "torch_dtype"})


def _architecture(config: dict[str, Any]) -> dict[str, Any]:
    """A config dict without the entries that change on save/reload but not the model (paths, dtype, versions)."""
    return {k: _architecture(v) if isinstance(v, dict) else v for k, v in config.items() if k not in _NOT_ARCHITECTURE}


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def _from_directory(path: Path, source: str) -> Backbone:
    """Load a local Hugging Face CLIP folder, naming every missing file."""
    missing = []
    if not (path / "config.json").is_file():
        missing.append("config.json")
    if not any((path / name).is_file() for name in ("model.safetensors", "model.safetensors.index.json",
                                                    "pytorch_model.bin")):
        missing.append("model.safetensors (or pytorch_model.bin)")
    if not ((path / "tokenizer.json").is_file() or ((path / "vocab.json").is_file() and
                                                    (path / "merges.txt").is_file())):
        missing.append("tokenizer.json (or vocab.json + merges.txt)")
    if missing:
        raise BackboneError(f"{path} is not a complete CLIP folder: missing {', '.join(missing)}. "
                            f"A backbone folder needs {REQUIRED_FILES}.")
    model = CLIPModel.from_pretrained(path, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    mean, std = CLIP_MEAN, CLIP_STD
    preprocessor = path / "preprocessor_config.json"
    if preprocessor.is_file():
        settings = json.loads(preprocessor.read_text())
        mean, std = settings.get("image_mean", mean), settings.get("image_std", std)
    return Backbone(model.eval(), tokenizer, source, mean, std)


def _from_hub(hub_id: str) -> Backbone:
    try:
        model = CLIPModel.from_pretrained(hub_id, local_files_only=_offline())
        tokenizer = AutoTokenizer.from_pretrained(hub_id, local_files_only=_offline())
    except (OSError, ValueError) as exc:
        reason = "offline" if _offline() else "not found or unreachable"
        raise BackboneError(
            f"could not load '{hub_id}' from the Hugging Face hub ({reason}). "
            f"Presets: {', '.join(list_presets())}. For real weights, download them on a connected machine "
            f"(e.g. `huggingface-cli download {hub_id} --local-dir DIR`) and pass DIR; it must contain "
            f"{REQUIRED_FILES}.") from exc
    return Backbone(model.eval(), tokenizer, hub_id)


def load_backbone(spec: str | Path) -> Backbone:
    """A backbone from a preset name, a local Hugging Face CLIP folder or a hub id.

    Raises:
        BackboneError: unknown preset, incomplete folder, or a hub id that cannot be reached.
    """
    name = str(spec)
    if name in PRESETS:
        preset = PRESETS[name]
        if preset.weights_path is not None:
            return _from_directory(preset.weights_path, name)
        assert preset.config is not None
        config = preset.config()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # a random-init preset is the same model in every process
            model = CLIPModel(config).eval()
        return Backbone(model, builtin_tokenizer(config.text_config.max_position_embeddings), name)
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise BackboneError(f"{path} is a file; a backbone is a preset or a folder with {REQUIRED_FILES}")
        return _from_directory(path, str(path))
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        return _from_hub(name)
    raise BackboneError(f"unknown backbone '{name}': not a preset ({', '.join(list_presets())}), "
                        f"not an existing folder, not a hub id (owner/name)")
