"""Evaluation: metrics and the protocols users compare with, each result stating its protocol.

- :mod:`~chronoclip.eval.metrics` — ``top1``, ``top5``, ``mean_class_acc``, ``mae``, ``rmse``,
  ``R@k``, ``MdR``, ``MnR``;
- :mod:`~chronoclip.eval.zero_shot` — prompt-template classifiers (template sets shipped as data);
- :mod:`~chronoclip.eval.views` — multi-view testing (clips × crops) and score averaging;
- :mod:`~chronoclip.eval.linear_probe` — CLIP's logistic-regression probe with a ``C`` sweep, folds;
- :mod:`~chronoclip.eval.retrieval` — text↔video retrieval in both directions;
- :mod:`~chronoclip.eval.report` — plots and ``report.md`` for a run.

The names below are imported lazily on first use, so ``import chronoclip.eval.metrics`` does not
pay for scikit-learn or matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chronoclip._lazy import lazy_exports

if TYPE_CHECKING:
    from chronoclip.eval.linear_probe import (
        ProbeFit,
        ProbeSettings,
        evaluate_linear_probe,
        evaluate_linear_probe_folds,
        fit_linear_probe,
    )
    from chronoclip.eval.metrics import (
        RETRIEVAL_TIE_POLICY,
        classification_metrics,
        confusion_matrix,
        mean_class_accuracy,
        per_class_accuracy,
        regression_metrics,
        retrieval_metrics,
        retrieval_ranks,
        topk_accuracy,
    )
    from chronoclip.eval.report import write_report
    from chronoclip.eval.retrieval import evaluate_retrieval, retrieval_similarity
    from chronoclip.eval.views import (
        average_by_item,
        average_views,
        clip_frame_indices,
        clip_starts,
        view_layout,
    )
    from chronoclip.eval.zero_shot import (
        TextEncoder,
        build_text_classifier,
        evaluate_zero_shot,
        load_templates,
        template_sets,
        validate_templates,
        zero_shot_scores,
    )

_EXPORTS = {
    "chronoclip.eval.linear_probe": ("ProbeFit", "ProbeSettings", "evaluate_linear_probe",
                                     "evaluate_linear_probe_folds", "fit_linear_probe"),
    "chronoclip.eval.metrics": ("RETRIEVAL_TIE_POLICY", "classification_metrics", "confusion_matrix",
                                "mean_class_accuracy", "per_class_accuracy", "regression_metrics",
                                "retrieval_metrics", "retrieval_ranks", "topk_accuracy"),
    "chronoclip.eval.report": ("write_report",),
    "chronoclip.eval.retrieval": ("evaluate_retrieval", "retrieval_similarity"),
    "chronoclip.eval.views": ("average_by_item", "average_views", "clip_frame_indices", "clip_starts",
                              "view_layout"),
    "chronoclip.eval.zero_shot": ("TextEncoder", "build_text_classifier", "evaluate_zero_shot",
                                  "load_templates", "template_sets", "validate_templates",
                                  "zero_shot_scores"),
}

__all__ = [
    "RETRIEVAL_TIE_POLICY",
    "ProbeFit",
    "ProbeSettings",
    "TextEncoder",
    "average_by_item",
    "average_views",
    "build_text_classifier",
    "classification_metrics",
    "clip_frame_indices",
    "clip_starts",
    "confusion_matrix",
    "evaluate_linear_probe",
    "evaluate_linear_probe_folds",
    "evaluate_retrieval",
    "evaluate_zero_shot",
    "fit_linear_probe",
    "load_templates",
    "mean_class_accuracy",
    "per_class_accuracy",
    "regression_metrics",
    "retrieval_metrics",
    "retrieval_ranks",
    "retrieval_similarity",
    "template_sets",
    "topk_accuracy",
    "validate_templates",
    "view_layout",
    "write_report",
    "zero_shot_scores",
]


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
