"""Supervised classification evaluation of a method, with multi-view testing.

Evaluation samples carry ``V`` views (temporal clips × spatial crops): ``pixels [B,V,T,3,S,S]`` or
cached ``features [B,V,T,D]``. Views are folded into the batch for the forward pass and their
softmax probabilities averaged per sample (the DiST / SlowFast protocol).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from chronoclip.data.datasets import collate, to_device
from chronoclip.eval.metrics import classification_metrics, confusion_matrix, per_class_accuracy

VIEW_KEYS = ("pixels", "features")


@torch.no_grad()
def predict_scores(method: Any, dataset: Dataset[Any], batch_size: int = 16, num_workers: int = 0,
                   device: torch.device | str = "cpu", progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``method`` over an evaluation data set.

    Returns:
        ``probabilities [N, C]`` averaged over views, and ``targets [N]`` (``-1`` where unlabelled).
    """
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate,
                        num_workers=num_workers)
    method.eval()
    probabilities, targets = [], []
    for batch in tqdm(loader, desc="evaluate", unit="batch", disable=not progress):
        batch = to_device(batch, torch.device(device))
        size, views = next(batch[k].shape[:2] for k in VIEW_KEYS if k in batch)
        flat = {k: (v.flatten(0, 1) if k in VIEW_KEYS else v) for k, v in batch.items()}
        logits = method(flat)["logits"].float()
        probabilities.append(logits.softmax(-1).view(size, views, -1).mean(1).cpu())
        targets.append(batch["label"].cpu())
    return torch.cat(probabilities), torch.cat(targets)


def evaluate_classification(method: Any, dataset: Dataset[Any], protocol: dict[str, Any], **kwargs: Any
                            ) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
    """``top1``, ``top5``, ``mean_class_acc``, ``per_class_top1`` (percent) on labelled samples, the
    ``confusion`` counts (``{"classes": names, "counts": [true][predicted]}``) and ``protocol``.

    Returns:
        The result dict, and the ``[N, C]`` probabilities and ``[N]`` targets it was computed from.
    """
    probabilities, targets = predict_scores(method, dataset, **kwargs)
    labelled = targets >= 0
    if not labelled.any():
        raise ValueError("no labelled samples to evaluate")
    result: dict[str, Any] = classification_metrics(probabilities[labelled], targets[labelled])
    names = list(method.class_names)
    per_class = per_class_accuracy(probabilities[labelled].argmax(-1), targets[labelled], len(names))
    result["per_class_top1"] = {name: float(v) for name, v in zip(names, per_class, strict=True) if v == v}
    counts = confusion_matrix(probabilities[labelled].argmax(-1), targets[labelled], len(names))
    result["confusion"] = {"classes": names, "counts": counts.tolist()}
    result["protocol"] = {"task": "classify", "samples": int(labelled.sum()), **protocol}
    return result, probabilities, targets
