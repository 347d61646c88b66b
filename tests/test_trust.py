"""TRUST: the invariants of methods-multimodal §B.8, the variants, the data rules and a run end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from chronoclip.backbones import load_backbone
from chronoclip.backbones.clip import Backbone
from chronoclip.data.datasets import collate
from chronoclip.data.manifest import Manifest, load_manifest
from chronoclip.data.worlds import make_world
from chronoclip.engine.logging import read_history
from chronoclip.engine.runs import build_run_config, load_run, train
from chronoclip.errors import ConfigError, ManifestError
from chronoclip.eval.adapt import weight_auroc
from chronoclip.methods.trust import Trust, TrustConfig, TrustDataConfig
from chronoclip.methods.trust.data import DomainPairs
from chronoclip.methods.trust.loss import (
    caption_similarity,
    self_training_loss,
    soft_contrastive_loss,
    uncertainty_weights,
    weighted_cross_entropy,
)
from chronoclip.methods.trust.text import clean_caption

FAST = ["train.epochs=2", "train.batch_size=16", "model.text_steps=20", "train.log_every=1"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world("domains", tmp_path_factory.mktemp("domains"), seed=0, n=4, size=32)


@pytest.fixture(scope="module")
def tiny() -> Backbone:
    return load_backbone("tiny")


def make(backbone: Backbone, world: Path, **overrides: Any) -> tuple[Trust, Manifest]:
    rows = load_manifest(world).split("train")
    cfg = TrustConfig(**{"text_steps": 20, **overrides})
    torch.manual_seed(0)
    model = Trust(cfg, backbone, Trust.class_names_from(rows, cfg))
    model.initialise(rows)
    return model, rows


def first_batch(model: Trust, rows: Manifest, size: int = 8) -> dict[str, Any]:
    dataset = model.dataset(rows, train=True)
    return collate([dataset[i] for i in range(size)])


# ------------------------------------------------------------------------------------------ weights w
def test_weights_shape_range_single_sample_and_no_graph() -> None:
    image, text = torch.randn(6, 8, requires_grad=True), torch.randn(6, 8)
    w = uncertainty_weights(image, text)
    assert w.shape == (6,) and bool(((w > 0) & (w < 1)).all()) and not w.requires_grad
    assert torch.allclose(uncertainty_weights(image[:1], text[:1]), torch.ones(1))


def test_weights_are_permutation_equivariant() -> None:
    image, text = torch.randn(7, 8), torch.randn(7, 8)
    order = torch.randperm(7, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(uncertainty_weights(image[order], text[order]), uncertainty_weights(image, text)[order])


def test_a_better_matching_caption_raises_its_weight() -> None:
    image, text = F.normalize(torch.randn(5, 8), dim=-1), F.normalize(torch.randn(5, 8), dim=-1)
    better = text.clone()
    better[2] = F.normalize(text[2] + 2 * image[2], dim=-1)
    assert uncertainty_weights(image, better)[2] > uncertainty_weights(image, text)[2]


def test_weight_auroc_counts_ties_half_and_needs_both_kinds() -> None:
    assert weight_auroc(torch.tensor([0.9, 0.8, 0.1, 0.2]), torch.tensor([True, True, False, False])) == 1.0
    assert weight_auroc(torch.tensor([0.5, 0.5]), torch.tensor([True, False])) == 0.5
    assert weight_auroc(torch.tensor([0.5, 0.7]), torch.tensor([True, True])) is None


# ------------------------------------------------------------------------------------------ the losses
def test_weighted_ce_with_unit_weights_is_plain_ce_and_self_training_vanishes() -> None:
    logits, targets, ones = torch.randn(6, 4), torch.randint(4, (6,)), torch.ones(6)
    assert torch.allclose(weighted_cross_entropy(logits, targets, ones), F.cross_entropy(logits, targets))
    assert float(self_training_loss(torch.randn(6, 4), logits, ones)) == 0.0
    # divided by B, not by the sum of the weights (B.7.8)
    half = weighted_cross_entropy(logits, targets, ones / 2)
    assert torch.allclose(half, F.cross_entropy(logits, targets) / 2)


def _decoupled_nt_xent(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hand computation: two views of B samples; the other view is the positive and not in the denominator."""
    z = F.normalize(z, dim=-1)
    count, half = len(z), len(z) // 2
    losses = []
    for a in range(count):
        positive = (a + half) % count
        logits = [float(z[a] @ z[b]) / temperature for b in range(count)]
        denominator = sum(torch.exp(torch.tensor(logits[b])) for b in range(count) if b not in (a, positive))
        losses.append(-(logits[positive] - torch.log(denominator)))
    return torch.stack([torch.as_tensor(v) for v in losses]).mean()


