"""``chronoclip predict``: a trained run's prediction for one media file and its text.

The file becomes a one-row manifest, the method builds its evaluation sample from it (as for a test
split, so the same decoding and resizing apply), and :meth:`~chronoclip.methods.base.Method.predict`
turns the first view into what is printed: e.g. a label with its probabilities, or (``cliptime``) the
stage with its probabilities and the time in the training data's unit.

Example:
    >>> predict_media("runs/cliptime", "culture.png", text="incubated at 24 °C.")  # doctest: +SKIP
    {'stage': 'hyphae', 'stage_probabilities': {...}, 'time': 21.3, 'time_unit': 'hours', ...}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from chronoclip.data.datasets import collate
from chronoclip.data.manifest import Manifest
from chronoclip.engine.runs import Run, load_run
from chronoclip.errors import ChronoclipError


def predict_media(run: Run | str | Path, media: str | Path, text: str = "") -> dict[str, Any]:
    """The method's prediction for one image (or video, for a video method) and its text.

    Args:
        run: a run folder or a loaded :class:`Run`.
        media: the file to predict.
        text: the sample's text (a note or caption; ignored by methods that read none).

    Raises:
        ChronoclipError: the file does not exist, or cannot be decoded (the message names it).
    """
    loaded = run if isinstance(run, Run) else load_run(run)
    path = Path(media).expanduser().resolve()
    if not path.is_file():
        raise ChronoclipError(f"{media}: no such file; pass an image (or, for a video method, a video) file")
    rows = Manifest([{"path": path, "text": text}], root=path.parent)
    sample = loaded.method.dataset(rows, train=False)[0]
    batch = collate([sample])
    batch["pixels"] = batch["pixels"][:, 0]  # the first (centre) view
    with torch.no_grad():
        return loaded.method.eval().predict(batch)[0]
