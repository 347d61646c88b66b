"""Stage + time evaluation of a ``stage_time`` method such as ``cliptime`` (spec C.5).

Metrics (stages in percent, times in the run's unit, e.g. hours):

- ``stage_acc``, ``stage_macro_f1`` on samples with a known stage;
- ``mae``, ``rmse`` and ``temporal_acc@5`` / ``temporal_acc@10`` (share within δ = 5 % / 10 % of the
  training time range) on samples with a timestamp, for the time head; ``mae_retrieval``,
  ``rmse_retrieval`` for the retrieval readout and ``retrieval_agreement@5``, the share of samples
  whose two readouts lie within δ = 5 % of each other (when the method has a temporal embedding);
- ``stage_time_consistency``: the share of samples whose predicted stage is the stage their predicted
  time implies under the training split's stage boundaries;
- ``text_truncated``: the share of the split's distinct notes longer than the text context (spec C.6).

The method provides ``forward`` (``stage_logits``, ``tau``), ``to_time``, ``stage_from_tau``,
``retrieve_tau``, ``truncation``, ``time_range`` and ``time_unit``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from chronoclip.data.datasets import collate, to_device
from chronoclip.eval.metrics import macro_f1, regression_metrics, temporal_accuracy, topk_accuracy

#: δ of the temporal accuracies, as fractions of the training time range.
DELTAS = (0.05, 0.10)


@torch.no_grad()
def predict_stage_time(method: Any, dataset: Dataset[Any], batch_size: int = 16, device: torch.device | str = "cpu",
                       progress: bool = True) -> dict[str, Any]:
    """Run the method over an evaluation data set (first view of each sample).

    Returns:
        ``probabilities [N, K]``, ``stages [N]`` (``-1`` unknown), ``tau [N]`` (head), ``tau_retrieval``
        ``[N]`` or ``None``, ``time [N]`` (true, NaN unknown), and the ``series`` and ``text`` lists.
    """
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    method.eval()
    parts: dict[str, list[Any]] = {k: [] for k in ("probabilities", "stages", "tau", "tau_retrieval", "time",
                                                    "series", "text")}
    for batch in tqdm(loader, desc="evaluate", unit="batch", disable=not progress):
        batch = to_device(batch, torch.device(device))
        for key in ("pixels", "features"):
            if key in batch:
                batch[key] = batch[key][:, 0]
        outputs = method(batch)
        retrieved = method.retrieve_tau(outputs)
        parts["probabilities"].append(outputs["stage_logits"].float().softmax(-1).cpu())
        parts["tau"].append(outputs["tau"].float().cpu())
        parts["tau_retrieval"].append(None if retrieved is None else retrieved.float().cpu())
        parts["stages"].append(batch["stage_index"].cpu())
        parts["time"].append(batch["time"].double().cpu())
        parts["series"] += [str(s) for s in batch.get("series", [None] * len(batch["text"]))]
        parts["text"] += list(batch["text"])
    result: dict[str, Any] = {k: torch.cat(parts[k]) for k in ("probabilities", "stages", "tau", "time")}
    no_retrieval = any(r is None for r in parts["tau_retrieval"])
    result["tau_retrieval"] = None if no_retrieval else torch.cat(parts["tau_retrieval"])
    return {**result, "series": parts["series"], "text": parts["text"]}


def stage_time_metrics(method: Any, predicted: dict[str, Any]) -> dict[str, float]:
    """The metrics of the module docstring from :func:`predict_stage_time`'s output."""
    probabilities, stages = predicted["probabilities"], predicted["stages"]
    result: dict[str, float] = {}
    staged = stages >= 0
    if staged.any():
        result["stage_acc"] = topk_accuracy(probabilities[staged], stages[staged], 1)
        result["stage_macro_f1"] = macro_f1(probabilities[staged].argmax(-1), stages[staged], probabilities.shape[1])
    true_time = predicted["time"]
    timed = ~true_time.isnan()
    span = float(method.time_range)
    head = method.to_time(predicted["tau"])
    if timed.any():
        result.update(regression_metrics(head[timed], true_time[timed]))
        for delta in DELTAS:
            name = f"temporal_acc@{round(delta * 100)}"
            result[name] = temporal_accuracy(head[timed], true_time[timed], delta * span)
    implied = method.stage_from_tau(predicted["tau"])
    result["stage_time_consistency"] = float((implied == probabilities.argmax(-1)).double().mean() * 100)
    if predicted["tau_retrieval"] is not None:
        retrieved = method.to_time(predicted["tau_retrieval"])
        if timed.any():
            errors = regression_metrics(retrieved[timed], true_time[timed])
            result.update({f"{k}_retrieval": v for k, v in errors.items()})
        result["retrieval_agreement@5"] = temporal_accuracy(retrieved, head, DELTAS[0] * span)
    truncated, notes = method.truncation(sorted(set(predicted["text"])))
    result["text_truncated"] = 100.0 * truncated / notes if notes else 0.0
    return result


def evaluate_stage_time(method: Any, dataset: Dataset[Any], protocol: dict[str, Any], **kwargs: Any
                        ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The metrics with their ``protocol``, and the report's inputs: stage ``predictions`` / ``targets``
    (for the confusion matrix) and ``times`` (true and predicted time per series, for the time plot)."""
    predicted = predict_stage_time(method, dataset, **kwargs)
    result: dict[str, Any] = stage_time_metrics(method, predicted)
    stages, timed = predicted["stages"], ~predicted["time"].isnan()
    result["protocol"] = {"task": "stage_time", "samples": len(stages), "staged": int((stages >= 0).sum()),
                          "timed": int(timed.sum()), "time_unit": method.time_unit,
                          "time_range": round(float(method.time_range), 6),
                          "deltas": [round(d * float(method.time_range), 6) for d in DELTAS],
                          "stage_percent": True, **protocol}
    report = {"class_names": list(method.class_names), "predictions": predicted["probabilities"].argmax(-1),
              "targets": stages,
              "times": {"series": [s for s, t in zip(predicted["series"], timed.tolist(), strict=True) if t],
                        "true": predicted["time"][timed].numpy(),
                        "predicted": method.to_time(predicted["tau"])[timed].numpy(), "unit": method.time_unit}}
    return result, report
