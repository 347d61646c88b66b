"""The ``chronoclip`` command: a thin layer over the Python API.

Every command parses its arguments, calls one API function and prints its result. Bad input raises a
:class:`~chronoclip.errors.ChronoclipError`, shown as one clear message (exit code 2) without a
traceback; set ``CHRONOCLIP_DEBUG=1`` to see the traceback. Heavy modules are imported inside the
commands so that ``chronoclip --help`` is instant.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from chronoclip import __version__
from chronoclip.config import DEFAULT_BACKBONE, read_yaml
from chronoclip.errors import ChronoclipError, ConfigError

app = typer.Typer(name="chronoclip", no_args_is_help=True, add_completion=False,
                  help="Teach CLIP-style models about time and other modalities.")
data_app = typer.Typer(no_args_is_help=True, help="Import data sets into manifests and check them.")
backbone_app = typer.Typer(no_args_is_help=True, help="Inspect backbones (presets, local folders, hub ids).")
app.add_typer(data_app, name="data")
app.add_typer(backbone_app, name="backbone")

log = logging.getLogger("chronoclip")


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["n=8", "size=64", "name=x"]`` -> ``{"n": 8, "size": 64, "name": "x"}`` (YAML scalars).

    Raises:
        ConfigError: an item without ``=``.
    """
    result: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"'{item}' is not KEY=VALUE (e.g. n=8)")
        result[key.strip()] = yaml.safe_load(value) if value else ""
    return result


def _version(value: bool) -> None:
    if value:
        typer.echo(f"chronoclip {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Output folder (worlds, runs, report.md).")] = Path("runs/demo"),
    backbone: Annotated[str, typer.Option(help="Backbone for the runs.")] = DEFAULT_BACKBONE,
    seed: Annotated[int, typer.Option(help="Seed of the worlds and runs.")] = 0,
) -> None:
    """The main job on the embedded default: every synthetic world, a baseline run, a report."""
    from chronoclip.demo import run_demo

    result = run_demo(out, backbone=backbone, seed=seed)
    typer.echo(f"report: {result.report}")
    typer.echo(json.dumps(result.runs, indent=2))


@app.command()
def world(
    name: Annotated[str, typer.Argument(help="World: captions, growth, motion, captioned-motion, domains, "
                                             "audiovisual.")],
    out: Annotated[Path, typer.Argument(help="Output folder (media files + manifest.csv + world.json).")],
    seed: Annotated[int, typer.Option(help="Everything written is a function of the parameters and seed.")] = 0,
    n: Annotated[int | None, typer.Option(help="How many samples (the world's count parameter).")] = None,
    params: Annotated[list[str] | None, typer.Argument(help="World parameters as KEY=VALUE.")] = None,
) -> None:
    """Write a synthetic world: real media files and a manifest."""
    from chronoclip.data.worlds import make_world

    overrides = parse_overrides(params)
    if n is not None:
        overrides["n"] = n
    manifest = make_world(name, out, seed=seed, **overrides)
    typer.echo(f"wrote {manifest}")


@data_app.command("import")
def data_import(
    fmt: Annotated[str, typer.Argument(metavar="FORMAT", help="ucf101, hmdb51, kinetics, esc50, domainnet, "
                                                              "timelapse.")],
    root: Annotated[Path, typer.Argument(help="The data set's root folder, in its official layout.")],
    out: Annotated[Path, typer.Option(help="Folder for manifest.csv.")],
    options: Annotated[list[str] | None, typer.Argument(help="Importer options as KEY=VALUE "
                                                             "(e.g. split=2 allow_missing=true).")] = None,
) -> None:
    """Read a data set in its official layout and write one manifest."""
    from chronoclip.data.formats import import_dataset

    manifest = import_dataset(fmt, root, out, **parse_overrides(options))
    typer.echo(f"wrote {manifest}")


