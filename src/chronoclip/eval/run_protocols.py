"""The evaluations the engine runs on a training run's val / test splits, by :attr:`Method.run_protocol`.

Each protocol is a function ``(method, dataset, protocol, *, batch_size, device, progress, reference)``
returning the result (metrics and ``protocol``) and its extra keyword inputs of
:func:`~chronoclip.eval.report.write_report` (classes, predictions and targets of a confusion matrix,
``stage_time``'s time plot; empty when the report draws nothing more).
``reference`` is the training split as evaluation samples, built only for a protocol that declares
``needs_reference`` (e.g. a linear probe fitted on frozen features of the training split).

A method adds a protocol by writing its evaluator here (``eval`` may import ``methods``, not the reverse)
and naming it in :data:`chronoclip.methods.base.RUN_PROTOCOLS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch.utils.data import Dataset

from chronoclip.eval.adapt import evaluate_adaptation
from chronoclip.eval.av_probe import evaluate_av_probe
from chronoclip.eval.classify import evaluate_classification
from chronoclip.eval.retrieval import evaluate_method_retrieval
from chronoclip.eval.stage_time import evaluate_stage_time

#: An evaluator's extra inputs of :func:`chronoclip.eval.report.write_report` (confusion matrix, time plot).
ReportInputs = dict[str, Any]
Evaluator = Callable[..., tuple[dict[str, Any], ReportInputs]]


@dataclass(frozen=True)
class RunProtocol:
    """An evaluator and whether it needs the training split (``reference``)."""

    evaluate: Evaluator
    needs_reference: bool = False


def _confusion_inputs(method: Any, probabilities: Any, targets: Any) -> ReportInputs:
    """The report's confusion-matrix inputs of a classifier's ``[N, C]`` probabilities and ``[N]`` targets."""
    return {"class_names": method.class_names, "predictions": probabilities.argmax(-1).numpy(),
            "targets": targets.numpy()}


def _classify(method: Any, dataset: Dataset[Any], protocol: dict[str, Any], *, reference: Any = None,
              **kwargs: Any) -> tuple[dict[str, Any], ReportInputs]:
    result, probabilities, targets = evaluate_classification(method, dataset, protocol, **kwargs)
    return result, _confusion_inputs(method, probabilities, targets)


def _adapt(method: Any, dataset: Dataset[Any], protocol: dict[str, Any], *, reference: Any = None,
           **kwargs: Any) -> tuple[dict[str, Any], ReportInputs]:
    result, probabilities, targets = evaluate_adaptation(method, dataset, protocol, **kwargs)
    return result, _confusion_inputs(method, probabilities, targets)


def _retrieval(method: Any, dataset: Dataset[Any], protocol: dict[str, Any], *, reference: Any = None,
               **kwargs: Any) -> tuple[dict[str, Any], ReportInputs]:
    return evaluate_method_retrieval(method, dataset, protocol, **kwargs), {}


def _av_probe(method: Any, dataset: Dataset[Any], protocol: dict[str, Any], *, reference: Any = None,
              **kwargs: Any) -> tuple[dict[str, Any], ReportInputs]:
    return evaluate_av_probe(method, dataset, protocol, reference=reference, **kwargs), {}


def _stage_time(method: Any, dataset: Dataset[Any], protocol: dict[str, Any], *, reference: Any = None,
                **kwargs: Any) -> tuple[dict[str, Any], ReportInputs]:
    return evaluate_stage_time(method, dataset, protocol, **kwargs)


#: Run protocol name -> its evaluator.
RUN_EVALUATORS: dict[str, RunProtocol] = {
    "classify": RunProtocol(_classify),
    "adapt": RunProtocol(_adapt),
    "retrieval": RunProtocol(_retrieval),
    "av_probe": RunProtocol(_av_probe, needs_reference=True),
    "stage_time": RunProtocol(_stage_time),
}


def run_protocol(name: str) -> RunProtocol:
    """The evaluator of run protocol ``name``."""
    if name not in RUN_EVALUATORS:
        raise KeyError(f"no evaluator for run protocol '{name}'; known: {', '.join(RUN_EVALUATORS)}")
    return RUN_EVALUATORS[name]