def test_soft_contrastive_with_identity_similarity_is_decoupled_nt_xent() -> None:
    z = torch.randn(8, 5, generator=torch.Generator().manual_seed(0))
    loss = soft_contrastive_loss(z, torch.eye(4).repeat(2, 2), temperature=0.5, base_temperature=0.5, eps=0.0)
    assert torch.allclose(loss, _decoupled_nt_xent(z, 0.5).float(), atol=1e-5)


def test_soft_contrastive_is_scale_invariant_and_symmetric_in_the_views() -> None:
    z = torch.randn(8, 5)
    similarity = caption_similarity(torch.rand(4, 6)).repeat(2, 2)
    loss = soft_contrastive_loss(z, similarity)
    assert torch.allclose(loss, soft_contrastive_loss(3.0 * z, similarity), atol=1e-5)
    swapped = torch.cat([z[4:], z[:4]])
    assert torch.allclose(loss, soft_contrastive_loss(swapped, similarity), atol=1e-5)


def test_identical_captions_give_finite_gradients_into_z_and_none_into_the_captions() -> None:
    z = torch.randn(8, 5, requires_grad=True)
    u = torch.ones(4, 6, requires_grad=True)  # identical captions: S ≡ 1
    similarity = caption_similarity(u)
    assert torch.allclose(similarity, torch.ones(4, 4)) and not similarity.requires_grad
    soft_contrastive_loss(z, similarity.repeat(2, 2)).backward()
    assert z.grad is not None and bool(torch.isfinite(z.grad).all())
    z2 = torch.randn(8, 5, requires_grad=True)
    soft_contrastive_loss(z2, caption_similarity(torch.rand(4, 6)).repeat(2, 2)).backward()
    assert z2.grad is not None and float(z2.grad.abs().sum()) > 0 and u.grad is None


def test_caption_similarity_range_and_diagonal() -> None:
    similarity = caption_similarity(torch.rand(5, 7))
    assert bool(((similarity >= 0) & (similarity <= 1 + 1e-6)).all())
    assert torch.allclose(similarity.diagonal(), torch.ones(5))


def test_caption_cleaning() -> None:
    assert clean_caption("A cat! see http://x.io <b>2</b> @bob") == "a cat see"


# ------------------------------------------------------------------------------------------ the method
def test_text_classifier_and_clip_stay_frozen_through_a_step(tiny: Backbone, world: Path) -> None:
    model, rows = make(tiny, world)
    frozen = {name: p.detach().clone() for name, p in model.named_parameters() if not p.requires_grad}
    assert any(n.startswith("text_head.") for n in frozen) and any(n.startswith("backbone.") for n in frozen)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    batch = first_batch(model, rows)
    losses = model.loss(model(batch), batch)
    losses["loss"].backward()
    optimizer.step()
    assert {"source_ce", "target_ce", "self_training", "contrastive"} <= set(losses)
    for name, p in model.named_parameters():
        if name in frozen:
            assert torch.equal(p, frozen[name]) and p.grad is None, name


def test_pseudo_labels_are_deterministic(tiny: Backbone, world: Path) -> None:
    model, rows = make(tiny, world)
    model.train()  # dropout of the caption head must stay off
    texts = rows.column("text")[:6]
    assert torch.equal(model.caption_outputs(texts)[1], model.caption_outputs(texts)[1])


