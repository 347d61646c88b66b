"""Zero-shot classification of a manifest split by a backbone (a preset, a CLIP folder) or a run's backbone.

Each row's media is embedded by the image tower (videos: the mean of ``frames`` uniformly sampled
frames' embeddings), class names are the distinct values of a label column written into prompt
templates, and the text tower's embeddings of those prompts classify the media
(:func:`chronoclip.eval.zero_shot.evaluate_zero_shot`). Rows with no value in the label column are left
out and counted.

Example:
    >>> from chronoclip.engine.zero_shot import zero_shot                    # doctest: +SKIP
    >>> zero_shot("tiny-world", "data/captions/manifest.csv", out="runs/zs")["top1"]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from chronoclip.data.check import IMAGE_SUFFIXES
from chronoclip.data.datasets import ManifestDataset, SampleSpec, collate
from chronoclip.data.manifest import Manifest, load_manifest
from chronoclip.errors import ConfigError
from chronoclip.eval.zero_shot import backbone_text_encoder, evaluate_zero_shot
from chronoclip.io.writers import write_json
from chronoclip.methods.baselines import frame_embeddings

log = logging.getLogger(__name__)


def resolve_backbone(spec_or_run: str | Path) -> Any:
    """The backbone of a run folder (its trained weights), or the one a preset / folder / hub id names."""
    from chronoclip.backbones import load_backbone
    from chronoclip.engine.runs import is_run_folder, load_run

    if is_run_folder(spec_or_run):
        return load_run(spec_or_run).method.backbone
    return load_backbone(str(spec_or_run))


def relabel(manifest: Manifest, column: str) -> tuple[Manifest, list[str], int]:
    """The rows that have a value in ``column``, with it as their ``label``; the sorted class names; and the
    number of rows left out for having none.

    Raises:
        ConfigError: no row has the column (the message lists the columns there are).
    """
    if column not in manifest.columns:
        raise ConfigError(f"{manifest.name} has no '{column}' column to take class names from; its columns "
                          f"are {', '.join(manifest.columns)}. Pass --label-column with one of them.")
    keep = [record.get(column) is not None for record in manifest]
    subset = manifest.select(keep)
    records = [{**record, "label": str(record[column])} for record in subset]
    relabelled = Manifest(records, subset.root, subset.source, subset.rows)
    return relabelled, relabelled.labels, len(manifest) - len(subset)


def media_modality(manifest: Manifest) -> str:
    """``image`` when the first row is an image file, else ``video``."""
    return "image" if Path(manifest[0]["path"]).suffix.lower() in IMAGE_SUFFIXES else "video"


@torch.no_grad()
def embed_media(backbone: Any, manifest: Manifest, class_names: list[str], frames: int, batch_size: int,
                device: torch.device | str, progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised embeddings ``[N, D]`` of a manifest's media (frame means for videos) and ``labels [N]``."""
    spec = SampleSpec(modality=media_modality(manifest), frames=frames, image_size=backbone.image_size,
                      mean=tuple(backbone.mean), std=tuple(backbone.std), eval_sampling="uniform")
    dataset = ManifestDataset(manifest, spec, class_names, train=False)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    backbone.to(device).eval()
    extract = frame_embeddings(backbone).extract
    features, labels = [], []
    for batch in tqdm(loader, desc="embed", unit="batch", disable=not progress):
        frame_features = extract(batch["pixels"][:, 0].to(device))  # one view: [B, T, D]
        features.append(F.normalize(frame_features.mean(1), dim=-1).cpu())
        labels.append(batch["label"])
    return torch.cat(features), torch.cat(labels)


def zero_shot(spec_or_run: str | Path, data: str | Path | Manifest, split: str = "test",
              label_column: str = "label", templates: str | None = None, frames: int = 8,
              out: str | Path | None = None, batch_size: int = 64, device: torch.device | str = "cpu",
              progress: bool = True) -> dict[str, Any]:
    """Zero-shot ``top1`` / ``top5`` / ``mean_class_acc`` (percent) of a backbone on one split.

    Args:
        spec_or_run: a backbone preset (``tiny-world``), CLIP folder, hub id, or a run folder.
        data: the manifest.
        split: the split evaluated.
        label_column: the column whose distinct values (over the whole manifest, so every split shares
            one class list) are the classes.
        templates: a template set name or JSON file; default the backbone's own (``world`` for
            ``tiny-world``), else ``photo`` for images and ``kinetics`` for videos.
        frames: frames per video.
        out: if given, ``out/metrics.json`` is written.

    Raises:
        ConfigError: missing column, or no labelled row in the split.
    """
    manifest = data if isinstance(data, Manifest) else load_manifest(data)
    _, class_names, _ = relabel(manifest, label_column)
    rows, _, unlabelled = relabel(manifest.split(split), label_column)
    if not len(rows):
        raise ConfigError(f"{manifest.name}: no row of split '{split}' has a '{label_column}' value")
    if len(class_names) < 2:
        raise ConfigError(f"{manifest.name}: column '{label_column}' has {len(class_names)} distinct value(s); "
                          "zero-shot classification needs at least 2 classes")
    backbone = resolve_backbone(spec_or_run)
    modality = media_modality(rows)
    templates = templates or backbone.templates or ("photo" if modality == "image" else "kinetics")
    features, targets = embed_media(backbone, rows, class_names, frames, batch_size, device, progress)
    protocol = {"split": split, "manifest": manifest.name, "label_column": label_column,
                "backbone": str(spec_or_run), "modality": modality, "unlabelled_rows_skipped": unlabelled,
                **({"frames": frames, "frame_pooling": "mean"} if modality == "video" else {})}
    result = evaluate_zero_shot(features, targets, class_names, templates, backbone_text_encoder(backbone),
                                logit_scale=float(backbone.logit_scale.detach()), protocol=protocol)
    if out is not None:
        write_json(Path(out) / "metrics.json", result)
    return result