@data_app.command("check")
def data_check(
    manifest: Annotated[Path, typer.Argument(help="A manifest (.csv, .jsonl or .parquet).")],
    decode: Annotated[bool, typer.Option(help="Also decode-test every media file.")] = False,
    workers: Annotated[int, typer.Option(min=1, help="Decoding threads.")] = 2,
    allow_bad: Annotated[int, typer.Option(min=0, help="Exit 0 with up to this many files that fail to decode "
                                                       "(a budget you accept); more fail the check.")] = 0,
) -> None:
    """Validate a manifest (every problem with its row) and optionally decode-test its files; exits 1 when
    a file fails to decode (beyond --allow-bad) and 2 when the manifest itself is invalid."""
    from chronoclip.data.check import check_manifest

    report = check_manifest(manifest, decode=decode, workers=workers)
    typer.echo(report.summary())
    if len(report.problems) > allow_bad:
        raise typer.Exit(1)


@backbone_app.command("list")
def backbone_list() -> None:
    """List the backbone presets."""
    from chronoclip.backbones import list_presets

    for name in list_presets():
        typer.echo(name)


@backbone_app.command("info")
def backbone_info(
    spec: Annotated[str, typer.Argument(help="A preset name, a local Hugging Face CLIP folder or a hub id.")],
) -> None:
    """Load a backbone and print its architecture, size and fingerprint as JSON."""
    from chronoclip.backbones import load_backbone

    typer.echo(json.dumps(load_backbone(spec).describe(), indent=2))


@backbone_app.command("export")
def backbone_export(
    run: Annotated[Path, typer.Argument(help="A run folder whose backbone was trained (`chronoclip train clip`).")],
    out: Annotated[Path, typer.Argument(help="Folder to write (replaced whole).")],
    description: Annotated[str, typer.Option(help="One line for `chronoclip backbone list`.")] = "",
    templates: Annotated[str | None, typer.Option(help="Default zero-shot template set of the weights.")] = None,
) -> None:
    """Write a run's backbone as a Hugging Face CLIP folder with chronoclip.json (provenance, sha256 of files).

    A folder written to chronoclip/backbones/weights/NAME becomes the preset NAME.
    """
    from chronoclip.backbones.export import export_backbone
    from chronoclip.engine.runs import load_run

    loaded = load_run(run)
    config = read_yaml(run / "config.yaml")
    world = Path(loaded.config.data).parent / "world.json"
    provenance = {"method": loaded.config.method, "config": {k: v for k, v in config.items() if k != "data"},
                  "world": json.loads(world.read_text()) if world.is_file() else None,
                  "metrics": {k: v for k, v in loaded.metrics.items() if isinstance(v, float)}}
    folder = export_backbone(loaded.method.backbone, out, description or f"backbone of the run {run.name}",
                             templates, provenance)
    typer.echo(f"wrote {folder}")


@backbone_app.command("build-tiny-world")
def backbone_build_tiny_world(
    work: Annotated[Path, typer.Option(help="Folder for the captions world and the run (resumed if present).")] =
        Path("runs/tiny-world"),
    out: Annotated[Path | None, typer.Option(help="Preset folder to write (default: the package's "
                                                  "backbones/weights/tiny-world).")] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="Run overrides KEY=VALUE (experiments only).")] = None,
) -> None:
    """Rebuild the shipped tiny-world preset from its packaged recipe (configs/tiny-world.yaml)."""
    from chronoclip.backbones.presets import WEIGHTS_DIR
    from chronoclip.engine.tiny_world import build_tiny_world

    provenance = build_tiny_world(work, out or WEIGHTS_DIR / "tiny-world", overrides or [])
    typer.echo(json.dumps({"train_seconds": provenance["train_seconds"], "check": provenance["check"]}, indent=2))


@app.command()
def train(
    method: Annotated[str, typer.Argument(help="A registered method (see `chronoclip methods`).")],
    data: Annotated[Path, typer.Option(help="Manifest with train (and val / test) splits.")],
    out: Annotated[Path, typer.Option(help="Run folder.")],
    backbone: Annotated[str, typer.Option(help="Preset, local Hugging Face CLIP folder or hub id.")] = DEFAULT_BACKBONE,
    config: Annotated[Path | None, typer.Option(help="Preset YAML (train / optim / schedule / model), or a "
                                                     "packaged recipe such as dist/k400-b16-8f.yaml.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run folder's latest checkpoint.")] = False,
    nproc: Annotated[int, typer.Option(min=1, help="Processes (DDP via torchrun; gloo on CPU).")] = 1,
    overrides: Annotated[list[str] | None, typer.Argument(help="Config overrides KEY=VALUE, e.g. "
                                                               "train.epochs=3 model.frames=4.")] = None,
) -> None:
    """Train a method; writes config.yaml, metrics.jsonl, metrics.json, checkpoints/, plots/, report.md."""
    if nproc > 1:
        raise typer.Exit(_launch_distributed(nproc))
    from chronoclip.engine.runs import train as train_run

    run = train_run(method, data, out, backbone=backbone, config=config, overrides=overrides or [],
                    resume=resume)
    summary = {k: v for k, v in run.metrics.items() if isinstance(v, float)}
    typer.echo(f"run folder: {out}\n" + json.dumps(summary, indent=2))


