"""TRUST's caption classifier g (methods-multimodal §B.2 (a)): trained on source captions only, then frozen.

g = frozen text tower → pre-classifier ``Linear(D, H)`` → ReLU → dropout → ``Linear(H, C)``. The ReLU'd
pre-classifier output ``u [B, H]`` (≥ 0) is what the soft-contrastive loss compares captions with. TRUST
fine-tunes a DistilBERT; here the tower (the backbone's CLIP text tower or a sentence encoder) stays
frozen and embeds each distinct caption once, and only the head is trained — fast on a CPU, and the
pseudo-labels ``argmax g(t)`` are deterministic (dropout is off in eval mode).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from chronoclip.errors import ConfigError

_CLEAN_STEPS = (
    (re.compile(r"https?://\S+|www\.\S+"), " "),  # URLs
    (re.compile(r"<[^>]+>"), " "),  # HTML tags
    (re.compile(r"@\w+"), " "),  # @user
    (re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]+"), " "),  # CJK
    (re.compile(r"\d+"), " "),
    (re.compile(r"[^\w\s]|_"), " "),  # punctuation
    (re.compile(r"\s+"), " "),
)


def clean_caption(text: str) -> str:
    """TRUST's caption cleaning (B.4): URLs, HTML, @user, CJK, digits and punctuation dropped, lower case,
    whitespace collapsed. ``"A cat! see http://x.io <b>2</b>"`` → ``"a cat see"``."""
    for pattern, replacement in _CLEAN_STEPS:
        text = pattern.sub(replacement, text)
    return text.strip().lower()


class CaptionClassifier(nn.Module):
    """The trainable head of g: ``[B, D]`` tower embeddings → ``u [B, H]`` (ReLU'd) and logits ``[B, C]``."""

    def __init__(self, width: int, hidden: int, classes: int, dropout: float) -> None:
        super().__init__()
        self.pre_classifier = nn.Linear(width, hidden)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, classes)

    def features(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``u = ReLU(pre_classifier(e))`` ``[B, H]``."""
        return F.relu(self.pre_classifier(embeddings))

    def forward(self, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(``u [B, H]``, logits ``[B, C]``)."""
        features = self.features(embeddings)
        return features, self.classifier(self.dropout(features))


def fit_caption_classifier(classifier: CaptionClassifier, embeddings: torch.Tensor, labels: torch.Tensor,
                           steps: int, lr: float, batch_size: int, weight_decay: float,
                           generator: torch.Generator) -> list[float]:
    """Train ``classifier`` on source caption embeddings ``[N, D]`` with labels ``[N]``, then freeze it.

    AdamW with a cosine decay and no warm-up, gradient clipping at 1, and class-balanced batches drawn with
    replacement (each row's weight 1 / its class count), as TRUST's ``finetune_bert``.

    Returns:
        The loss of each step (for logs and tests).

    Raises:
        ConfigError: fewer than two classes among the labels.
    """
    if labels.unique().numel() < 2:
        raise ConfigError(f"the caption classifier needs source captions of at least 2 classes, got "
                          f"{labels.unique().tolist()}")
    counts = torch.bincount(labels)
    row_weights = 1.0 / counts[labels].double()
    classifier.requires_grad_(True)
    classifier.train()
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=lr, weight_decay=weight_decay)
    losses = []
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / steps))
        rows = torch.multinomial(row_weights, batch_size, replacement=True, generator=generator)
        _, logits = classifier(embeddings[rows])
        loss = F.cross_entropy(logits, labels[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(classifier.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
    classifier.zero_grad(set_to_none=True)
    classifier.requires_grad_(False)
    classifier.eval()
    return losses


class CaptionMemo:
    """Frozen-tower embeddings of captions, each distinct caption embedded once (no graph, kept on the CPU).

    Args:
        encode: ``list[str] -> [N, D]`` of a frozen tower.
        prepare: applied to each caption before encoding (e.g. :func:`clean_caption`).
        chunk: captions per tower call.
    """

    def __init__(self, encode: Callable[[list[str]], torch.Tensor], prepare: Callable[[str], str] = str,
                 chunk: int = 256) -> None:
        self.encode, self.prepare, self.chunk = encode, prepare, chunk
        self.table: dict[str, torch.Tensor] = {}

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        """``[len(texts), D]`` embeddings (CPU, float32)."""
        keys = [self.prepare(t) for t in texts]
        missing = sorted(set(keys) - set(self.table))
        with torch.no_grad():
            for start in range(0, len(missing), self.chunk):
                part = missing[start:start + self.chunk]
                self.table.update(zip(part, self.encode(part).float().cpu(), strict=True))
        return torch.stack([self.table[k] for k in keys])
