"""Evaluation of an unsupervised domain-adaptation run (the ``adapt`` run protocol; TRUST, LaGTrAn).

Classification metrics on the evaluated domain's rows (:meth:`Method.evaluation_rows` kept them), plus
what the method derives from each row's caption: ``pseudo_label_top1`` (percent of rows whose caption
pseudo-label is the true class) and ``weight_auroc`` (0–1: how well the caption weight w ranks correct
pseudo-labels above wrong ones; 0.5 is chance). Labels are read here, at evaluation, and never in training.

w is batch-relative (each image competes with its batch's captions), so it is computed on batches of the
training batch size drawn in a fixed random order, as in training, not on class-sorted rows.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from chronoclip.data.datasets import collate, to_device
from chronoclip.eval.classify import evaluate_classification


def weight_auroc(weights: torch.Tensor, correct: torch.Tensor) -> float | None:
    """Area under the ROC curve of ``weights [N]`` as a score for ``correct [N]`` (bool), ties counted
    half (the Mann–Whitney statistic); ``None`` when every pseudo-label is right or every one is wrong."""
    positives, negatives = weights[correct], weights[~correct]
    if positives.numel() == 0 or negatives.numel() == 0:
        return None
    greater = (positives[:, None] > negatives[None, :]).double().sum()
    ties = (positives[:, None] == negatives[None, :]).double().sum()
    return float((greater + 0.5 * ties) / (positives.numel() * negatives.numel()))


@torch.no_grad()
def caption_outputs(method: Any, dataset: Dataset[Any], batch_size: int, device: torch.device | str,
                    seed: int = 0) -> dict[str, torch.Tensor]:
    """The method's :meth:`adaptation_outputs` over ``dataset``, in row order: ``pseudo_labels [N]``,
    ``labels [N]`` and, when the method gives them, ``weights [N]``; empty when it gives nothing."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))  # type: ignore[arg-type]
    loader = DataLoader(dataset, batch_size=batch_size, sampler=order.tolist(), collate_fn=collate)
    method.eval()
    parts: dict[str, list[torch.Tensor]] = {}
    for batch in loader:
        batch = to_device(batch, torch.device(device))
        flat = {k: (v[:, 0] if k in ("pixels", "features") else v) for k, v in batch.items()}  # first view
        outputs = method.adaptation_outputs(flat)
        if not outputs:
            return {}
        for key, value in {**outputs, "labels": batch["label"], "index": batch["index"]}.items():
            parts.setdefault(key, []).append(value.cpu())
    joined = {key: torch.cat(values) for key, values in parts.items()}
    rows = joined.pop("index").argsort()
    return {key: value[rows] for key, value in joined.items()}


def evaluate_adaptation(method: Any, dataset: Dataset[Any], protocol: dict[str, Any], *, batch_size: int = 16,
                        device: torch.device | str = "cpu", progress: bool = True
                        ) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
    """``classify``'s metrics on the evaluated domain plus ``pseudo_label_top1`` (percent),
    ``weight_auroc`` (0–1) and the mean weight of correct / wrong pseudo-labels, where the method gives them.

    Returns:
        The result, and the ``[N, C]`` probabilities and ``[N]`` targets of the classification.
    """
    domain = method.evaluation_domain(protocol.get("split", "test"))
    result, probabilities, targets = evaluate_classification(
        method, dataset, {**protocol, "task": "adapt", "domain": domain}, batch_size=batch_size, device=device,
        progress=progress)
    outputs = caption_outputs(method, dataset, batch_size, device)
    if outputs:
        labelled = outputs["labels"] >= 0
        correct = (outputs["pseudo_labels"] == outputs["labels"])[labelled]
        result["pseudo_label_top1"] = 100.0 * float(correct.double().mean())
        if "weights" in outputs:
            weights = outputs["weights"][labelled]
            result["weight_auroc"] = weight_auroc(weights, correct)
            result["weight_mean_correct"] = float(weights[correct].mean()) if correct.any() else None
            result["weight_mean_wrong"] = float(weights[~correct].mean()) if (~correct).any() else None
            result["weights"] = {"values": [round(float(w), 5) for w in weights], "correct": correct.tolist()}
        result["protocol"]["weight_batch"] = batch_size
    return result, probabilities, targets
