"""Multi-view testing: where the k temporal clips × c spatial crops of a test video lie, and how
their scores are averaged.

Video models are tested on several views of each video and the per-view scores averaged
(X-CLIP 4 clips × 3 crops, SlowFast 10 × 3, DiST 3 × 1); single-view numbers are lower, so the
protocol is stated with every result. These helpers are pure tensor functions that fix the
conventions once:

- **View order** is clip-major: view ``v = clip * num_crops + crop``, and the ``V = k * c`` views of
  one item are contiguous rows (``[N * V, C]``) or a middle axis (``[N, V, C]``), as
  :class:`chronoclip.data.datasets.ManifestDataset` produces them.
- **Temporal clips** of fixed length are centred in ``k`` equal segments of the range of valid
  start frames (one clip: the centred clip).
- **Spatial crops** (:func:`chronoclip.data.transforms.crop_boxes`, shared with the data sets): one
  crop is the centre crop; three crops lie at the start, centre and end of
  the longer side (left / centre / right for landscape frames, top / centre / bottom for portrait).
"""

from __future__ import annotations

from typing import Literal

import torch

ViewMode = Literal["mean", "softmax-mean"]


def view_layout(num_clips: int, num_crops: int) -> torch.Tensor:
    """``int64 [V, 2]`` ``(clip, crop)`` index of each of the ``V = num_clips * num_crops`` views.

    Examples:
        >>> view_layout(2, 3).tolist()
        [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    """
    if num_clips < 1 or num_crops < 1:
        raise ValueError(f"num_clips and num_crops must be positive; got {num_clips} and {num_crops}")
    clips = torch.arange(num_clips).repeat_interleave(num_crops)
    crops = torch.arange(num_crops).repeat(num_clips)
    return torch.stack([clips, crops], dim=1)


def clip_starts(num_frames: int, clip_length: int, num_clips: int) -> torch.Tensor:
    """``int64 [num_clips]`` first frame of each test clip of ``clip_length`` frames.

    The valid start range ``[0, num_frames - clip_length]`` is cut into ``num_clips`` equal
    segments and each clip starts at its segment's centre, so clips spread evenly over the video
    and a single clip is the centred one. Videos shorter than a clip give start 0.

    Examples:
        >>> clip_starts(100, 16, 1).tolist()
        [42]
        >>> clip_starts(100, 16, 3).tolist()
        [14, 42, 70]
    """
    if num_frames < 1 or clip_length < 1 or num_clips < 1:
        raise ValueError(f"num_frames, clip_length and num_clips must be positive; got "
                         f"{num_frames}, {clip_length}, {num_clips}")
    span = max(num_frames - clip_length, 0) + 1
    segment = span / num_clips
    return ((torch.arange(num_clips, dtype=torch.float64) + 0.5) * segment).floor().long()


def clip_frame_indices(num_frames: int, clip_length: int, num_clips: int, stride: int = 1) -> torch.Tensor:
    """``int64 [num_clips, clip_length]`` frame indices of each test clip (see :func:`clip_starts`).

    A clip spans ``(clip_length - 1) * stride + 1`` frames; indices past the end of a short video
    repeat its last frame.

    Examples:
        >>> clip_frame_indices(10, 3, 2, stride=2).tolist()
        [[1, 3, 5], [4, 6, 8]]
    """
    if stride < 1:
        raise ValueError(f"stride must be positive; got {stride}")
    span = (clip_length - 1) * stride + 1
    starts = clip_starts(num_frames, span, num_clips)
    offsets = torch.arange(clip_length) * stride
    return (starts[:, None] + offsets[None, :]).clamp(max=num_frames - 1)


def average_views(scores: torch.Tensor, num_views: int | None = None, mode: ViewMode = "mean"
                  ) -> torch.Tensor:
    """Average the per-view class scores of each item: ``[N * V, C]`` or ``[N, V, C]`` -> ``[N, C]``.

    Args:
        scores: per-view scores, views contiguous per item (clip-major, see the module notes).
        num_views: ``V``; required for ``[N * V, C]`` input, checked against ``[N, V, C]`` input.
        mode: ``"mean"`` averages the raw scores (logits or similarities); ``"softmax-mean"``
            averages per-view softmax probabilities (SlowFast / DiST), so no view dominates by
            having larger logits. The result is then probabilities.

    Examples:
        >>> logits = torch.randn(4 * 6, 10)        # 4 videos, 2 clips x 3 crops, 10 classes
        >>> average_views(logits, num_views=6, mode="softmax-mean").shape
        torch.Size([4, 10])
    """
    if scores.dim() == 2:
        if num_views is None or num_views < 1 or scores.shape[0] % num_views:
            raise ValueError(f"[N * V, C] scores of shape {tuple(scores.shape)} need num_views V dividing "
                             f"the rows; got num_views={num_views}")
        scores = scores.view(-1, num_views, scores.shape[1])
    elif scores.dim() != 3 or (num_views is not None and scores.shape[1] != num_views):
        raise ValueError(f"scores must be [N * V, C] or [N, V, C]; got {tuple(scores.shape)} "
                         f"with num_views={num_views}")
    if mode == "softmax-mean":
        scores = scores.float().softmax(dim=-1)
    elif mode != "mean":
        raise ValueError(f"mode must be 'mean' or 'softmax-mean'; got {mode!r}")
    return scores.mean(dim=1)


def average_by_item(scores: torch.Tensor, item_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average rows of ``scores [R, C]`` that share an id in ``item_ids [R]`` -> ``(ids [I], [I, C])``.

    For a variable number of views per item (e.g. several crops or clips of a test sample stored
    as separate feature rows). Items come out in ascending id order.

    Examples:
        >>> ids, mean = average_by_item(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
        ...                             torch.tensor([7, 3, 7]))
        >>> ids.tolist(), mean.tolist()
        ([3, 7], [[0.0, 1.0], [1.0, 0.5]])
    """
    if scores.dim() != 2 or item_ids.shape != (scores.shape[0],):
        raise ValueError(f"scores must be [R, C] and item_ids [R]; got {tuple(scores.shape)} and "
                         f"{tuple(item_ids.shape)}")
    ids, inverse, counts = torch.unique(item_ids, return_inverse=True, return_counts=True)
    sums = scores.new_zeros(len(ids), scores.shape[1]).index_add_(0, inverse, scores)
    return ids, sums / counts[:, None].to(scores.dtype)
