"""The ``clip`` pretraining method, backbone export with file hashes, zero-shot evaluation of a backbone or
run, and the shipped ``tiny-world`` preset (loads offline, files intact, reproduces its recorded figure)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from chronoclip.backbones import load_backbone
from chronoclip.backbones.export import export_backbone, verify_folder
from chronoclip.backbones.patch_whitening import whitening_filters
from chronoclip.backbones.presets import WEIGHTS_DIR, read_meta
from chronoclip.cli import main
from chronoclip.data.manifest import load_manifest
from chronoclip.data.worlds import make_world
from chronoclip.engine.runs import train
from chronoclip.engine.zero_shot import zero_shot
from chronoclip.errors import ConfigError
from chronoclip.eval.worldclip import universe_zero_shot
from chronoclip.methods.clip import ClipConfig, ClipPretrain
from chronoclip.methods.contrastive import symmetric_info_nce

TINY_WORLD = WEIGHTS_DIR / "tiny-world"


@pytest.fixture(scope="module")
def captions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world("captions", tmp_path_factory.mktemp("captions"), seed=3, n=120, size=32)


def test_info_nce_matches_the_definition_and_trains_the_temperature() -> None:
    generator = torch.Generator().manual_seed(0)
    image, text = torch.randn(5, 8, generator=generator), torch.randn(5, 8, generator=generator)
    log_scale = torch.tensor(math.log(10.0), requires_grad=True)
    loss = symmetric_info_nce(image, text, log_scale.exp())
    logits = 10.0 * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T
    expected = (F.cross_entropy(logits, torch.arange(5)) + F.cross_entropy(logits.T, torch.arange(5))) / 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert log_scale.grad is not None and log_scale.grad != 0
    matched = symmetric_info_nce(torch.eye(4), torch.eye(4), torch.tensor(100.0))
    assert matched.item() < 1e-6 < symmetric_info_nce(torch.eye(4), torch.eye(4).flip(0), torch.tensor(100.0)).item()
    with pytest.raises(ValueError, match=r"\[B, D\]"):
        symmetric_info_nce(torch.zeros(3, 4), torch.zeros(2, 4), torch.tensor(1.0))


def test_captions_world_labels_only_one_object_images(captions: Path) -> None:
    manifest = load_manifest(captions)
    for record in manifest:
        if record["objects"] == "1":
            assert record["label"] == f"{record['colour']} {record['shape']}"
            assert record["shape"] in record["text"] or record["colour"] in record["text"]
        else:
            assert record.get("label") is None


def test_clip_run_improves_retrieval_exports_and_reloads(captions: Path, tmp_path: Path) -> None:
    before = zero_shot("tiny", captions, split="train", progress=False)
    run = train("clip", captions, tmp_path / "run", backbone="tiny",
                overrides=["train.epochs=8", "train.batch_size=16", "optim.lr=0.003", "train.log_every=1000"])
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("val/t2v_R@1" in row for row in history)
    after = zero_shot(tmp_path / "run", captions, split="train", progress=False)
    assert after["top1"] > before["top1"]  # the trained towers classify their own training images better
    assert main(["backbone", "export", str(tmp_path / "run"), str(tmp_path / "exported"), "--templates", "world",
                 "--description", "test export"]) == 0
    assert verify_folder(tmp_path / "exported") == []
    meta = read_meta(tmp_path / "exported")
    assert meta["provenance"]["method"] == "clip" and meta["provenance"]["world"]["world"] == "captions"
    reloaded = load_backbone(tmp_path / "exported")
    assert reloaded.templates == "world" and reloaded.fingerprint() == run.method.backbone.fingerprint()


def test_whitening_filters_decorrelate_patches_to_unit_variance() -> None:
    generator = torch.Generator().manual_seed(0)
    mixing = torch.randn(12, 12, generator=generator)  # correlated, unequal-variance patch coordinates
    pixels = (torch.randn(4000, 12, generator=generator) @ mixing).reshape(-1, 3, 2, 2)  # one 2x2 patch each
    filters = whitening_filters(pixels, patch_size=2, eps=0.0)
    responses = F.conv2d(pixels, filters).flatten(1).T  # [12 filters, 4000 patches]
    assert filters.shape == (12, 3, 2, 2)
    assert torch.allclose(torch.cov(responses), torch.eye(12), atol=1e-3)
    with pytest.raises(ValueError, match="multiples of the patch size"):
        whitening_filters(torch.zeros(2, 3, 5, 5), patch_size=2)
    with pytest.raises(ValueError, match="give more images"):
        whitening_filters(torch.zeros(1, 3, 2, 2), patch_size=2)


def test_clip_whiten_starts_the_patch_embedding_from_the_training_images(captions: Path) -> None:
    rows = load_manifest(captions).split("train")
    model = ClipPretrain(ClipConfig(patch_init="whiten", patch_init_images=len(rows)), load_backbone("tiny"), [])
    weight = model.backbone.vision.embeddings.patch_embedding.weight  # tiny: 64 channels, 8x8 patches
    pixels = torch.stack([sample["pixels"].reshape(3, 32, 32) for sample in model.dataset(rows, train=False)])
    model.initialise(rows)
    assert torch.equal(weight[:32], -weight[32:])
    top = F.conv2d(pixels, weight[:5], stride=8).transpose(0, 1).flatten(1)  # [5, patches]
    assert ((top.std(dim=1) > 0.45) & (top.std(dim=1) < 0.5001)).all()  # scale 0.5 x unit variance
    assert torch.allclose(torch.corrcoef(top), torch.eye(5), atol=1e-3)
    unchanged = ClipPretrain(ClipConfig(), load_backbone("tiny"), [])
    before = unchanged.backbone.vision.embeddings.patch_embedding.weight.clone()
    unchanged.initialise(rows)
    assert torch.equal(unchanged.backbone.vision.embeddings.patch_embedding.weight, before)
    with pytest.raises(ConfigError, match=r"model\.patch_init"):
        ClipConfig(patch_init="pca")


def test_verify_folder_names_changed_missing_and_extra_files(tmp_path: Path) -> None:
    folder = export_backbone(load_backbone("tiny"), tmp_path / "b", "tiny copy")
    (folder / "config.json").write_text((folder / "config.json").read_text() + " ")
    (folder / "tokenizer.json").unlink()
    (folder / "notes.txt").write_text("x")
    problems = verify_folder(folder)
    assert "config.json: sha256 differs from chronoclip.json" in problems
    assert "tokenizer.json: missing" in problems and "notes.txt: not in chronoclip.json" in problems


def test_zero_shot_cli_takes_a_backbone_spec_and_a_run(captions: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    manifest = str(captions)
    assert main(["eval", "tiny", "--data", manifest, "--protocol", "zero-shot", "--out", str(tmp_path / "zs")]) == 0
    result = json.loads((tmp_path / "zs" / "metrics.json").read_text())
    assert 0 <= result["top1"] <= 100 and result["protocol"]["split"] == "test"
    assert result["protocol"]["unlabelled_rows_skipped"] == sum(
        r.get("label") is None for r in load_manifest(captions).split("test"))
    assert main(["eval", "tiny", "--data", manifest, "--protocol", "zero-shot", "--label-column", "shape",
                 "--out", str(tmp_path / "shape")]) == 0
    assert json.loads((tmp_path / "shape" / "metrics.json").read_text())["protocol"]["num_classes"] == 10
    capsys.readouterr()
    assert main(["eval", "tiny", "--data", manifest]) == 2
    assert "--protocol zero-shot" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="no 'stage' column"):
        zero_shot("tiny", captions, label_column="stage")


def test_universe_zero_shot_of_a_random_tower_is_near_chance() -> None:
    result = universe_zero_shot(load_backbone("tiny"), styles=("source",), n=160)["source"]
    assert result["shape+colour"] < 10 and result["shape"] < 30 and result["colour"] < 35


@pytest.mark.skipif(not (TINY_WORLD / "config.json").is_file(), reason="tiny-world is not built in this checkout")
class TestShippedTinyWorld:
    def test_files_match_the_recorded_hashes(self) -> None:
        assert verify_folder(TINY_WORLD) == []

    def test_loads_offline_from_the_cli(self) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        done = subprocess.run([sys.executable, "-m", "chronoclip.cli", "backbone", "info", "tiny-world"],
                              capture_output=True, text=True, env=env, check=True)
        info = json.loads(done.stdout)
        assert info["source"] == "tiny-world" and info["templates"] == "world"

    def test_reproduces_its_recorded_zero_shot_figure(self) -> None:
        recorded = read_meta(TINY_WORLD)["provenance"]["check"]
        result = universe_zero_shot(load_backbone("tiny-world"), styles=("source",), n=recorded["n"],
                                    seed=recorded["seed"])
        assert result["source"]["shape+colour"] == pytest.approx(recorded["source_shape+colour"], abs=1.0)
        assert result["source"]["shape+colour"] >= 10 * 100 / 80  # ten times chance (80 classes)
