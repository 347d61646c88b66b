"""Sparse frame sampling speed: chronoclip's keyframe-seeking reader vs decoding everything vs decord.

Writes (once) two 10 s 320x240 25 fps H.264 clips of textured, moving content, one with a keyframe every
25 frames and one every 250, then times 8-frame uniform sampling of each file with:

- ``chronoclip``: :func:`chronoclip.io.video.read_video` with its probe cache cleared before every call
  (cold: every call opens, probes, seeks and decodes, as for a file seen for the first time);
- ``chronoclip (probe cached)``: the same with the per-file probe cache warm (later epochs);
- ``PyAV decode-all``: decode every frame with PyAV and keep the 8 wanted ones;
- ``decord``: ``VideoReader(path).get_batch(indices)`` with its default threads, if decord is importable
  (it is *not* a chronoclip dependency).

All methods run round-robin in each repeat (so machine load drifts hit them equally); the table shows the
median over ``--repeats`` after a warm-up, and ratios against decord and decode-all measured in the same run.

Usage::

    python benchmarks/decode.py [--repeats 20] [--workdir DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from chronoclip.io.video import clear_probe_cache, probe_video, read_video, sample_frame_indices
from chronoclip.io.writers import write_video

FPS, SECONDS, WIDTH, HEIGHT, CLIP_FRAMES = 25, 10, 320, 240, 8
GOPS = (25, 250)
WARMUP = 2


def make_frames(seed: int = 0) -> np.ndarray:
    """``uint8 [250, 240, 320, 3]``: a scrolling random texture, a moving disc and light per-frame noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (HEIGHT // 4 + 64, WIDTH // 4 + 64, 3)).astype(np.float32)
    texture = np.repeat(np.repeat(coarse, 4, axis=0), 4, axis=1)
    texture = (texture + np.roll(texture, 2, axis=0) + np.roll(texture, 2, axis=1)) / 3.0
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    frames = np.empty((FPS * SECONDS, HEIGHT, WIDTH, 3), dtype=np.uint8)
    for t in range(len(frames)):
        dy, dx = (t % 200), (2 * t) % 200
        frame = texture[dy:dy + HEIGHT, dx:dx + WIDTH].copy()
        cy, cx = HEIGHT / 2 + 80 * np.sin(t / 15), WIDTH / 2 + 120 * np.cos(t / 20)
        frame[(yy - cy) ** 2 + (xx - cx) ** 2 < 30**2] = (255, 64, 32)
        frame += rng.normal(0.0, 4.0, frame.shape).astype(np.float32)
        frames[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return frames


def ensure_clips(workdir: Path) -> dict[int, Path]:
    """Write the GOP-25 and GOP-250 clips into ``workdir`` unless they are already there."""
    paths = {gop: workdir / f"decode_bench_gop{gop}.mp4" for gop in GOPS}
    missing = [gop for gop, path in paths.items() if not path.exists()]
    if missing:
        frames = make_frames()
        for gop in missing:
            write_video(paths[gop], frames, FPS, gop=gop)
    return paths


def ours_cold(path: Path, indices: np.ndarray) -> np.ndarray:
    clear_probe_cache()
    return read_video(path, CLIP_FRAMES, "uniform").frames


def ours_cached(path: Path, indices: np.ndarray) -> np.ndarray:
    return read_video(path, CLIP_FRAMES, "uniform").frames


def decode_all(path: Path, indices: np.ndarray) -> np.ndarray:
    wanted = set(indices.tolist())
    picked: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                picked[i] = frame.to_ndarray(format="rgb24")
    return np.stack([picked[i] for i in indices.tolist()])


def decord_reader() -> Callable[[Path, np.ndarray], np.ndarray] | None:
    """decord's ``get_batch`` as a reader, or None when decord is not installed."""
    try:
        import decord
    except ImportError:
        return None

    def read(path: Path, indices: np.ndarray) -> np.ndarray:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
        return reader.get_batch(indices.tolist()).asnumpy()

    return read


def time_methods(methods: dict[str, Callable[[Path, np.ndarray], np.ndarray]], path: Path,
                 indices: np.ndarray, repeats: int) -> dict[str, float]:
    """Median seconds per clip of each method, timed round-robin after ``WARMUP`` untimed rounds."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    for round_ in range(WARMUP + repeats):
        for name, method in methods.items():
            start = time.perf_counter()
            method(path, indices)
            elapsed = time.perf_counter() - start
            if round_ >= WARMUP:
                times[name].append(elapsed)
    return {name: statistics.median(values) for name, values in times.items()}


def check_agreement(methods: dict[str, Callable[[Path, np.ndarray], np.ndarray]], path: Path,
                    indices: np.ndarray) -> dict[str, float]:
    """Mean absolute pixel difference of each method's frames from decode-all's (same frames expected)."""
    reference = decode_all(path, indices).astype(np.float32)
    return {name: float(np.abs(method(path, indices).astype(np.float32) - reference).mean())
            for name, method in methods.items()}


def run(workdir: Path, repeats: int) -> list[dict[str, object]]:
    """Benchmark every clip; one result row per (file, method)."""
    methods: dict[str, Callable[[Path, np.ndarray], np.ndarray]] = {
        "chronoclip": ours_cold, "chronoclip (probe cached)": ours_cached, "PyAV decode-all": decode_all}
    decord_read = decord_reader()
    if decord_read is not None:
        methods["decord"] = decord_read
    rows: list[dict[str, object]] = []
    for gop, path in ensure_clips(workdir).items():
        info = probe_video(path)
        indices = sample_frame_indices(info.num_frames, CLIP_FRAMES, "uniform")
        agreement = check_agreement(methods, path, indices)
        medians = time_methods(methods, path, indices, repeats)
        for name, seconds in medians.items():
            rows.append({
                "file": f"{WIDTH}x{HEIGHT} {FPS} fps {SECONDS} s h264, GOP {gop}", "gop": gop,
                "method": name, "ms_per_clip": 1000 * seconds, "frames_per_s": CLIP_FRAMES / seconds,
                "ours_over_this": (CLIP_FRAMES / medians["chronoclip"]) / (CLIP_FRAMES / seconds),
                "mean_abs_pixel_diff_vs_decode_all": agreement[name],
            })
    return rows


def versions() -> str:
    """Python, PyAV and (if importable) decord versions, and the CPU count, for the table's header."""
    parts = [f"python {platform.python_version()}", f"av {av.__version__}"]
    try:
        import decord
    except ImportError:
        pass
    else:
        parts.append(f"decord {decord.__version__}")
    return ", ".join([*parts, f"{platform.machine()} × {os.cpu_count()} CPUs"])


def format_table(rows: list[dict[str, object]], repeats: int) -> str:
    """A markdown table; the fifth column is chronoclip's frames/s divided by the row's."""
    lines = [
        f"8-frame uniform sampling, median of {repeats} repeats after {WARMUP} warm-up rounds "
        f"({versions()})",
        "",
        "| file | method | ms/clip | frames/s | chronoclip ÷ this (fps) | pixel diff vs decode-all |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['file']} | {row['method']} | {row['ms_per_clip']:.1f} | "
                     f"{row['frames_per_s']:.0f} | {row['ours_over_this']:.2f}× | "
                     f"{row['mean_abs_pixel_diff_vs_decode_all']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds per file (default 20)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="folder for the generated clips (reused if present); default: a temp folder")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        rows = run(workdir, args.repeats)
    print(format_table(rows, args.repeats))
    if args.json is not None:
        args.json.write_text(json.dumps({"repeats": args.repeats, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
