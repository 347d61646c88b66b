"""A multinomial logistic-regression probe in torch: full-batch L-BFGS, warm-started along a ``C`` path.

It minimises scikit-learn's ``LogisticRegression`` objective (lbfgs, multinomial, L2, intercept not
penalised) in the form scikit-learn itself uses since 1.2 — the mean cross-entropy plus
``‖W‖² / (2·C·N)`` — so a ``C`` means the same in both and the same tolerance stops both (the largest
gradient entry below ``tol``). What makes it fast:

- **warm starts**: the sweep solves the ``C`` values from the strongest regularisation to the weakest and
  starts each fit from the solution of the nearest ``C`` solved so far, so most fits need a few iterations;
- **one solver on the whole batch** on the GPU when there is one, else on the CPU's threads, in float32.

Features are standardised before it (the probe's protocol); :class:`SoftmaxProbe` holds the fitted
weights and answers ``predict_proba`` like a scikit-learn estimator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def probe_device(device: str = "auto") -> torch.device:
    """``cuda`` when asked or, for ``auto``, when a GPU is present; else ``cpu``.

    Raises:
        ValueError: ``cuda`` asked for without a GPU, or an unknown name.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("probe device 'cuda' asked for, but torch sees no GPU; use 'auto' or 'cpu'")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"probe device must be 'auto', 'cpu' or 'cuda'; got '{device}'")
    return torch.device(device)


@dataclass
class SoftmaxProbe:
    """A fitted softmax classifier on standardised features.

    Attributes:
        weight: ``[K, D]``; bias: ``[K]`` (on the solver's device).
        classes_: ``[K]`` the class index of each output (the classes present in training).
        mean, scale: ``[D]`` standardisation of the raw features.
        iterations: L-BFGS iterations of the fit.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    classes_: np.ndarray
    mean: torch.Tensor
    scale: torch.Tensor
    iterations: int = 0

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """``[N, K]`` logits of raw ``[N, D]`` features."""
        return ((features.to(self.weight) - self.mean) / self.scale) @ self.weight.T + self.bias

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """``[N, K]`` float64 probabilities (columns in the order of :attr:`classes_`)."""
        with torch.no_grad():
            return self.logits(torch.as_tensor(features)).softmax(-1).double().cpu().numpy()


def standardiser(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean [D], scale [D])`` of ``[N, D]`` features (population std; a constant feature gets scale 1,
    as scikit-learn's ``StandardScaler``)."""
    mean = features.mean(0)
    scale = features.std(0, unbiased=False)
    return mean, torch.where(scale > 0, scale, torch.ones_like(scale))


class SoftmaxPath:
    """Fits of one training set along a ``C`` path, each warm-started from the nearest solved ``C``.

    Args:
        features: ``[N, D]`` raw training features; labels: ``[N]`` class indices.
        device: where the solver runs (:func:`probe_device`).
        max_iter: L-BFGS iterations per fit; tol: stop when every gradient entry is below it.
    """

    def __init__(self, features: np.ndarray, labels: np.ndarray, device: torch.device, max_iter: int = 1000,
                 tol: float = 1e-4) -> None:
        raw = torch.as_tensor(np.asarray(features), dtype=torch.float32, device=device)
        self.mean, self.scale = standardiser(raw)
        self.x = (raw - self.mean) / self.scale
        self.classes = np.unique(labels)
        position = {int(c): i for i, c in enumerate(self.classes)}
        self.y = torch.as_tensor([position[int(c)] for c in labels], device=device)
        self.max_iter, self.tol = max_iter, tol
        self.solved: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}

    def fit(self, C: float, start: tuple[torch.Tensor, torch.Tensor] | None = None) -> SoftmaxProbe:
        """The minimiser of mean CE + ``‖W‖² / (2·C·N)``, started from ``start`` (weight, bias), else from
        the nearest ``C`` solved on this path (in log space), else from zero."""
        count, width = self.x.shape
        nearest = min(self.solved, key=lambda c: abs(np.log(c / C)), default=None)
        if start is None and nearest is not None:
            start = self.solved[nearest]
        if start is None:
            weight = torch.zeros(len(self.classes), width, device=self.x.device)
            bias = torch.zeros(len(self.classes), device=self.x.device)
        else:
            weight, bias = (t.detach().clone().to(self.x.device) for t in start)
        strength = 1.0 / (2.0 * C * count)
        # Solve for V = W / s: under a strong penalty the weights' curvature (2·strength) dwarfs the
        # intercept's (< 1), and L-BFGS's single step scale would leave the intercept unsolved; with
        # s = 1 / sqrt(1 + 2·strength) both are O(1). The gradient tolerance shrinks by s with it, so
        # the stop is at least as strict as scikit-learn's on W.
        s = 1.0 / float(np.sqrt(1.0 + 2.0 * strength))
        scaled = (weight / s).requires_grad_(True)
        bias.requires_grad_(True)
        optimizer = torch.optim.LBFGS([scaled, bias], lr=1.0, max_iter=self.max_iter, history_size=10,
                                      tolerance_grad=self.tol * s, tolerance_change=1e-12,
                                      line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            weight = s * scaled
            loss = F.cross_entropy(self.x @ weight.T + bias, self.y) + strength * weight.square().sum()
            loss.backward()
            return loss

        if len(self.classes) > 1:
            optimizer.step(closure)
        iterations = int(optimizer.state[scaled].get("n_iter", 0))
        weight, bias = (s * scaled).detach(), bias.detach()
        self.solved[C] = (weight, bias)
        return SoftmaxProbe(weight, bias, self.classes, self.mean, self.scale, iterations)
