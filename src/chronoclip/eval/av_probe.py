"""Linear probes on frozen audio-visual features (CrissCross's evaluations, spec A.6).

- :func:`evaluate_av_probe` — the ``av_probe`` run protocol: the method's frozen backbone features of
  every modality it has, a linear probe of the class fitted on the training split and scored on the
  given split. Each sample has V evenly spaced windows; all V are training rows of one item (kept on one
  side of the C-sweep hold-out) and the test prediction averages the V windows' probabilities
  (multi-crop test averaging).
- :func:`evaluate_audio_folds` — ESC-50's protocol: frozen audio features, k-fold cross-validation
  over the manifest's folds (its ``split`` column, 1-5), multi-crop test averaging, a C sweep on a
  hold-out of the training folds, mean ± std over folds.

The classifier is the library's probe (:mod:`chronoclip.eval.linear_probe`: logistic regression with a
C sweep) rather than the released code's LinearSVC; features are the globally pooled backbone output.

Results have flat dotted keys per modality (``video.probe_top1``, ``audio.probe_top1``, percent) and
the same figures nested (``result["video"]["probe_top1"]``); ``probe_top1`` is the mean over modalities.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from chronoclip.data.av import AVDataset
from chronoclip.data.datasets import collate, to_device
from chronoclip.data.manifest import Manifest
from chronoclip.eval.linear_probe import ProbeSettings, evaluate_linear_probe, evaluate_linear_probe_folds

PROBE_KEYS = ("top1", "top5", "mean_class_acc")


@torch.no_grad()
def embed_dataset(method: Any, dataset: Dataset[Any], batch_size: int = 16, device: torch.device | str = "cpu",
                  progress: bool = False) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Frozen features of an evaluation data set: ``{modality: [N, V, D]}`` and labels ``[N]`` (−1: none)."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    method.eval()
    features: dict[str, list[torch.Tensor]] = {}
    labels = []
    for batch in tqdm(loader, desc="embed", unit="batch", disable=not progress):
        for key, value in method.embed(to_device(batch, torch.device(device))).items():
            features.setdefault(key, []).append(value.float().cpu())
        labels.append(batch["label"])
    if not labels:
        raise ValueError("no samples to embed")
    return {key: torch.cat(parts) for key, parts in features.items()}, torch.cat(labels)


def _rows(features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``[N, V, D]`` + ``[N]`` → labelled rows ``[N'·V, D]``, their labels and item ids."""
    keep = labels >= 0
    features, labels = features[keep], labels[keep]
    views = features.shape[1]
    items = torch.arange(len(labels)).repeat_interleave(views)
    return features.flatten(0, 1), labels.repeat_interleave(views), items


def probe_views(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, test_labels: torch.Tensor,
                settings: ProbeSettings | None = None, protocol: dict[str, Any] | None = None) -> dict[str, Any]:
    """Linear probe on multi-view features ``[N, V, D]``: views of one item share its label and id."""
    x, y, items = _rows(train, train_labels)
    tx, ty, test_items = _rows(test, test_labels)
    if not len(y) or not len(ty):
        raise ValueError("the probe needs labelled training and test samples")
    return evaluate_linear_probe(x, y, tx, ty, train_item_ids=items, test_item_ids=test_items,
                                 settings=settings, protocol=protocol)


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    return {**{f"probe_{key}": result[key] for key in PROBE_KEYS}, "best_C": result["best_C"],
            "protocol": result["protocol"]}


def evaluate_av_probe(method: Any, dataset: Dataset[Any], protocol: dict[str, Any], *, reference: Dataset[Any],
                      batch_size: int = 16, device: torch.device | str = "cpu", progress: bool = False,
                      settings: ProbeSettings | None = None) -> dict[str, Any]:
    """Class probes on frozen features of each modality, fitted on ``reference`` (the training split).

    Returns:
        ``{"probe_top1", "<modality>.probe_top1|probe_top5|probe_mean_class_acc|best_C",
        "<modality>": {the same, "protocol"}, "protocol"}`` (percent).
    """
    test, test_labels = embed_dataset(method, dataset, batch_size, device, progress)
    train, train_labels = embed_dataset(method, reference, batch_size, device, progress)
    result: dict[str, Any] = {}
    for modality in sorted(test):
        described = {"features": f"frozen {modality} backbone features", "views": test[modality].shape[1]}
        summary = _summary(probe_views(train[modality], train_labels, test[modality], test_labels, settings,
                                       described))
        result[modality] = summary
        result.update({f"{modality}.{key}": value for key, value in summary.items() if key != "protocol"})
    result["probe_top1"] = float(np.mean([result[m]["probe_top1"] for m in test]))
    result["protocol"] = {"task": "av_probe", "modalities": sorted(test), "fit_on": "train split",
                          "probe_top1": "mean of the modalities' probe_top1", **protocol}
    return result


def evaluate_audio_folds(method: Any, rows: Manifest, *, crops: int = 10, batch_size: int = 16,
                         device: torch.device | str = "cpu", progress: bool = False,
                         settings: ProbeSettings | None = None) -> dict[str, Any]:
    """ESC-50's protocol on frozen audio features: cross-validation over the rows' folds (``split``).

    Args:
        method: a method with ``av_spec()`` and ``embed()`` (``crisscross``).
        rows: every row of every fold (audio files or videos with sound), ``split`` = fold id.
        crops: evenly spaced audio windows per recording; their probabilities are averaged.

    Returns:
        :func:`~chronoclip.eval.linear_probe.evaluate_linear_probe_folds`'s result (``top1`` mean over
        folds, ``top1_std``, ``per_fold``, ``protocol``).
    """
    folds = [str(split) for split in rows.column("split")]
    if len(set(folds)) < 2 or "" in folds or "None" in folds:
        raise ValueError(f"{rows.name}: every row needs a fold in its split column (ESC-50: 1-5); "
                         f"got {sorted(set(folds))}")
    spec = replace(method.av_spec(), modalities=("audio",), eval_clips=crops)
    dataset = AVDataset(rows, spec, rows.labels, train=False)
    features, labels = embed_dataset(method, dataset, batch_size, device, progress)
    x, y, items = _rows(features["audio"], labels)
    fold_ids = np.array([folds[row] for row in dataset.keep])[labels.numpy() >= 0].repeat(crops)
    return evaluate_linear_probe_folds(x, y, fold_ids, item_ids=items, settings=settings,
                                       protocol={"features": "frozen audio backbone features", "crops": crops,
                                                 "manifest": rows.name})