def _launch_distributed(nproc: int) -> int:
    """Re-run this command under ``torchrun`` with ``nproc`` processes; returns its exit code."""
    import subprocess

    arguments = [a for a in sys.argv[1:] if not a.startswith("--nproc")]
    if "--nproc" in sys.argv:  # "--nproc N" form: drop the value too
        index = sys.argv.index("--nproc")
        arguments = sys.argv[1:index] + sys.argv[index + 2:]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "chronoclip.cli", *arguments]
    log.info("launching: %s", " ".join(command))
    return subprocess.call(command)


@app.command()
def extract(
    data: Annotated[Path, typer.Option(help="Manifest whose media to embed.")],
    backbone: Annotated[str, typer.Option(help="Preset, local Hugging Face CLIP folder or hub id.")] = DEFAULT_BACKBONE,
    frames: Annotated[int, typer.Option(min=1, help="Frames per video (uniform sampling).")] = 8,
    split: Annotated[str | None, typer.Option(help="Only this split.")] = None,
    cache_dir: Annotated[str, typer.Option(help="Feature cache folder (default: $CHRONOCLIP_CACHE or "
                                                "~/.cache/chronoclip/features).")] = "",
    shard_id: Annotated[int, typer.Option(min=0, help="This process's share of the rows.")] = 0,
    num_shards: Annotated[int, typer.Option(min=1, help="Processes sharing the work.")] = 1,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
) -> None:
    """Cache frozen per-frame embeddings of a manifest (resumable; shardable across processes).

    The entries are the ones `frame-probe` trains on with the same backbone and frames, so a later run
    starts warm.
    """
    from chronoclip.engine.features import extract_manifest

    report = extract_manifest(data, backbone, frames, split, cache_dir, shard_id, num_shards, batch_size)
    typer.echo(json.dumps(report, indent=2))


@app.command("eval")
def evaluate(
    target: Annotated[str, typer.Argument(help="A run folder, or (with --protocol zero-shot) a backbone: preset, "
                                                "local Hugging Face CLIP folder or hub id.")],
    data: Annotated[Path, typer.Option(help="Manifest to evaluate on.")],
    split: Annotated[str, typer.Option(help="Split of the manifest.")] = "test",
    protocol: Annotated[str, typer.Option(help="'run': the run's own metrics (classification or retrieval); "
                                               "'zero-shot': prompts from a label column; 'audio-folds': "
                                               "ESC-50's cross-validated linear probe of a crisscross run's frozen "
                                               "audio features (every row, its split is its fold).")] = "run",
    label_column: Annotated[str, typer.Option(help="zero-shot: the column whose values are the classes.")] = "label",
    templates: Annotated[str | None, typer.Option(help="zero-shot: template set (photo, kinetics, ucf101, bare, "
                                                       "world) or JSON file; default photo / kinetics.")] = None,
    frames: Annotated[int, typer.Option(min=1, help="zero-shot: frames averaged per video.")] = 8,
    crops: Annotated[int, typer.Option(min=1, help="audio-folds: audio windows per recording, averaged.")] = 10,
    out: Annotated[Path | None, typer.Option(help="Folder for metrics.json (and a run's report) "
                                                  "(default: RUN/eval-SPLIT; required for a backbone).")] = None,
) -> None:
    """Evaluate a run or a backbone on a manifest split; writes metrics.json (with its protocol)."""
    from chronoclip.engine.runs import is_run_folder

    is_run = is_run_folder(target)
    if protocol in ("zero-shot", "zero_shot"):
        from chronoclip.engine.zero_shot import zero_shot

        if out is None and not is_run:
            raise ConfigError("pass --out DIR for the metrics of a backbone")
        result = zero_shot(target, data, split=split, label_column=label_column, templates=templates, frames=frames,
                           out=out or Path(target) / f"zero-shot-{split}")
    elif protocol == "run":
        if not is_run:
            raise ConfigError(f"{target} is not a run folder (no config.yaml); to evaluate a backbone, pass "
                              "--protocol zero-shot")
        from chronoclip.engine.runs import evaluate as evaluate_run
        from chronoclip.engine.runs import load_run

        result = evaluate_run(load_run(target), data, split=split, out=out or Path(target) / f"eval-{split}")
    elif protocol == "audio-folds":
        result = _audio_folds(target, data, crops, out)
    else:
        raise ConfigError(f"unknown --protocol '{protocol}'; choose 'run', 'zero-shot' or 'audio-folds'")
    summary = {k: v for k, v in result.items() if k not in ("protocol", "per_class_top1", "confusion")}
    typer.echo(json.dumps(summary, indent=2))


