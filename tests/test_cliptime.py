"""cliptime: the invariants of spec C.7, the stage/time metrics, bare config keys, and the CLI
(train with ``mode=...``, metrics.json, ``chronoclip predict``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from chronoclip.backbones import load_backbone
from chronoclip.cli import main
from chronoclip.config import qualify_model_keys
from chronoclip.data.datasets import collate
from chronoclip.data.manifest import Manifest, load_manifest, write_manifest
from chronoclip.data.worlds import make_world
from chronoclip.engine.runs import build_run_config
from chronoclip.errors import ConfigError, ManifestError
from chronoclip.eval.metrics import macro_f1, regression_metrics, temporal_accuracy
from chronoclip.methods.cliptime import CLIPTime, CLIPTimeConfig
from chronoclip.methods.cliptime.data import choose_unit, stage_boundaries
from chronoclip.methods.cliptime.model import sentences
from chronoclip.methods.cliptime.temporal import soft_time_targets

STAGES = ["hyphae", "mycelium", "spore"]  # sorted, as the engine orders class names


@pytest.fixture(scope="module")
def growth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world("growth", tmp_path_factory.mktemp("growth"), seed=0, n=6, frames=5, size=32)


def _model(growth: Path, **config: Any) -> tuple[CLIPTime, Manifest]:
    torch.manual_seed(0)
    model = CLIPTime(CLIPTimeConfig(hidden=16, **config), load_backbone("tiny"), STAGES)
    manifest = load_manifest(growth)
    model.dataset(manifest.split("train"), train=True)  # fits the time stats
    return model, manifest


def _batch(model: CLIPTime, rows: Manifest, train: bool = False, size: int = 4) -> dict[str, Any]:
    dataset = model.dataset(rows, train=train)
    batch = collate([dataset[i] for i in range(size)])
    if not train:
        batch["pixels"] = batch["pixels"][:, 0]
    return batch


def test_outputs_have_the_spec_shapes_and_ignore_timestamps(growth: Path) -> None:
    model, manifest = _model(growth)
    model.eval()
    batch = _batch(model, manifest.split("test"))
    image = model.backbone.image_size
    assert batch["pixels"].shape == (4, 1, 3, image, image)
    with torch.no_grad():
        outputs = model({"pixels": batch["pixels"][:, 0], "text": batch["text"]})  # image and text only
        shuffled = dict(batch, timestamp=batch["timestamp"].flip(0), time=batch["time"].flip(0),
                        tau=batch["tau"].flip(0))
        again = model(shuffled)
    assert outputs["stage_logits"].shape == (4, 3) and outputs["tau"].shape == (4,)
    assert ((outputs["tau"] >= 0) & (outputs["tau"] <= 1)).all()
    for key in ("stage_logits", "tau"):
        assert torch.equal(outputs[key], again[key])


def test_the_time_transform_round_trips_in_original_units(growth: Path) -> None:
    model, manifest = _model(growth)
    assert model.time_unit == "hours" and float(model.time_range) == pytest.approx(48.0)
    hours = torch.tensor([0.0, 3.25, 17.123456789, 48.0], dtype=torch.float64)
    assert (model.to_time(model.to_tau(hours)) - hours).abs().max() < 1e-6
    train = model.dataset(manifest.split("train"), train=True)
    taus = [train.row_fields(i)["tau"] for i in range(len(train))]
    assert min(taus) == 0.0 and max(taus) == pytest.approx(1.0)


@pytest.mark.parametrize(("config", "silent"), [({"lambda_time": 0.0}, "time_head"),
                                                ({"mode": "single-task"}, "stage_head")])
def test_a_zero_loss_weight_gives_its_head_zero_gradients(growth: Path, config: dict[str, Any], silent: str) -> None:
    model, manifest = _model(growth, **config)
    model.train()
    batch = _batch(model, manifest.split("train"), train=True, size=6)
    model.loss(model(batch), batch)["loss"].backward()
    heads = {"time_head": model.time_head, "stage_head": model.stage_head}
    for name, head in heads.items():
        norm = sum(float(p.grad.abs().sum()) for p in head.parameters() if p.grad is not None)
        assert (norm == 0) == (name == silent), (name, norm)


def test_image_only_ignores_the_note_and_text_only_the_image(growth: Path) -> None:
    for mode, changed in (("image-only", "text"), ("text-only", "pixels")):
        model, manifest = _model(growth, mode=mode)
        model.eval()
        batch = _batch(model, manifest.split("test"))
        other = dict(batch)
        other[changed] = ["incubated at 18 °C. the lid stayed closed."] * 4 if changed == "text" \
            else torch.randn_like(batch["pixels"])
        used = {"pixels": torch.randn_like(batch["pixels"])} if changed == "text" \
            else {"text": ["plate incubated at 30 °C. a new batch of agar was used."] * 4}
        with torch.no_grad():
            assert torch.equal(model(batch)["tau"], model(other)["tau"])
            assert not torch.equal(model(batch)["tau"], model(dict(batch, **used))["tau"])  # the other input counts


def test_frozen_towers_embed_each_note_once_and_train_no_tower(growth: Path) -> None:
    model, manifest = _model(growth)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert model.frozen_features() is not None and [g.name for g in model.param_groups()] == ["heads"]
    calls: list[int] = []
    encode = model.backbone.encode_text
    model.backbone.encode_text = lambda tokens, normalize: calls.append(len(tokens["input_ids"])) or encode(
        tokens, normalize=normalize)
    notes = manifest.split("train").column("text")
    model.text_embedding(notes)
    model.text_embedding(notes[::-1])
    assert calls == [len({s for note in notes for s in sentences(note)})]  # each distinct sentence once
    tuned, _ = _model(growth, text_tower="finetune", text_pooling="note")
    groups = {g.name: g for g in tuned.param_groups()}
    assert groups["towers"].lr_scale == 0.01 and tuned.frozen_features() is not None
    direct = tuned.backbone.encode_text(tuned.backbone.tokenize(notes), normalize=True)
    assert torch.allclose(tuned.text_embedding(notes), direct, atol=1e-5)  # one pass per distinct note
    assert tuned.text_embedding(notes).requires_grad


def test_sentence_pooling_starts_as_the_mean_and_learns_which_sentence_counts(growth: Path) -> None:
    model, _ = _model(growth)
    assert sentences("at 18 °C.  the lid stayed closed. ") == ["at 18 °C.", "the lid stayed closed."]
    assert sentences("") == [""]
    note = "incubated at 18 °C. the lid stayed closed."
    parts = model.backbone.encode_text(model.backbone.tokenize(sentences(note)), normalize=True)
    with torch.no_grad():
        assert torch.allclose(model.text_embedding([note])[0], F.normalize(parts.mean(0), dim=0), atol=1e-5)
        model.sentence_query.copy_(parts[0] * 10)  # a query that prefers the temperature sentence
        assert torch.allclose(model.text_embedding([note])[0], parts[0], atol=1e-3)
    long = " ".join(["the lid stayed closed."] * 12)  # > 32 tokens as one text, 6 per sentence
    assert model.truncation([long, note]) == (0, 2)
    whole, _ = _model(growth, text_pooling="note")
    assert whole.truncation([long, note]) == (1, 2) and whole.sentence_query is None


def test_soft_alignment_targets_are_row_stochastic_with_a_diagonal_peak() -> None:
    tau = torch.rand(16)
    targets = soft_time_targets(tau, sigma=0.05)
    assert torch.allclose(targets.sum(dim=1), torch.ones(16))
    assert torch.equal(targets.argmax(dim=1), torch.arange(16))


def test_time_metrics_on_hand_computed_cases() -> None:
    true = np.array([0.0, 10.0, 20.0, 30.0])
    assert regression_metrics(true + 2.5, true)["mae"] == pytest.approx(2.5)
    predicted = true + np.array([0.5, -1.0, 3.0, -7.0])
    accuracies = [temporal_accuracy(predicted, true, delta) for delta in np.linspace(0, 30, 31)]
    assert accuracies == sorted(accuracies) and accuracies[-1] == 100.0 and accuracies[0] == 0.0
    assert temporal_accuracy(predicted, true, 1.0) == 50.0
    # class 0: P=R=1 -> 1; class 1: P=1/2, R=1 -> 2/3; class 2: never predicted -> 0
    assert macro_f1(np.array([0, 1, 1, 0]), np.array([0, 1, 2, 0]), 3) == pytest.approx(100 * (1 + 2 / 3) / 3)


def test_stage_boundaries_order_stages_by_time_and_cut_between_them() -> None:
    tau = np.array([0.0, 0.1, 0.2, 0.5, 0.6, 0.9, 1.0])
    stage = np.array([2, 2, 2, 0, 0, 1, -1])  # spore, hyphae, mycelium as indices 2, 0, 1
    order, bounds = stage_boundaries(tau, stage, 3)
    assert order.tolist() == [2, 0, 1]
    assert bounds == pytest.approx([0.35, 0.75])
    assert choose_unit(48 * 3600) == "hours" and choose_unit(30 * 86400) == "days" and choose_unit(5) == "seconds"


def test_growth_splits_are_by_series_and_notes_never_state_time_or_stage(growth: Path) -> None:
    rows = load_manifest(growth)
    sides: dict[str, set[str]] = {}
    for row in rows:
        sides.setdefault(row["series"], set()).add(row["split"])
        assert not any(word in row["text"] for word in ("spore", "hyphae", "mycelium", "hour", "day"))
    assert all(len(split) == 1 for split in sides.values())


def test_a_training_row_without_a_timestamp_is_reported_with_its_row(growth: Path, tmp_path: Path) -> None:
    records = [dict(r) for r in load_manifest(growth)]
    row = next(i for i, r in enumerate(records) if r["split"] == "train")
    records[row]["timestamp"] = None
    write_manifest(records, tmp_path / "m.csv")
    model = CLIPTime(CLIPTimeConfig(hidden=16), load_backbone("tiny"), STAGES)
    with pytest.raises(ManifestError, match=f"row {row + 1}.*no timestamp"):
        model.dataset(load_manifest(tmp_path / "m.csv").split("train"), train=True)


def test_bare_override_keys_are_model_keys() -> None:
    cfg = build_run_config("cliptime", overrides=["mode=image-only", "model.hidden=8", "train.epochs=2"])
    assert cfg.model.mode == "image-only" and cfg.model.hidden == 8 and cfg.train.epochs == 2
    with pytest.raises(ConfigError, match=r"unknown config key 'modes'.*mode, hidden"):
        build_run_config("cliptime", overrides=["modes=image-only"])
    with pytest.raises(ConfigError, match=r"model\.mode='sideways'"):
        build_run_config("cliptime", overrides=["mode=sideways"])

    from dataclasses import dataclass, field

    @dataclass
    class Sampler:
        mode: str = "strict"

    @dataclass
    class Nested:
        sampler: Sampler = field(default_factory=Sampler)

    assert qualify_model_keys(["sampler.mode=mild", "optim.lr=0.1"], Nested) == ["model.sampler.mode=mild",
                                                                                 "optim.lr=0.1"]


def test_cli_trains_a_mode_writes_metrics_reports_time_and_predicts(growth: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    manifest, out = growth, tmp_path / "run"
    assert main(["train", "cliptime", "--data", str(manifest), "--backbone", "tiny", "--out", str(out),
                 "mode=image-only", "model.hidden=16", "train.epochs=2", "train.batch_size=8"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"mae", "stage_acc", "rmse", "stage_macro_f1", "stage_time_consistency"} <= set(metrics)
    assert metrics["protocol"]["split"] == "test" and metrics["protocol"]["time_unit"] == "hours"
    assert "Predicted vs true time" in (out / "report.md").read_text() and (out / "plots" / "time.png").is_file()
    capsys.readouterr()
    image = load_manifest(manifest).split("test")[0]["path"]
    printed = []
    for note in ("incubated at 18 °C.", "incubated at 30 °C."):
        assert main(["predict", str(out), "--image", str(image), "--text", note]) == 0
        printed.append(json.loads(capsys.readouterr().out))
    assert printed[0]["stage"] in STAGES and printed[0]["time_unit"] == "hours"
    assert set(printed[0]["stage_probabilities"]) == set(STAGES)
    assert printed[0] == printed[1]  # image-only: the note changes nothing
    assert main(["predict", str(out), "--image", str(tmp_path / "none.png")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_baselines_ridge_histograms_time_prompts_and_the_leakage_warning(growth: Path) -> None:
    from chronoclip.eval.stage_time_baselines import (
        colour_histograms,
        fit_ridge,
        ridge_predict,
        text_leakage_warning,
        zero_shot_times,
    )

    features = np.random.default_rng(0).normal(size=(40, 3))
    weights = fit_ridge(features, features @ np.array([1.0, -2.0, 0.5]) + 3.0, alpha=1e-9)
    assert weights[:, 0] == pytest.approx([1.0, -2.0, 0.5, 3.0], abs=1e-6)
    assert ridge_predict(weights, features[:2]).shape == (2, 1)
    histograms = colour_histograms(load_manifest(growth).column("path")[:3], bins=4)
    assert histograms.shape == (3, 64) and np.allclose(histograms.sum(axis=1), 1)

    def encode(texts: list[str]) -> torch.Tensor:  # prompt "after k hours" -> the unit vector of axis k / 12
        return torch.nn.functional.one_hot(torch.tensor([int(t.split()[3]) // 12 for t in texts]), 5).float()

    images = torch.nn.functional.one_hot(torch.tensor([0, 3, 4]), 5).float()
    assert zero_shot_times(images, [0, 12, 24, 36, 48], encode).tolist() == [0.0, 36.0, 48.0]
    assert text_leakage_warning(text_only_mae=12.0, image_only_mae=5.0) is None
    assert "notes may state the time" in (text_leakage_warning(2.0, 5.0, "hours") or "")


def test_text_only_predictions_are_constant_within_a_series(growth: Path) -> None:
    model, manifest = _model(growth, mode="text-only")
    model.eval()
    rows = manifest.split("train")
    first = rows.column("series")[0]
    series = rows.select(s == first for s in rows.column("series"))
    batch = _batch(model, series, size=len(series))
    with torch.no_grad():
        tau = model(batch)["tau"]
    assert torch.allclose(tau, tau[0].expand_as(tau))  # so stage accuracy cannot beat the majority per series
