"""Zero-shot classification: a classifier made of text embeddings of prompted class names.

Each class name is written into every prompt template (``"a video of a person {}."``), the
templates' embeddings are L2-normalised, averaged per class and renormalised (CLIP's prompt
ensemble, Radford et al. 2021, §3.1.4), and images or videos are scored by scaled cosine
similarity with the result.

Template sets are data, shipped under ``chronoclip/eval/templates/``:

- ``kinetics`` — CLIP's 28 Kinetics-700 templates (openai/CLIP ``data/prompts.md``),
- ``ucf101`` — CLIP's 48 UCF101 templates (same source),
- ``bare`` — the class name alone, ``"{}"`` (ViFi-CLIP found it best for fine-tuned video CLIP),
- ``photo`` — a small set of photo templates for image data sets,
- ``world`` — the synthetic universe's caption forms with each size word (size is a nuisance attribute
  there, so the ensemble averages it out); ``tiny-world``'s default.

The evaluation works on any text encoder given as a callable ``list[str] -> [N, D]`` (e.g. a
backbone's ``encode_text``), so it never depends on a concrete backbone.

- [0] CLIP, 2021, https://arxiv.org/abs/2103.00020
- [1] ViFi-CLIP, 2023, https://arxiv.org/abs/2212.03640
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from chronoclip.errors import ConfigError
from chronoclip.eval.metrics import classification_metrics
from chronoclip.eval.views import ViewMode, average_views

log = logging.getLogger(__name__)

TextEncoder = Callable[[list[str]], torch.Tensor]
"""Encodes a batch of strings to ``[N, D]`` embeddings (normalised or not)."""


def backbone_text_encoder(backbone: Any) -> TextEncoder:
    """A :data:`TextEncoder` over a backbone's text tower: normalised embeddings on the CPU, no graph."""
    @torch.no_grad()
    def encode(texts: list[str]) -> torch.Tensor:
        return backbone.encode_text(texts, normalize=True).cpu()
    return encode

CLIP_LOGIT_SCALE = 100.0
"""The multiplier trained CLIP models apply to cosine similarities (their learned temperature's cap)."""


def template_sets() -> list[str]:
    """Names of the template sets shipped with chronoclip (usable with :func:`load_templates`)."""
    folder = resources.files(__package__) / "templates"
    return sorted(entry.name.removesuffix(".json") for entry in folder.iterdir()
                  if entry.name.endswith(".json"))


def validate_templates(templates: Sequence[str], source: str = "templates") -> list[str]:
    """Check that ``templates`` is a non-empty list of strings each with exactly one ``{}``.

    Raises:
        ConfigError: naming ``source`` and the first offending entry.
    """
    if isinstance(templates, str) or not isinstance(templates, Sequence) or not templates:
        raise ConfigError(f"{source}: expected a non-empty list of template strings, got {templates!r}")
    for index, template in enumerate(templates):
        if not isinstance(template, str) or template.count("{}") != 1:
            raise ConfigError(f"{source}: entry {index} ({template!r}) must be a string with exactly one "
                              "'{}' where the class name goes")
        try:
            template.format("x")
        except (IndexError, KeyError, ValueError) as exc:
            raise ConfigError(f"{source}: entry {index} ({template!r}) is not a valid format string "
                              f"({exc}); write literal braces as '{{{{' and '}}}}'") from exc
    return list(templates)


def load_templates(name_or_path: str | Path) -> list[str]:
    """A template set by shipped name (see :func:`template_sets`) or from a JSON file path.

    The file must hold a JSON list of strings, each with exactly one ``{}`` for the class name.

    Raises:
        ConfigError: unknown name, unreadable or invalid file.

    Examples:
        >>> load_templates("bare")
        ['{}']
        >>> len(load_templates("ucf101"))
        48
    """
    name = str(name_or_path)
    path = Path(name)
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise ConfigError(f"template file {path} does not exist")
        text, source = path.read_text(encoding="utf-8"), str(path)
    elif name in template_sets():
        text = (resources.files(__package__) / "templates" / f"{name}.json").read_text(encoding="utf-8")
        source = f"template set '{name}'"
    else:
        raise ConfigError(f"unknown template set {name!r}; shipped sets are {template_sets()}, or pass "
                          "the path of a JSON file holding a list of strings with one '{}' each")
    try:
        templates = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: not valid JSON ({exc})") from exc
    return validate_templates(templates, source)


@torch.no_grad()
def build_text_classifier(class_names: Sequence[str], templates: Sequence[str], encode_text: TextEncoder,
                          batch_size: int = 256) -> torch.Tensor:
    """Zero-shot classifier weights ``[C, D]``: the renormalised mean of each class's prompt embeddings.

    Args:
        class_names: ``C`` names written into the templates.
        templates: ``T`` format strings with one ``{}`` each.
        encode_text: ``list[str] -> [n, D]``; called on at most ``batch_size`` prompts at a time.
        batch_size: prompts per ``encode_text`` call.

    Returns:
        ``float32 [C, D]`` unit-norm rows: ``normalize(mean_t normalize(encode(template_t(class))))``.

    Examples:
        >>> def encode_text(texts):  # a stand-in for a backbone's text tower
        ...     return torch.stack([torch.tensor([t.count("cat"), t.count("dog"), 1.0]) for t in texts])
        >>> build_text_classifier(["cat", "dog"], ["a photo of a {}.", "{}"], encode_text).shape
        torch.Size([2, 3])
    """
    if not class_names:
        raise ValueError("no class names")
    templates = validate_templates(templates)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive; got {batch_size}")
    prompts = [template.format(name) for name in class_names for template in templates]
    chunks = [encode_text(prompts[i:i + batch_size]) for i in range(0, len(prompts), batch_size)]
    embeddings = torch.cat([chunk.float() for chunk in chunks])
    if embeddings.dim() != 2 or embeddings.shape[0] != len(prompts):
        raise ValueError(f"encode_text must return [n, D] for n prompts; got {tuple(embeddings.shape)} "
                         f"for {len(prompts)} prompts")
    per_class = F.normalize(embeddings, dim=-1).view(len(class_names), len(templates), -1).mean(dim=1)
    return F.normalize(per_class, dim=-1)