def _audio_folds(target: str, data: Path, crops: int, out: Path | None) -> dict[str, Any]:
    """ESC-50's fold probe of a crisscross run on every row of ``data``; writes ``OUT/metrics.json``."""
    from chronoclip.data.manifest import load_manifest
    from chronoclip.engine.runs import is_run_folder, load_run
    from chronoclip.eval.av_probe import evaluate_audio_folds
    from chronoclip.io.writers import write_json

    if not is_run_folder(target):
        raise ConfigError(f"{target} is not a run folder; --protocol audio-folds probes a crisscross run")
    run = load_run(target)
    if not hasattr(run.method, "av_spec"):
        raise ConfigError(f"{target} is a '{run.config.method}' run; --protocol audio-folds needs a crisscross run")
    result = evaluate_audio_folds(run.method, load_manifest(data), crops=crops, progress=True)
    write_json((out or Path(target) / "eval-audio-folds") / "metrics.json", result)
    return result


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="A run folder.")],
    image: Annotated[Path, typer.Option(help="The image (or, for a video method, the video) to predict.")],
    text: Annotated[str, typer.Option(help="Its text: a note or caption (methods that read none ignore it).")] = "",
) -> None:
    """Print a run's prediction for one file as JSON (cliptime: the stage with its probabilities and the time)."""
    from chronoclip.engine.predict import predict_media

    typer.echo(json.dumps(predict_media(run, image, text), indent=2, ensure_ascii=False))


@app.command()
def report(run: Annotated[Path, typer.Argument(help="A run folder.")]) -> None:
    """Re-render a run's report.md and plots from its metrics."""
    from chronoclip.engine.logging import read_history
    from chronoclip.eval.report import write_report

    final_path = run / "metrics.json"
    final = json.loads(final_path.read_text()) if final_path.is_file() else {}
    if not (run / "metrics.jsonl").is_file():
        raise ConfigError(f"{run} has no metrics.jsonl; is it a run folder?")
    typer.echo(f"wrote {write_report(run, read_history(run / 'metrics.jsonl'), final)}")


@app.command()
def methods() -> None:
    """List the registered methods and the evaluation protocols each supports."""
    from chronoclip.methods import get_method, list_methods

    for name in list_methods():
        typer.echo(f"{name}: {', '.join(get_method(name).protocols)}")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); return the exit code. Callable from tests."""
    command = typer.main.get_command(app)
    try:
        # Outside standalone mode click returns a raised Exit's code instead of raising it.
        code = command.main(args=argv, prog_name="chronoclip", standalone_mode=False)
    except ChronoclipError as exc:
        if os.environ.get("CHRONOCLIP_DEBUG"):
            raise
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        signum = getattr(exc, "signum", None)  # training stopped by a signal: the shell convention
        return 128 + signum if isinstance(signum, int) else 2
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except Exception as exc:  # click's usage errors
        from click.exceptions import ClickException

        if isinstance(exc, ClickException):
            exc.show()
            return exc.exit_code
        raise
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
