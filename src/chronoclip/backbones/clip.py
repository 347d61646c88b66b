"""CLIP image + text towers from Hugging Face weights, with the capabilities the methods need.

:func:`load_backbone` resolves a spec — a preset name, a local Hugging Face CLIP folder, or a hub id
(only where the hub is reachable) — into a :class:`Backbone`. It wraps ``transformers.CLIPModel``:
its submodules (embeddings, pre-LayerNorm, encoder blocks, post-LayerNorm, projections) are called,
never re-implemented, and adds:

- ``encode_image(pixels [B,3,H,W], keep=None)`` → ``[B,D]``; ``keep [B,K]`` runs the ViT on a subset
  of the ``N`` patch tokens (tube masking);
- ``image_tokens(pixels, layers)`` → ``{layer: [B,1+N,C]}`` block outputs (see *Layer indexing*);
- ``encode_text(texts)`` → ``[B,D]`` and ``tokenize(texts)`` reporting truncations;
- ``encode_video_frames(video [B,T,3,H,W])`` → ``[B,T,D]`` (frames folded into the batch as ``[B*T,...]``);
- ``freeze(image=..., text="all" | "none" | "all-but-last-k", k=...)``; ``fingerprint()`` for caches;
- ``save(path)`` in Hugging Face format, which ``load_backbone(path)`` reloads offline.

Layer indexing (image tower with ``L`` blocks), the same as ``hidden_states`` of
``CLIPVisionModel(..., output_hidden_states=True)``:

- ``0``: the input of block 1 — patch + CLS + position embeddings after the pre-LayerNorm;
- ``i`` (1..L): the output of block ``i`` (the residual stream, before the post-LayerNorm);
- negative ``i``: ``L + 1 + i``, so ``-1`` is the last block's output and ``-(L+1)`` is layer 0.

Token subsets (``keep``): ``[B, K]`` integer indices into the ``N = (H/P)·(W/P)`` patches in raster order
(row-major patch grid), each row its own subset, indices unique within a row. Position embeddings are added
to all tokens first, then the CLS token and the kept patches (in ``keep``'s order) go through the
transformer, so a kept patch sees the same input it would see unmasked. ``keep`` = all patches in order
reproduces the unmasked output exactly.

Parity: with the same weights, embeddings equal ``CLIPModel.get_image_features`` /
``get_text_features`` (tests/test_backbones.py, tolerance 1e-5). transformers 4.46+ and 5.x are
supported; the two differ in block call signatures and in the return type of ``get_*_features``,
both handled here (:func:`_run_block`, :func:`_pooled`).

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
import inspect
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoTokenizer, CLIPModel, PreTrainedTokenizerBase
from transformers.models.clip.modeling_clip import CLIPEncoderLayer

from chronoclip.backbones.presets import list_presets, presets, read_meta
from chronoclip.backbones.tokenizer import builtin_tokenizer
from chronoclip.errors import BackboneError

#: OpenAI CLIP's image normalisation (RGB), used when a folder has no ``preprocessor_config.json``.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
FREEZE_MODES = ("all", "none", "all-but-last-k")
REQUIRED_FILES = ("config.json, model.safetensors (or pytorch_model.bin), and the tokenizer: "
                  "tokenizer.json, or vocab.json + merges.txt")
#: Models with at most this many parameters hash every weight byte in :meth:`Backbone.fingerprint`.
FULL_HASH_LIMIT = 20_000_000
_SAMPLES_PER_TENSOR = 4096
# transformers 4 blocks take (states, attention_mask, causal_attention_mask) and return a tuple;
# transformers 5 blocks take (states, attention_mask) and return the states.
_BLOCK_TAKES_CAUSAL_MASK = "causal_attention_mask" in inspect.signature(CLIPEncoderLayer.forward).parameters
_INT_OF_WIDTH = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _pooled(output: Any) -> torch.Tensor:
    """Unwrap ``get_*_features``: a tensor in transformers 4, a ``BaseModelOutputWithPooling`` in 5."""
    return getattr(output, "pooler_output", output)


def _run_block(block: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """One CLIP encoder block on ``tokens [B, S, C]`` without attention mask (the image tower's case)."""
    out = block(tokens, None, None) if _BLOCK_TAKES_CAUSAL_MASK else block(tokens, None)
    return out[0] if isinstance(out, tuple) else out


def _freeze_mode(value: bool | str, what: str) -> str:
    mode = ("all" if value else "none") if isinstance(value, bool) else value
    if mode not in FREEZE_MODES:
        raise ValueError(f"{what} must be a bool or one of {FREEZE_MODES}, got {value!r}")
    return mode


class Backbone(nn.Module):
    """A CLIP image tower + text tower + tokenizer + preprocessing constants.

    Loaded backbones are in eval mode with every parameter trainable (as after ``from_pretrained``);
    call :meth:`freeze` to choose what trains.

    Args:
        model: the Hugging Face ``CLIPModel``.
        tokenizer: its tokenizer (a CLIP BPE tokenizer).
        source: the spec it was loaded from (for messages and run configs).
        mean, std: the per-channel image normalisation the weights expect (pixels are normalised by the
            data pipeline, not here).
        templates: the zero-shot prompt set the weights were made for (from the folder's
            ``chronoclip.json``), or ``None`` for the evaluation's default.
    """

    def __init__(self, model: CLIPModel, tokenizer: PreTrainedTokenizerBase, source: str,
                 mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD,
                 templates: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.source = source
        self.mean: tuple[float, ...] = tuple(float(m) for m in mean)
        self.std: tuple[float, ...] = tuple(float(s) for s in std)
        self.templates = templates
        self._frozen: list[nn.Module] = []  # kept in eval mode by train()

    # transformers types these configs loosely (dict | config | None); they are always configs here
    @property
    def _vision_config(self) -> Any:
        return self.model.config.vision_config

    @property
    def _text_config(self) -> Any:
        return self.model.config.text_config

    # --------------------------------------------------------------------------- structure
    @property
    def vision(self) -> Any:
        """The image transformer (``embeddings``, ``pre_layrnorm``, ``encoder.layers``, ``post_layernorm``)."""
        return self.model.vision_model

    @property
    def text(self) -> Any:
        """The text transformer (``embeddings``, ``encoder.layers``, ``final_layer_norm``)."""
        return self.model.text_model

    @property
    def embed_dim(self) -> int:
        """Width ``D`` of the joint (projected) embedding space."""
        return int(self.model.config.projection_dim or 0)

    @property
    def image_size(self) -> int:
        return int(self._vision_config.image_size)

    @property
    def patch_size(self) -> int:
        return int(self._vision_config.patch_size)

    @property
    def grid_size(self) -> int:
        """Patches per side: tokens ``1..N`` are a ``grid_size × grid_size`` grid in raster order."""
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        """``N``, patch tokens per image (the CLS token not counted)."""
        return self.grid_size ** 2

    @property
    def vision_width(self) -> int:
        """Token width ``C`` of the image transformer."""
        return int(self._vision_config.hidden_size)

    @property
    def num_layers(self) -> int:
        """``L``, transformer blocks of the image tower."""
        return len(self.vision.encoder.layers)

    @property
    def num_text_layers(self) -> int:
        """Transformer blocks of the text tower."""
        return len(self.text.encoder.layers)

    @property
    def text_context_length(self) -> int:
        """Maximum tokens per text, start and end tokens included."""
        return int(self._text_config.max_position_embeddings)

    @property
    def logit_scale(self) -> torch.Tensor:
        """The contrastive temperature as a multiplier (``exp`` of the stored log-scale; 100 for OpenAI CLIP)."""
        return self.model.logit_scale.exp()

    @property
    def device(self) -> torch.device:
        return self.model.logit_scale.device

    # --------------------------------------------------------------------------- image tower
    def _layer_index(self, layer: int) -> int:
        index = layer + self.num_layers + 1 if layer < 0 else layer
        if not 0 <= index <= self.num_layers:
            raise ValueError(f"layer {layer} outside [-{self.num_layers + 1}, {self.num_layers}] "
                             f"for an image tower of {self.num_layers} blocks")
        return index

    def patch_tokens(self, pixels: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """CLS + patch tokens after patch and position embeddings, before the pre-LayerNorm.

        Args:
            pixels: normalised images ``[B, 3, H, W]`` at :attr:`image_size`.
            keep: optional ``[B, K]`` patch indices (see the module docstring); the CLS token is always kept.

        Returns:
            ``[B, 1+N, C]``, or ``[B, 1+K, C]`` with ``keep``.
        """
        tokens = self.vision.embeddings(pixels)
        if keep is None:
            return tokens
        if keep.ndim != 2 or keep.shape[0] != tokens.shape[0]:
            raise ValueError(f"keep must be [B, K] patch indices with B={tokens.shape[0]}, got {tuple(keep.shape)}")
        if keep.dtype.is_floating_point or keep.dtype == torch.bool:
            raise TypeError(f"keep must hold integer patch indices, got {keep.dtype}")
        keep = keep.to(device=tokens.device, dtype=torch.long)
        if keep.numel() and (int(keep.min()) < 0 or int(keep.max()) >= self.num_patches):
            raise ValueError(f"keep indices must lie in [0, {self.num_patches - 1}] (N patches)")
        index = keep.unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
        return torch.cat([tokens[:, :1], tokens[:, 1:].gather(1, index)], dim=1)

    def _run_vision(self, pixels: torch.Tensor, keep: torch.Tensor | None, layers: Iterable[int]
                    ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Token states after the last block ``[B,1+K,C]`` and the requested taps ``{layer: [B,1+K,C]}``."""
        wanted: dict[int, list[int]] = {}
        for layer in layers:
            wanted.setdefault(self._layer_index(layer), []).append(layer)
        tokens = self.vision.pre_layrnorm(self.patch_tokens(pixels, keep))
        taps = dict.fromkeys(wanted.get(0, ()), tokens)
        for depth, block in enumerate(self.vision.encoder.layers, start=1):
            tokens = _run_block(block, tokens)
            taps.update(dict.fromkeys(wanted.get(depth, ()), tokens))
        return tokens, taps

    def _project_image(self, tokens: torch.Tensor, normalize: bool) -> torch.Tensor:
        embedding = self.model.visual_projection(self.vision.post_layernorm(tokens[:, 0]))
        return F.normalize(embedding, dim=-1) if normalize else embedding

    def encode_image(self, pixels: torch.Tensor, keep: torch.Tensor | None = None,
                     normalize: bool = False) -> torch.Tensor:
        """Projected image embeddings ``[B, D]`` of normalised ``pixels [B, 3, H, W]``.

        Args:
            keep: ``[B, K]`` patch indices to run the transformer on (CLS always kept); ``None`` = all.
            normalize: L2-normalise the embeddings.
        """
        tokens, _ = self._run_vision(pixels, keep, ())
        return self._project_image(tokens, normalize)

    def image_tokens(self, pixels: torch.Tensor, layers: Sequence[int],
                     keep: torch.Tensor | None = None) -> dict[int, torch.Tensor]:
        """Block outputs ``{layer: [B, 1+N, C]}`` (``[B, 1+K, C]`` with ``keep``), keyed as requested.

        Layer indexing is in the module docstring (0 = after embeddings + pre-LayerNorm, ``i`` = output
        of block ``i``, negative from the end). Blocks after the deepest requested layer still run; use
        :meth:`image_features_and_tokens` to get the embedding from the same pass.
        """
        return self._run_vision(pixels, keep, layers)[1]

    def image_features_and_tokens(self, pixels: torch.Tensor, layers: Sequence[int],
                                  keep: torch.Tensor | None = None, normalize: bool = False
                                  ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """The embedding ``[B, D]`` and the taps ``{layer: [B, 1+N, C]}`` of one pass through the tower."""
        tokens, taps = self._run_vision(pixels, keep, layers)
        return self._project_image(tokens, normalize), taps

    def encode_video_frames(self, video: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Per-frame embeddings ``[B, T, D]`` of ``video [B, T, 3, H, W]`` (frames batched as ``[B*T, 3, H, W]``)."""
        if video.ndim != 5:
            raise ValueError(f"video must be [B, T, 3, H, W], got {tuple(video.shape)}")
        batch, frames = video.shape[:2]
        return self.encode_image(video.flatten(0, 1), normalize=normalize).view(batch, frames, -1)

    # --------------------------------------------------------------------------- text tower
    def tokenize(self, texts: Sequence[str], context_length: int | None = None) -> dict[str, Any]:
        """Token ids for the text tower.

        Returns:
            ``input_ids`` and ``attention_mask`` ``[B, L]`` (``L`` = ``context_length``, default
            :attr:`text_context_length`; padded, and cut to ``L`` keeping the end token), and
            ``num_truncated``: how many texts were longer than ``L`` and lost their ends.
        """
        if isinstance(texts, str):
            raise TypeError("tokenize takes a list of texts, not one string")
        length = context_length or self.text_context_length
        if not 2 <= length <= self.text_context_length:
            raise ValueError(f"context_length must lie in [2, {self.text_context_length}], got {length}")
        texts = list(texts)
        full = self.tokenizer(texts, truncation=False)["input_ids"]
        encoded = self.tokenizer(texts, padding="max_length", truncation=True, max_length=length,
                                 return_tensors="pt")
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
                "num_truncated": sum(len(ids) > length for ids in full)}

    def encode_text(self, texts: Sequence[str] | Mapping[str, Any] | torch.Tensor,
                    normalize: bool = False) -> torch.Tensor:
        """Projected text embeddings ``[B, D]``.

        Args:
            texts: a list of strings, a :meth:`tokenize` result, or ``input_ids [B, L]`` (the attention
                mask is optional: CLIP's causal mask and end-token pooling make padding after the end
                token irrelevant).
            normalize: L2-normalise the embeddings.
        """
        if isinstance(texts, str):
            raise TypeError("encode_text takes a list of texts, not one string")
        if isinstance(texts, torch.Tensor):
            tokens: Mapping[str, Any] = {"input_ids": texts}
        elif isinstance(texts, Mapping):
            tokens = texts
        else:
            tokens = self.tokenize(texts)
        mask = tokens.get("attention_mask")
        output = self.model.get_text_features(input_ids=tokens["input_ids"].to(self.device),
                                              attention_mask=None if mask is None else mask.to(self.device))
        embedding = _pooled(output)
        return F.normalize(embedding, dim=-1) if normalize else embedding

    # --------------------------------------------------------------------------- training
    def _set_tower(self, tower: Any, head: Sequence[nn.Module], mode: str, k: int, what: str
                   ) -> list[nn.Module]:
        """Apply a freeze mode to a tower and its head (final LayerNorm + projection); return the frozen modules."""
        blocks = tower.encoder.layers
        if mode == "all-but-last-k" and not 0 <= k <= len(blocks):
            raise ValueError(f"{what}: k={k} outside [0, {len(blocks)}] blocks")
        train_all = mode == "none"
        tower.requires_grad_(train_all)
        for module in head:
            module.requires_grad_(mode != "all")
        if mode == "all":
            return [tower, *head]
        if train_all:
            return []
        for block in blocks[len(blocks) - k:]:
            block.requires_grad_(True)
        stem = [m for m in tower.children() if m is not tower.encoder and all(m is not h for h in head)]
        return [*stem, *blocks[:len(blocks) - k]]

    def freeze(self, image: bool | str = True, text: bool | str = "all", k: int = 0, *, image_k: int = 0,
               logit_scale: bool = False) -> None:
        """Choose what trains (sets ``requires_grad``); the previous choice is replaced.

        Args:
            image: ``True``/``"all"`` freeze the image tower and its projection; ``False``/``"none"``
                train all of it; ``"all-but-last-k"`` trains its last ``image_k`` blocks, the
                post-LayerNorm and the projection.
            text: the same for the text tower, with ``k`` blocks (plus the final LayerNorm and projection).
            k: trained text blocks in ``"all-but-last-k"`` mode.
            image_k: trained image blocks in ``"all-but-last-k"`` mode.
            logit_scale: train the contrastive temperature (off by default, so methods that do not use it
                leave no unused trainable parameter, which DDP rejects).

        Frozen modules stay in eval mode whatever ``train()`` is later called with (dropout off, so frozen
        features are deterministic and cacheable); trainable ones follow ``train()``/``eval()``.
        """
        image_mode, text_mode = _freeze_mode(image, "image"), _freeze_mode(text, "text")
        vision_head: list[nn.Module] = [self.vision.post_layernorm, self.model.visual_projection]
        text_head: list[nn.Module] = [self.text.final_layer_norm, self.model.text_projection]
        frozen = self._set_tower(self.vision, vision_head, image_mode, image_k, "image")
        frozen += self._set_tower(self.text, text_head, text_mode, k, "text")
        self.model.logit_scale.requires_grad_(logit_scale)
        self._frozen = frozen
        self.train(self.training)

    def train(self, mode: bool = True) -> Backbone:
        """Set train/eval mode; modules frozen by :meth:`freeze` stay in eval mode."""
        super().train(mode)
        for module in self._frozen:
            module.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters with ``requires_grad`` (what an optimizer should receive)."""
        return [p for p in self.parameters() if p.requires_grad]

    # --------------------------------------------------------------------------- identity, saving
    def fingerprint(self) -> str:
        """A stable 20-hex-digit hash of the architecture and weights, for feature-cache keys.

        Hashes the config (without entries that change on save/reload: paths, dtype, versions) and, for
        each tensor of the state dict, its name, shape and dtype, then either all its bytes (models up to
        :data:`FULL_HASH_LIMIT` parameters) or, above that, the integer sum (modulo 2**32) of its bit
        patterns plus a strided sample of ~4096 values. The sum catches any single changed weight; both
        are exact integer arithmetic, so the same weights hash alike on CPU and GPU. Cost: one reduction
        over the weights on their device (~0.2 s for ViT-B/16 on 2 CPU cores). The tokenizer is not part
        of the fingerprint.
        """
        return weights_fingerprint(self.model.config.to_dict(), self.model)

    def describe(self) -> dict[str, Any]:
        """Architecture, sizes and fingerprint, as ``chronoclip backbone info`` prints them."""
        return {"source": self.source, "embed_dim": self.embed_dim, "image_size": self.image_size,
                "patch_size": self.patch_size, "num_patches": self.num_patches, "vision_width": self.vision_width,
                "vision_layers": self.num_layers, "text_width": int(self._text_config.hidden_size),
                "text_layers": self.num_text_layers, "context_length": self.text_context_length,
                "vocab_size": int(self._text_config.vocab_size),
                "parameters": {"vision": _count(self.vision.parameters()), "text": _count(self.text.parameters()),
                               "total": _count(self.parameters()), "trainable": _count(self.trainable_parameters())},
                "mean": list(self.mean), "std": list(self.std), "templates": self.templates,
                "fingerprint": self.fingerprint()}

    def save(self, path: str | Path) -> Path:
        """Save in Hugging Face format (model, tokenizer, preprocessing) so ``load_backbone(path)`` reloads it.

        Writes ``config.json``, ``model.safetensors``, the tokenizer files and a ``preprocessor_config.json``
        with :attr:`mean`/:attr:`std`; ``CLIPModel.from_pretrained(path)`` reads the folder too.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path)  # safetensors by default (transformers >= 4.35)
        self.tokenizer.save_pretrained(path)
        size = {"shortest_edge": self.image_size}
        crop = {"height": self.image_size, "width": self.image_size}
        (path / "preprocessor_config.json").write_text(json.dumps({
            "image_processor_type": "CLIPImageProcessor", "image_mean": list(self.mean),
            "image_std": list(self.std), "size": size, "crop_size": crop, "do_resize": True,
            "do_center_crop": True, "do_normalize": True, "resample": 3}, indent=2) + "\n")
        return path


def _count(parameters: Iterable[nn.Parameter]) -> int:
    return sum(p.numel() for p in parameters)


_NOT_ARCHITECTURE = frozenset({"transformers_version", "_name_or_path", "architectures", "dtype", "torch_dtype"})


def _architecture(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config dict without the entries that change on save/reload but not the model (paths, dtype, versions)."""
    return {k: _architecture(v) if isinstance(v, Mapping) else v for k, v in config.items()
            if k not in _NOT_ARCHITECTURE}


def weights_fingerprint(config: Mapping[str, Any], module: nn.Module) -> str:
    """Hash of ``config`` and ``module``'s state dict; the scheme is described in :meth:`Backbone.fingerprint`."""
    digest = hashlib.sha256(json.dumps(_architecture(config), sort_keys=True, default=str).encode())
    state = module.state_dict()
    full = sum(t.numel() for t in state.values()) <= FULL_HASH_LIMIT
    for name in sorted(state):
        tensor = state[name].detach()
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        bits = tensor.contiguous().reshape(-1).view(_INT_OF_WIDTH[tensor.element_size()])
        if not full:
            # integer sums wrap modulo 2**32 (2**64 for 8-byte values) identically on every device
            total = bits.sum(dtype=torch.int64 if bits.element_size() == 8 else torch.int32)
            digest.update(str(int(total)).encode())
            bits = bits[:: max(1, bits.numel() // _SAMPLES_PER_TENSOR)]
        digest.update(bits.cpu().numpy().tobytes())
    return digest.hexdigest()[:20]


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _missing_files(path: Path) -> list[str]:
    missing = []
    if not (path / "config.json").is_file():
        missing.append("config.json")
    if not any((path / name).is_file() for name in ("model.safetensors", "model.safetensors.index.json",
                                                    "pytorch_model.bin", "pytorch_model.bin.index.json")):
        missing.append("model.safetensors (or pytorch_model.bin)")
    if not ((path / "tokenizer.json").is_file() or ((path / "vocab.json").is_file() and
                                                    (path / "merges.txt").is_file())):
        missing.append("tokenizer.json (or vocab.json + merges.txt)")
    return missing


def _from_directory(path: Path, source: str) -> Backbone:
    """Load a local Hugging Face CLIP folder offline, naming every missing file."""
    missing = _missing_files(path)
    if missing:
        raise BackboneError(f"{path} is not a complete CLIP folder: missing {', '.join(missing)}. "
                            f"A backbone folder needs {REQUIRED_FILES}.")
    try:
        model_type = json.loads((path / "config.json").read_text()).get("model_type")
        if model_type != "clip":
            raise BackboneError(f"{path / 'config.json'} describes model_type {model_type!r}; "
                                "a backbone folder must hold a CLIP model (model_type 'clip')")
        # weights_only: a pickled pytorch_model.bin is read with torch.load(weights_only=True), never unpickled
        model = CLIPModel.from_pretrained(path, local_files_only=True, weights_only=True)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:  # unreadable files, bad JSON, mismatched shapes
        raise BackboneError(f"cannot load the CLIP folder {path}: {exc}") from exc
    mean, std = CLIP_MEAN, CLIP_STD
    preprocessor = path / "preprocessor_config.json"
    if preprocessor.is_file():
        settings = json.loads(preprocessor.read_text())
        mean, std = settings.get("image_mean", mean), settings.get("image_std", std)
    return Backbone(model, tokenizer, source, mean, std, read_meta(path).get("templates")).eval()


def _from_hub(hub_id: str) -> Backbone:
    """Load a hub id through transformers' cache (downloads only where the hub is reachable)."""
    offline = _offline()
    try:
        model = CLIPModel.from_pretrained(hub_id, local_files_only=offline, weights_only=True)
        tokenizer = AutoTokenizer.from_pretrained(hub_id, local_files_only=offline)
    except (OSError, ValueError) as exc:
        reason = "HF_HUB_OFFLINE is set and it is not in the local cache" if offline else \
            "not found, or the hub is unreachable"
        raise BackboneError(
            f"cannot load backbone '{hub_id}' from the Hugging Face hub ({reason}). "
            f"Presets: {', '.join(list_presets())}. To use real weights offline, download the model on a "
            f"connected machine (`hf download {hub_id} --local-dir DIR`, or `huggingface-cli download` with "
            f"older huggingface_hub), copy DIR here and pass its path; it must contain {REQUIRED_FILES}.") from exc
    return Backbone(model, tokenizer, hub_id).eval()


def load_backbone(spec: str | Path) -> Backbone:
    """A backbone from a preset name, a local Hugging Face CLIP folder or a hub id, tried in that order.

    A ``str`` of the form ``owner/name`` that is not an existing folder is treated as a hub id; with
    ``HF_HUB_OFFLINE=1`` only the local cache is consulted. Random-init presets are seeded, so a preset is
    the same model in every process (and has the same fingerprint).

    Raises:
        BackboneError: unknown preset, incomplete or non-CLIP folder, or a hub id that cannot be loaded;
            the message names the files a local folder must contain.
    """
    name = str(spec)
    preset = presets().get(name) if isinstance(spec, str) else None
    if preset is not None:
        if preset.weights is not None:
            return _from_directory(preset.weights, name)
        assert preset.config is not None
        config = preset.config()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = CLIPModel(config)
        context_length = config.to_dict()["text_config"]["max_position_embeddings"]
        return Backbone(model, builtin_tokenizer(context_length), name).eval()
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise BackboneError(f"{path} is a file; a backbone is a preset or a folder with {REQUIRED_FILES}")
        return _from_directory(path, str(path))
    looks_like_hub_id = name.count("/") == 1 and not name.startswith((".", "/", "~")) and isinstance(spec, str)
    if looks_like_hub_id:
        return _from_hub(name)
    raise BackboneError(f"unknown backbone '{name}': not a preset ({', '.join(list_presets())}), not an existing "
                        f"folder, and not a hub id (owner/name). A backbone folder needs {REQUIRED_FILES}.")
