"""Baselines of the stage + time task (spec C.5) and the text-leakage check (spec C.6).

- :func:`colour_histograms` + :func:`fit_ridge`: a joint RGB histogram per image and a closed-form
  ridge regressor (time) or one-hot ridge classifier (stage) — the colour shortcut: in the synthetic
  growth world colour is almost monotone in developmental progress.
- :func:`zero_shot_times`: CLIP with a prompt grid ("a culture after {k} hours."): each image takes the
  time of its most similar prompt.
- :func:`text_leakage_warning`: a message when a text-only model beats the image-only one on time
  error — the notes then give the time or stage away (or the images carry little).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from chronoclip.eval.zero_shot import TextEncoder, build_text_classifier
from chronoclip.io.image import load_image


def colour_histograms(paths: Sequence[str | Path], bins: int = 8) -> np.ndarray:
    """``float [N, bins³]``: each image's joint RGB histogram, normalised to sum 1."""
    if bins < 1:
        raise ValueError(f"bins must be positive, got {bins}")
    rows = []
    for path in paths:
        quantised = (load_image(path).reshape(-1, 3).astype(np.int64) * bins) // 256
        codes = (quantised[:, 0] * bins + quantised[:, 1]) * bins + quantised[:, 2]
        rows.append(np.bincount(codes, minlength=bins**3) / len(codes))
    return np.stack(rows)


def fit_ridge(features: np.ndarray, targets: np.ndarray, alpha: float = 1e-3) -> np.ndarray:
    """Ridge weights ``[F + 1, T]`` (last row: intercept, not penalised) for ``features [N, F]`` and
    ``targets [N]`` or ``[N, T]``; predict with :func:`ridge_predict`."""
    if len(features) != len(targets) or not len(features):
        raise ValueError(f"need as many non-zero feature rows as targets; got {len(features)} and {len(targets)}")
    design = np.hstack([features, np.ones((len(features), 1))])
    penalty = alpha * np.eye(design.shape[1])
    penalty[-1, -1] = 0.0
    targets = targets.reshape(len(targets), -1).astype(np.float64)
    return np.linalg.solve(design.T @ design + penalty, design.T @ targets)


def ridge_predict(weights: np.ndarray, features: np.ndarray) -> np.ndarray:
    """``[N, T]`` predictions of :func:`fit_ridge` weights."""
    return np.hstack([features, np.ones((len(features), 1))]) @ weights


def zero_shot_times(image_embeddings: torch.Tensor, grid: Sequence[float], encode_text: TextEncoder,
                    template: str = "a culture after {} hours.") -> np.ndarray:
    """``[N]`` times: for each L2-normalised image embedding ``[N, D]``, the grid time whose prompt
    (``template`` with the time written in) is the most similar."""
    names = [f"{value:g}" for value in grid]
    classifier = build_text_classifier(names, [template], encode_text)
    best = (image_embeddings.float() @ classifier.T.to(image_embeddings.device)).argmax(dim=1).cpu().numpy()
    return np.asarray(grid, dtype=np.float64)[best]


def text_leakage_warning(text_only_mae: float, image_only_mae: float, unit: str = "") -> str | None:
    """A warning when the text-only model's time error is below the image-only one's, else ``None``."""
    if text_only_mae >= image_only_mae:
        return None
    return (f"text-only MAE {text_only_mae:.3g} {unit} is below image-only MAE {image_only_mae:.3g} {unit}: the notes "
            "may state the time or the stage (check them for dates, durations and stage words) — the image+text "
            "figures then measure the notes, not the images").replace("  ", " ")
