"""Text↔video (or text↔image) retrieval from embeddings, in both directions.

Texts and videos are compared by cosine similarity. Each text describes exactly one video
(``text_to_video[t]``); a video may have several captions (MSR-VTT full has 20, the 1k-A test one).

- **text→video** (``t2v_*``): each text queries all videos; its one positive is its video.
- **video→text** (``v2t_*``): each video queries all texts; its positives are its captions and it
  counts as found at the rank of its *best-ranked* caption.

``R@k`` is the percentage of queries whose best-ranked positive is within the top ``k`` (the
"at least one match" definition CLIP_benchmark uses); ``MdR`` / ``MnR`` are the median / mean of
that rank (1 = best). Ties are ranked optimistically (:data:`~chronoclip.eval.metrics.RETRIEVAL_TIE_POLICY`).
The visual side is called "video" in the keys for images too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from chronoclip.data.datasets import collate, to_device
from chronoclip.eval.metrics import RETRIEVAL_TIE_POLICY, retrieval_metrics

log = logging.getLogger(__name__)

RECALL_DEFINITION = "R@k = a query counts if its best-ranked positive is within k"


def retrieval_similarity(text_embeddings: torch.Tensor, video_embeddings: torch.Tensor) -> torch.Tensor:
    """Cosine similarity ``[Nt, Nv]`` of ``text_embeddings [Nt, D]`` and ``video_embeddings [Nv, D]``."""
    if text_embeddings.dim() != 2 or video_embeddings.dim() != 2 or \
            text_embeddings.shape[1] != video_embeddings.shape[1]:
        raise ValueError(f"embeddings must be [Nt, D] and [Nv, D]; got {tuple(text_embeddings.shape)} and "
                         f"{tuple(video_embeddings.shape)}")
    return F.normalize(text_embeddings.float(), dim=-1) @ F.normalize(video_embeddings.float(), dim=-1).T


def best_positive_texts(similarity: torch.Tensor, text_to_video: torch.Tensor) -> torch.Tensor:
    """``int64 [Nv]``: for each video, the index of its caption that scores highest with it.

    Args:
        similarity: ``[Nt, Nv]`` text-by-video scores.
        text_to_video: ``[Nt]`` video of each text; every video must have at least one text.
    """
    num_videos = similarity.shape[1]
    captions = torch.bincount(text_to_video, minlength=num_videos)
    if (captions == 0).any():
        missing = torch.nonzero(captions == 0).flatten()[:10].tolist()
        raise ValueError(f"videos {missing} have no caption; every video needs at least one text")
    own = text_to_video[:, None] == torch.arange(num_videos, device=text_to_video.device)[None, :]
    return similarity.masked_fill(~own, float("-inf")).argmax(dim=0)


def evaluate_retrieval(text_embeddings: torch.Tensor, video_embeddings: torch.Tensor,
                       text_to_video: torch.Tensor | np.ndarray | None = None,
                       ks: tuple[int, ...] = (1, 5, 10),
                       protocol: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Text→video and video→text ``R@k``, ``MdR``, ``MnR``, with the protocol stated.

    Args:
        text_embeddings: ``[Nt, D]``.
        video_embeddings: ``[Nv, D]``.
        text_to_video: ``[Nt]`` index of the video each text describes; default one caption per
            video in the same order (``Nt == Nv``, text ``i`` describes video ``i``).
        ks: the ``k`` of ``R@k``.
        protocol: extra entries for the result's ``protocol`` (e.g. ``split: "1k-A"``).

    Returns:
        ``{"t2v_R@1", ..., "t2v_MdR", "t2v_MnR", "v2t_R@1", ..., "v2t_MdR", "v2t_MnR", "protocol"}``

    Examples:
        >>> videos = torch.eye(3)
        >>> texts = torch.tensor([[1.0, 0.1, 0.0], [0.0, 0.0, 1.0], [0.9, 0.0, 0.1], [0.0, 1.0, 0.0]])
        >>> result = evaluate_retrieval(texts, videos, torch.tensor([0, 2, 0, 1]), ks=(1,))
        >>> result["t2v_R@1"], result["v2t_R@1"]
        (100.0, 100.0)
    """
    similarity = retrieval_similarity(text_embeddings, video_embeddings)
    num_texts, num_videos = similarity.shape
    if text_to_video is None:
        if num_texts != num_videos:
            raise ValueError(f"{num_texts} texts and {num_videos} videos: pass text_to_video when there is "
                             "not exactly one caption per video")
        text_to_video = torch.arange(num_texts)
    text_to_video = torch.as_tensor(text_to_video).long()
    if text_to_video.shape != (num_texts,) or text_to_video.min() < 0 or text_to_video.max() >= num_videos:
        raise ValueError(f"text_to_video must be [{num_texts}] video indices in [0, {num_videos}); got shape "
                         f"{tuple(text_to_video.shape)}")
    captions = torch.bincount(text_to_video, minlength=num_videos)
    best_texts = best_positive_texts(similarity, text_to_video)
    result: dict[str, Any] = {}
    for direction, scores, positives in (("t2v", similarity, text_to_video),
                                         ("v2t", similarity.T, best_texts)):
        result.update({f"{direction}_{key}": value
                       for key, value in retrieval_metrics(scores, positives, ks).items()})
    result["protocol"] = {
        "task": "retrieval", "directions": ["t2v", "v2t"], "texts": num_texts, "videos": num_videos,
        "captions_per_video": {"min": int(captions.min()), "max": int(captions.max()),
                               "mean": float(captions.float().mean())},
        "similarity": "cosine", "ks": list(ks), "recall": RECALL_DEFINITION,
        "tie_policy": RETRIEVAL_TIE_POLICY,
        **(protocol or {}),
    }
    log.info("retrieval (%d texts, %d videos): t2v MdR %.1f, v2t MdR %.1f", num_texts, num_videos,
             result["t2v_MdR"], result["v2t_MdR"])
    return result


@torch.no_grad()
def evaluate_method_retrieval(method: Any, dataset: Dataset[Any], protocol: Mapping[str, Any], *,
                              batch_size: int = 16, device: torch.device | str = "cpu", num_workers: int = 0,
                              progress: bool = True) -> dict[str, Any]:
    """Retrieval between a data set's media and their own captions, through a method's ``forward``.

    Args:
        method: returns ``visual_embeddings`` and ``text_embeddings`` ``[B, D]`` for a batch of samples
            with ``pixels`` and ``text`` (one caption per row; evaluation views are averaged).
        dataset: evaluation samples (``pixels [V, ...]``).
        protocol: extra entries for the result's ``protocol`` (split, manifest).
    """
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate, num_workers=num_workers)
    method.eval()
    visual, text = [], []
    for batch in tqdm(loader, desc="retrieval", unit="batch", disable=not progress):
        batch = to_device(batch, torch.device(device))
        size, views = batch["pixels"].shape[:2]
        outputs = method({**batch, "pixels": batch["pixels"].flatten(0, 1),
                          "text": [t for t in batch["text"] for _ in range(views)]})
        visual.append(F.normalize(outputs["visual_embeddings"].float().view(size, views, -1).mean(1), dim=-1).cpu())
        text.append(outputs["text_embeddings"].float().view(size, views, -1)[:, 0].cpu())
    return evaluate_retrieval(torch.cat(text), torch.cat(visual), protocol=protocol)