def test_no_training_path_reads_a_target_label(tiny: Backbone, world: Path, tmp_path: Path) -> None:
    """Target labels all replaced by an unknown name: class names, the caption classifier, the samples
    and a training step never see them."""
    with open(world, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["path"] = str(world.parent / row["path"])
        if row["domain"] == "target" and row["split"] == "train":
            row["label"] = "-1"
    path = tmp_path / "manifest.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    train_rows = load_manifest(path).split("train")
    cfg = TrustConfig(text_steps=5)
    names = Trust.class_names_from(train_rows, cfg)
    assert "-1" not in names and len(names) == 10
    model = Trust(cfg, tiny, names)
    model.initialise(train_rows)
    dataset = model.dataset(train_rows, train=True)
    sample = dataset[0]
    assert "target_label" not in sample and "source_label" in sample
    batch = collate([dataset[i] for i in range(4)])
    assert torch.isfinite(model.loss(model(batch), batch)["loss"])


def test_an_epoch_is_the_longer_domain_and_both_cycle(tiny: Backbone, world: Path) -> None:
    pairs = DomainPairs({"source": [{"index": i} for i in range(5)],  # type: ignore[dict-item]
                         "target": [{"index": i} for i in range(3)]})
    assert len(pairs) == 5
    assert [pairs[i]["target_index"] for i in range(5)] == [0, 1, 2, 0, 1]
    assert [pairs[i]["source_index"] for i in range(5)] == [0, 1, 2, 3, 4]
    model, rows = make(tiny, world)
    dataset = model.dataset(rows, train=True)
    assert isinstance(dataset, DomainPairs) and len(dataset) == max(dataset.sizes.values())


@pytest.mark.parametrize(("variant", "parts"), [("source-only", {"source_ce"}),
                                                ("lagtran", {"source_ce", "target_ce"}),
                                                ("lagtran+w", {"source_ce", "target_ce", "weight_mean"}),
                                                ("trust", {"source_ce", "target_ce", "self_training",
                                                           "contrastive", "weight_mean"})])
def test_variants_are_one_code_path(tiny: Backbone, world: Path, variant: str, parts: set[str]) -> None:
    model, rows = make(tiny, world, variant=variant)
    batch = first_batch(model, rows)
    assert set(model.loss(model(batch), batch)) == parts | {"loss"}


def test_released_no_grad_contrastive_is_a_constant(tiny: Backbone, world: Path) -> None:
    model, rows = make(tiny, world, contrastive_grad=False)
    batch = first_batch(model, rows)
    outputs = model(batch)
    assert not model.contrastive(outputs).requires_grad
    fixed, _ = make(tiny, world)
    assert fixed.contrastive(fixed(batch)).requires_grad


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"model\.variant"):
        TrustConfig(variant="fixmatch")
    with pytest.raises(ConfigError, match=r"data.source='a' and data.target='a'"):
        TrustConfig(data=TrustDataConfig(source="a", target="a"))


def test_missing_domain_is_a_manifest_error(tiny: Backbone, world: Path) -> None:
    rows = load_manifest(world).split("train")
    cfg = TrustConfig(text_steps=5, data=TrustDataConfig(target="clipart"))
    model = Trust(cfg, tiny, Trust.class_names_from(rows, cfg))
    with pytest.raises(ManifestError, match="target domain 'clipart'"):
        model.dataset(rows, train=True)


def test_preset_is_the_default(tmp_path: Path) -> None:
    cfg = build_run_config("trust", tmp_path / "m.csv")
    assert cfg.model.lambda_contrastive == 0.1 and cfg.train.epochs == 30


# ------------------------------------------------------------------------------------------ end to end
def test_train_writes_the_interface_metrics_and_resumes(world: Path, tmp_path: Path) -> None:
    run = train("trust", world, tmp_path / "run", backbone="tiny", overrides=FAST)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"top1", "pseudo_label_top1", "weight_auroc"} <= set(metrics)
    assert metrics["protocol"]["domain"] == "target" and metrics["protocol"]["task"] == "adapt"
    assert metrics["protocol"]["samples"] == len(load_manifest(world).split("test"))
    assert 0 <= metrics["pseudo_label_top1"] <= 100
    assert run.metrics["top1"] == metrics["top1"]
    history = read_history(tmp_path / "run" / "metrics.jsonl")
    assert any("val/top1" in h for h in history)  # checkpoint chosen on the source val split
    loaded = load_run(tmp_path / "run")  # the caption classifier comes back from the checkpoint
    texts = load_manifest(world).split("test").column("text")[:5]
    assert torch.equal(loaded.method.caption_outputs(texts)[1], run.method.caption_outputs(texts)[1])


def test_domains_are_set_on_the_command_line_as_data_keys(tmp_path: Path) -> None:
    cfg = build_run_config("trust", tmp_path / "m.csv", overrides=["data.source=real", "data.target=sketch"])
    assert (cfg.model.data.source, cfg.model.data.target) == ("real", "sketch")
    assert cfg.data == str(tmp_path / "m.csv")