def zero_shot_scores(features: torch.Tensor, classifier: torch.Tensor,
                     logit_scale: float = CLIP_LOGIT_SCALE) -> torch.Tensor:
    """Scaled cosine similarity of ``features [..., D]`` with ``classifier [C, D]`` -> ``[..., C]``.

    Args:
        features: image / video embeddings (normalised here).
        classifier: from :func:`build_text_classifier`.
        logit_scale: the multiplier itself, not its log (for a Hugging Face CLIP, pass
            ``model.logit_scale.exp().item()``). It does not change the ranking, only softmax
            view averaging.
    """
    if features.shape[-1] != classifier.shape[-1]:
        raise ValueError(f"features have dimension {features.shape[-1]} but the classifier "
                         f"{classifier.shape[-1]}")
    return logit_scale * F.normalize(features.float(), dim=-1) @ classifier.float().T


def evaluate_zero_shot(features: torch.Tensor, targets: torch.Tensor | np.ndarray, class_names: Sequence[str],
                       templates: str | Path | Sequence[str], encode_text: TextEncoder, *, clips: int = 1,
                       crops: int = 1, view_mode: ViewMode = "mean", logit_scale: float = CLIP_LOGIT_SCALE,
                       batch_size: int = 256, protocol: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Zero-shot ``top1``, ``top5``, ``mean_class_acc`` (percent), with the protocol stated.

    Args:
        features: embeddings ``[N, D]`` (one view per item), ``[N * V, D]`` or ``[N, V, D]`` with
            ``V = clips * crops`` views per item, clip-major (see :mod:`chronoclip.eval.views`).
        targets: ``[N]`` class indices into ``class_names``.
        class_names: ``C`` names, written into the templates.
        templates: a shipped set name, a JSON file path, or the template strings themselves.
        encode_text: ``list[str] -> [n, D]``, e.g. a backbone's ``encode_text``.
        clips / crops: the multi-view protocol the features were extracted with.
        view_mode: how view scores are averaged (:func:`~chronoclip.eval.views.average_views`).
        logit_scale: see :func:`zero_shot_scores`.
        batch_size: prompts per ``encode_text`` call.
        protocol: extra entries for the result's ``protocol`` (e.g. ``split``, ``dataset``).

    Returns:
        ``{"top1", "top5", "mean_class_acc", "protocol": {"task": "zero_shot", "templates",
        "num_templates", "num_classes", "samples", "clips", "crops", "views", "view_averaging", ...}}``

    Examples:
        >>> def encode_text(texts):
        ...     return torch.stack([torch.tensor([t.count("cat"), t.count("dog"), 1.0]) for t in texts])
        >>> features = torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]])
        >>> result = evaluate_zero_shot(features, torch.tensor([0, 1]), ["cat", "dog"], "photo", encode_text)
        >>> result["top1"], result["protocol"]["num_templates"]
        (100.0, 7)
    """
    if isinstance(templates, (str, Path)):
        template_list, template_name = load_templates(templates), str(templates)
    else:
        template_list, template_name = validate_templates(templates), "custom"
    targets = torch.as_tensor(targets).long()
    views = clips * crops
    per_item = features.shape[1] if features.dim() == 3 else features.shape[0] / max(len(targets), 1)
    if features.dim() not in (2, 3) or per_item != views:
        raise ValueError(f"features {tuple(features.shape)} do not hold {clips}x{crops} views of "
                         f"{len(targets)} items; expected [N, D] (one view), [N * V, D] or [N, V, D]")
    if len(targets) and (targets.min() < 0 or targets.max() >= len(class_names)):
        raise ValueError(f"targets must lie in [0, {len(class_names)}); got [{int(targets.min())}, "
                         f"{int(targets.max())}]")
    classifier = build_text_classifier(class_names, template_list, encode_text, batch_size)
    scores = zero_shot_scores(features, classifier, logit_scale)
    if scores.dim() == 3 or views > 1:
        scores = average_views(scores, views, view_mode)
    result: dict[str, Any] = classification_metrics(scores, targets)
    result["protocol"] = {
        "task": "zero_shot", "templates": template_name, "num_templates": len(template_list),
        "num_classes": len(class_names), "samples": len(targets), "clips": clips, "crops": crops,
        "views": f"{clips}x{crops}", "view_averaging": view_mode, "logit_scale": logit_scale,
        **(protocol or {}),
    }
    log.info("zero-shot (%s, %d templates, %dx%d views): top1 %.2f", template_name, len(template_list),
             clips, crops, result["top1"])
    return result
