"""Every registered method trains on a tiny world (loss falls, outputs and predict are well formed),
and the run API / CLI write, reload and evaluate run folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from chronoclip.cli import main
from chronoclip.data.datasets import ManifestDataset, collate
from chronoclip.data.manifest import load_manifest, write_manifest
from chronoclip.data.worlds import make_world
from chronoclip.engine.logging import read_history
from chronoclip.engine.runs import build_run_config, evaluate, load_run, train
from chronoclip.errors import ChronoclipError, ConfigError, ManifestError
from chronoclip.methods import get_method, list_methods

FAST = ["train.epochs=4", "train.batch_size=4", "optim.lr=0.01", "model.frames=4", "train.log_every=1000"]


@pytest.fixture(scope="module")
def motion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world("motion", tmp_path_factory.mktemp("motion"), seed=0, n=3, frames=8, size=32)


#: Methods that do not train on the motion world: their world, its parameters and fast overrides.
OTHER_DATA = {"clip": ("captions", {"n": 48, "size": 32}, ["train.epochs=6", "train.batch_size=8", "optim.lr=0.002",
                                                           "train.log_every=1000"]),
              # dense frames = 2 x model.frames = the world's 8; DiST's lr is 10x optim.lr
              "dist": ("motion", {"n": 3, "frames": 8, "size": 32}, [*FAST, "optim.lr=0.001"]),
              "crisscross": ("audiovisual", {"n": 6, "duration": 3.0, "size": 16},
                             ["train.epochs=4", "train.batch_size=8", "train.log_every=1000", "train.eval_every=0",
                              "model.cache_media=true",
                              "model.video_width=4", "model.audio_width=4", "model.proj_dim=16",
                              "model.proj_hidden=16", "model.pred_hidden=8", "model.frames=4", "model.fps=8",
                              "model.image_size=16", "model.audio_seconds=1.0", "model.eval_clips=2"]),
              "crisscross-finetune": ("audiovisual", {"n": 6, "duration": 3.0, "size": 16},
                                      ["train.epochs=4", "train.batch_size=8", "train.log_every=1000",
                                       "optim.lr=0.01", "model.video_width=4", "model.image_size=16",
                                       "model.frames=4", "model.stride=1", "model.train_clips=2",
                                       "model.eval_clips=2"]),
              "cliptime": ("growth", {"n": 9, "frames": 6, "size": 32},
                           ["train.epochs=4", "train.batch_size=8", "model.hidden=32", "train.log_every=1000"]),
              "trust": ("domains", {"n": 4, "size": 32},
                        ["train.epochs=4", "train.batch_size=8", "model.text_steps=20", "train.log_every=1000"])}


@pytest.mark.parametrize("name", list_methods())
def test_every_method_trains_and_predicts(name: str, motion: Path, tmp_path: Path) -> None:
    data, overrides = motion, FAST
    if name in OTHER_DATA:
        world, params, overrides = OTHER_DATA[name]
        data = make_world(world, tmp_path / "data", seed=0, **params)
    run = train(name, data, tmp_path / "run", backbone="tiny", overrides=overrides)
    losses = [row["loss"] for row in read_history(tmp_path / "run" / "metrics.jsonl") if "loss" in row]
    assert len(losses) >= 8
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    assert (tmp_path / "run" / "report.md").is_file() and (tmp_path / "run" / "plots" / "loss.png").is_file()
    manifest = load_manifest(data)
    if run.method.run_protocol == "av_probe":  # self-supervised: probes of frozen features, no logits
        assert {"probe_top1", "video.probe_top1", "audio.probe_top1", "protocol"} <= set(run.metrics)
        samples = run.method.dataset(manifest.split("test"), train=False)
        with torch.no_grad():
            predictions = run.method.predict(collate([samples[0], samples[1]]))
        assert len(predictions) == 2 and -1 <= predictions[0]["av_similarity"] <= 1
        return
    dataset = ManifestDataset(manifest.split("test"), run.method.sample_spec(), run.class_names, train=False)
    batch = collate([dataset[0], dataset[1]])
    batch["pixels"] = batch["pixels"][:, 0]  # one view
    with torch.no_grad():
        outputs = run.method(batch)
        predictions = run.method.predict(batch)
    assert len(predictions) == 2
    if run.method.run_protocol == "retrieval":
        assert {"t2v_R@1", "v2t_R@1", "protocol"} <= set(run.metrics)
        assert run.metrics["protocol"]["texts"] == len(manifest.split("test"))
        assert outputs["visual_embeddings"].shape == outputs["text_embeddings"].shape
        assert torch.allclose(outputs["text_embeddings"].norm(dim=-1), torch.ones(2), atol=1e-5)
        assert predictions[0]["best_caption"] in batch["text"]
        return
    if run.method.run_protocol == "stage_time":
        assert {"stage_acc", "mae", "rmse", "temporal_acc@5", "protocol"} <= set(run.metrics)
        assert outputs["stage_logits"].shape == (2, len(run.class_names)) and outputs["tau"].shape == (2,)
        assert predictions[0]["stage"] in run.class_names and predictions[0]["time_unit"] == "hours"
        assert sum(predictions[0]["stage_probabilities"].values()) == pytest.approx(1, abs=1e-3)
        return
    logits = outputs["logits"]
    assert {"top1", "top5", "mean_class_acc", "protocol"} <= set(run.metrics)
    assert logits.shape == (2, len(run.class_names))
    assert predictions[0]["label"] in run.class_names
    probabilities = [p["probability"] for p in predictions[0]["top"]]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < probabilities[0] <= 1
    assert predictions[0]["label"] == run.class_names[int(logits[0].argmax())]


def test_frozen_method_checkpoints_leave_the_tower_out(motion: Path, tmp_path: Path) -> None:
    run = train("frame-probe", motion, tmp_path, overrides=[*FAST, "train.epochs=1"])
    state = run.method.trainable_state()
    assert not any(name.startswith("backbone.") for name in state)
    assert {"head.weight", "head.bias", "norm.running_mean"} <= set(state)
    finetune = get_method("finetune")(get_method("finetune").Config(), run.method.backbone, run.class_names)
    assert any(name.startswith("backbone.") for name in finetune.trainable_state())


def test_reload_and_evaluate_reproduce_the_metrics(motion: Path, tmp_path: Path) -> None:
    run = train("frame-probe", motion, tmp_path / "run", overrides=FAST)
    again = evaluate(load_run(tmp_path / "run"), motion, split="test")
    assert again["top1"] == pytest.approx(run.metrics["top1"])
    assert again["protocol"]["split"] == "test" and again["protocol"]["clips"] == 1


def test_an_existing_run_is_not_overwritten_without_resume(motion: Path, tmp_path: Path) -> None:
    train("frame-probe", motion, tmp_path, overrides=[*FAST, "train.epochs=1"])
    with pytest.raises(ChronoclipError, match="--resume"):
        train("frame-probe", motion, tmp_path, overrides=FAST)
    resumed = train("frame-probe", motion, tmp_path, overrides=["train.epochs=2"], resume=True)
    assert resumed.config.train.epochs == 2


def test_multi_view_evaluation_states_its_protocol(motion: Path, tmp_path: Path) -> None:
    run = train("frame-probe", motion, tmp_path, overrides=[*FAST, "train.epochs=1", "model.eval_clips=2",
                                                           "model.eval_crops=3"])
    assert run.metrics["protocol"]["clips"] == 2 and run.metrics["protocol"]["crops"] == 3


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"model\.frames"):
        build_run_config("frame-probe", overrides=["model.frames=0"])
    with pytest.raises(ConfigError, match="unknown method 'dist2'"):
        build_run_config("dist2")


def test_cli_world_train_eval_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["world", "motion", str(tmp_path / "w"), "--seed", "1", "n=3", "frames=8", "size=32"]) == 0
    manifest = tmp_path / "w" / "manifest.csv"
    assert main(["data", "check", str(manifest), "--decode"]) == 0
    assert "decoded" in capsys.readouterr().out
    assert main(["train", "frame-probe", "--data", str(manifest), "--out", str(tmp_path / "r"), *FAST,
                 "train.epochs=1"]) == 0
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["protocol"]["split"] == "test"
    assert main(["eval", str(tmp_path / "r"), "--data", str(manifest)]) == 0
    assert (tmp_path / "r" / "eval-test" / "metrics.json").is_file()
    assert main(["train", "frame-probe", "--data", str(tmp_path / "none.csv"), "--out", str(tmp_path / "x")]) == 2
    assert "manifest file not found" in capsys.readouterr().err
    assert main(["train", "frame-probe", "--data", str(manifest), "--out", str(tmp_path / "y"), "train.epoch=1"]) == 2
    assert main(["backbone", "info", "tiny"]) == 0
    assert json.loads(capsys.readouterr().out)["embed_dim"] == 64


def test_feature_cache_gives_the_same_training_and_is_reused(motion: Path, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    cache = f"train.cache_dir={tmp_path / 'cache'}"
    train("frame-probe", motion, tmp_path / "off", overrides=[*FAST, "train.cache=false"])
    with caplog.at_level("INFO", logger="chronoclip.engine.features"):
        train("frame-probe", motion, tmp_path / "cold", overrides=[*FAST, cache])
        cold = [r.getMessage() for r in caplog.records if "feature cache" in r.getMessage()]
        caplog.clear()
        train("frame-probe", motion, tmp_path / "warm", overrides=[*FAST, cache])
        warm = [r.getMessage() for r in caplog.records if "feature cache" in r.getMessage()]
    assert all("0 hits" in m for m in cold) and all(" 0 computed" in m for m in warm) and warm

    def losses(name: str) -> list[float]:
        return [r["loss"] for r in read_history(tmp_path / name / "metrics.jsonl") if "loss" in r]

    assert losses("cold") == pytest.approx(losses("off"), abs=1e-5)
    assert losses("warm") == pytest.approx(losses("cold"), abs=1e-6)


def test_extract_prewarms_the_cache_frame_probe_uses(motion: Path, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "cache"
    assert main(["extract", "--data", str(motion), "--cache-dir", str(cache), "--frames", "4",
                 "--num-shards", "2", "--shard-id", "0"]) == 0
    assert main(["extract", "--data", str(motion), "--cache-dir", str(cache), "--frames", "4",
                 "--num-shards", "2", "--shard-id", "1"]) == 0
    with caplog.at_level("INFO", logger="chronoclip.engine.features"):
        train("frame-probe", motion, tmp_path / "run", overrides=[*FAST, f"train.cache_dir={cache}"])
    messages = [r.getMessage() for r in caplog.records if "feature cache" in r.getMessage()]
    assert messages and all(" 0 computed" in m for m in messages)


def test_classification_run_refuses_labels_missing_from_train(motion: Path, tmp_path: Path) -> None:
    manifest = load_manifest(motion)
    records = [dict(r) for r in manifest]
    test_row = next(i for i, r in enumerate(records) if r["split"] == "test")
    records[test_row]["label"] = "never trained"
    write_manifest(records, tmp_path / "m.csv")
    with pytest.raises(ManifestError, match="'never trained' appears in 1 val/test row"):
        train("frame-probe", tmp_path / "m.csv", tmp_path / "run", backbone="tiny", overrides=FAST)
    assert not (tmp_path / "run").exists()  # refused before the run folder is written


def test_every_run_protocol_has_an_evaluator() -> None:
    from chronoclip.eval.run_protocols import RUN_EVALUATORS
    from chronoclip.methods.base import RUN_PROTOCOLS

    assert set(RUN_EVALUATORS) == set(RUN_PROTOCOLS)
    assert {get_method(name).run_protocol for name in list_methods()} <= set(RUN_PROTOCOLS)


def test_spec_fields_are_copied_into_samples_and_batched(motion: Path, tmp_path: Path) -> None:
    from dataclasses import replace

    from chronoclip.data.datasets import SampleSpec

    records = [dict(r) for r in load_manifest(motion)]
    for i, record in enumerate(records):
        record.update(timestamp=1.5 * i, stage=f"s{i % 2}")
    write_manifest(records, tmp_path / "m.csv")
    rows = load_manifest(tmp_path / "m.csv").split("train")
    spec = replace(SampleSpec(frames=2, image_size=16), fields=("timestamp", "stage", "series"))
    dataset = ManifestDataset(rows, spec, rows.labels, train=True)
    batch = collate([dataset[0], dataset[1]])
    assert batch["pixels"].shape == (2, 2, 3, 16, 16)
    assert torch.equal(batch["timestamp"], torch.tensor([rows[0]["timestamp"], rows[1]["timestamp"]]))
    assert batch["stage"] == [rows[0]["stage"], rows[1]["stage"]]
    assert batch["series"] == [None, None]  # a column the manifest lacks: None, kept as a list
    assert dataset.row_fields(1)["label"] == rows.labels.index(rows[1]["label"])
