"""CrissCross's unit-testable invariants (spec A.10): shapes, the loss, stop-gradient, the sampler, param groups,
determinism; the AV data set's skips and fallbacks; LARC; the top-level ``sampler`` config section; the
collapse monitor; the ESC-50 layout through the importer and the audio fold probe; the CLI interface."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from chronoclip.backbones import load_backbone
from chronoclip.backbones.av import AudioResNet, R2Plus1D
from chronoclip.config import OptimConfig, ScheduleConfig
from chronoclip.data import av_augment
from chronoclip.data.av import AVDataset, AVSpec, mel_frames
from chronoclip.data.datasets import collate
from chronoclip.data.manifest import load_manifest, write_manifest
from chronoclip.data.sampling import SAMPLER_MODES, sample_pair, sample_window
from chronoclip.data.worlds import make_world
from chronoclip.engine.larc import apply_larc
from chronoclip.engine.optim import build_optimizer, build_scheduler
from chronoclip.engine.runs import build_run_config
from chronoclip.errors import ConfigError
from chronoclip.io.audio import MelConfig
from chronoclip.io.writers import write_video, write_wav
from chronoclip.methods.crisscross import (
    CrissCross,
    CrissCrossConfig,
    SamplerConfig,
    negative_cosine,
    pair_loss,
    projector,
)

#: A tiny model on the tiny world: 16 px frames at 8 fps, 1 s audio windows at 16 kHz.
TINY = {"video_width": 4, "audio_width": 4, "proj_dim": 16, "proj_hidden": 16, "pred_hidden": 8, "frames": 4,
        "fps": 8.0, "image_size": 16, "audio_seconds": 1.0, "eval_clips": 2}
TINY_OVERRIDES = [f"model.{key}={value}" for key, value in TINY.items()]


def tiny_model(**changes: object) -> CrissCross:
    torch.manual_seed(0)
    cfg = CrissCrossConfig(**{**TINY, **changes})  # type: ignore[arg-type]
    return CrissCross(cfg, load_backbone("tiny"), [f"c{i}" for i in range(8)])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world("audiovisual", tmp_path_factory.mktemp("av"), seed=0, n=6, duration=3.0, size=16)


def _rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------- shapes
def test_encoder_and_head_shapes_of_the_released_config() -> None:
    video, audio = R2Plus1D(64).eval(), AudioResNet(64).eval()
    with torch.no_grad():
        assert video.feature_map(torch.zeros(1, 8, 3, 112, 112)).shape == (1, 512, 1, 4, 4)
        assert video(torch.zeros(1, 8, 3, 112, 112)).shape == (1, 512)
        assert audio.feature_map(torch.zeros(1, 1, 80, 201)).shape == (1, 512, 3, 7)
        assert audio(torch.zeros(1, 1, 80, 201)).shape == (1, 512)
        head = projector(512, 2048, 2048, 3).eval()
        assert head(torch.zeros(2, 512)).shape == (2, 2048)
    assert mel_frames(AVSpec()) == 201 and AVSpec().mel.n_mels == 80


def test_two_seconds_of_audio_give_an_80_by_201_log_mel(world: Path) -> None:
    spec = AVSpec(frames=4, fps=8.0, image_size=16, augment="none")
    dataset = AVDataset(load_manifest(world).split("train"), spec, [], train=True)
    sample = dataset[0]
    assert sample["audio1"].shape == (1, 80, 201) and sample["video1"].shape == (4, 3, 16, 16)
    model = tiny_model(audio_seconds=2.0)
    outputs = model.train()(collate([dataset[0], dataset[1]]))
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {f"{k}_{m}{i}": (2, 16) for k in "zp" for m in "va"
                                                               for i in (1, 2)}


# ---------------------------------------------------------------------------------------------- loss
def test_negative_cosine_range_and_scale_invariance() -> None:
    p, z = torch.randn(64, 16), torch.randn(64, 16)
    value = negative_cosine(p, z)
    assert -1 <= float(value) <= 1
    assert float(negative_cosine(p, p)) == pytest.approx(-1.0)
    assert float(negative_cosine(p, -p)) == pytest.approx(1.0)
    assert float(negative_cosine(3.5 * p, 0.01 * z)) == pytest.approx(float(value), abs=1e-6)


def test_no_gradient_reaches_the_target_branch() -> None:
    p = torch.randn(8, 16, requires_grad=True)
    z = torch.randn(8, 16, requires_grad=True)
    negative_cosine(p, z).backward()
    assert z.grad is None and p.grad is not None and p.grad.abs().sum() > 0
    model = tiny_model()
    batch = {"video1": torch.randn(4, 4, 3, 16, 16), "video2": torch.randn(4, 4, 3, 16, 16),
             "audio1": torch.randn(4, 1, 80, 101), "audio2": torch.randn(4, 1, 80, 101)}
    outputs = model.train()(batch)
    negative_cosine(outputs["p_v1"], outputs["z_a1"]).backward()  # video predicts audio: audio is the target
    assert all(p.grad is None or not p.grad.any() for p in model.audio_net.parameters())
    assert any(p.grad is not None and p.grad.any() for p in model.video_net.parameters())  # type: ignore[union-attr]


def _outputs() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return {f"{kind}_{name}": torch.randn(8, 16) for kind in "zp" for name in ("v1", "v2", "a1", "a2")}


def test_pair_loss_is_symmetric() -> None:
    outputs = _outputs()
    for x, y in (("v1", "a2"), ("v1", "v2"), ("a1", "v2")):
        assert float(pair_loss(outputs, x, y)) == pytest.approx(float(pair_loss(outputs, y, x)), abs=1e-7)


@pytest.mark.parametrize(("groups", "pairs"), [
    ({}, ["v1-v2", "a1-a2", "v1-a1", "v2-a2", "v1-a2", "a1-v2"]),
    ({"loss_sync": False, "loss_async": False}, ["v1-v2", "a1-a2"]),
    ({"loss_async": False}, ["v1-v2", "a1-a2", "v1-a1", "v2-a2"]),
    ({"loss_intra": False, "loss_sync": False}, ["v1-a2", "a1-v2"]),
])
def test_total_is_the_mean_of_the_enabled_pairs(groups: dict[str, bool], pairs: list[str]) -> None:
    model, outputs = tiny_model(**groups), _outputs()
    every = model.pair_losses(outputs)
    expected = sum(float(every[name]) for name in pairs) / len(pairs)
    parts = model.loss(outputs, {})
    assert float(parts["loss"]) == pytest.approx(expected, abs=1e-6)
    assert set(parts) >= {"loss", "video.z_std", "audio.z_std"} and len(model.cfg.groups()) * 2 == len(pairs)


def test_async_equals_sync_when_both_time_points_coincide(world: Path) -> None:
    model = tiny_model(augment="none", sampler=SamplerConfig("none"))
    dataset = model.dataset(load_manifest(world).split("train"), train=True)
    batch = collate([dataset[i] for i in range(4)])
    assert torch.equal(batch["video1"], batch["video2"]) and torch.equal(batch["audio1"], batch["audio2"])
    with torch.no_grad():
        losses = model.eval().pair_losses(model(batch))
    assert float(losses["v1-a2"]) == float(losses["v1-a1"])
    assert float(losses["a1-v2"]) == float(losses["v2-a2"])


# ---------------------------------------------------------------------------------------------- sampler
def test_mild_shares_half_the_frames_and_one_second_of_audio(world: Path) -> None:
    for seed in range(20):
        pair = sample_pair(10.0, 0.5, 2.0, "mild", _rng(seed))
        assert pair.video_offset == pytest.approx(0.25) and pair.audio_offset == pytest.approx(1.0)
        first = set(np.floor((pair.first.video + np.arange(8) / 16) * 16 + 1e-6).astype(int))
        second = set(np.floor((pair.second.video + np.arange(8) / 16) * 16 + 1e-6).astype(int))
        assert len(first & second) == 4 and not pair.fallback
    # decoded: 4 frames at 8 fps, so clip 2 starts 2 frames after clip 1
    spec = AVSpec(frames=4, fps=8.0, image_size=16, audio_seconds=1.0, augment="none", mode="mild")
    sample = AVDataset(load_manifest(world).split("train"), spec, [], train=True)[0]
    assert torch.equal(sample["video1"][2:], sample["video2"][:2])
    assert sample["audio_offset"] == pytest.approx(0.5)


def test_medium_is_adjacent_far_is_half_the_clip_and_videos_lie_inside_their_audio() -> None:
    for seed in range(50):
        medium = sample_pair(10.0, 0.5, 2.0, "medium", _rng(seed))
        assert medium.second.video == pytest.approx(medium.first.video + 0.5)  # contiguous, 0 frames shared
        assert medium.second.audio == pytest.approx(medium.first.audio + 2.0)
        assert sample_pair(10.0, 0.5, 2.0, "far", _rng(seed)).video_offset >= 5.0 - 1e-9
        for mode in SAMPLER_MODES:
            pair = sample_pair(10.0, 0.5, 2.0, mode, _rng(seed))
            for window in (pair.first, pair.second):
                assert window.audio - 1e-9 <= window.video and window.video + 0.5 <= window.audio + 2.0 + 1e-9
                assert 0 <= window.audio <= 8.0 + 1e-9
    single = {round(sample_window(10.0, 0.5, 2.0, _rng(s))[0].video - sample_window(10.0, 0.5, 2.0, _rng(s))[0].audio,
                    3) for s in range(30)}
    assert len(single) > 10  # sync means containment: the video is not centred in its audio window


def test_short_clips_fall_back_explicitly() -> None:
    far = sample_pair(3.0, 0.5, 2.0, "far", _rng())
    assert far.fallback == "shrunk" and far.audio_offset == pytest.approx(1.0)  # the most that fits in 3 s
    mild = sample_pair(2.5, 0.5, 2.0, "mild", _rng())
    assert mild.fallback == "shrunk" and mild.audio_offset == pytest.approx(0.5)
    short = sample_pair(1.0, 0.5, 2.0, "mild", _rng())
    assert short.fallback == "short" and short.first.audio == 0.0
    assert not sample_pair(10.0, 0.5, 2.0, "far", _rng()).fallback
    with pytest.raises(ConfigError, match=r"sampler\.mode"):
        sample_pair(10.0, 0.5, 2.0, "overlapped", _rng())


def test_sampling_is_reproducible_per_index_and_epoch(world: Path) -> None:
    assert sample_pair(10.0, 0.5, 2.0, "random", _rng(3)) == sample_pair(10.0, 0.5, 2.0, "random", _rng(3))
    spec = AVSpec(frames=4, fps=8.0, image_size=16, audio_seconds=1.0, mode="random")
    rows = load_manifest(world).split("train")
    first, again = AVDataset(rows, spec, [], train=True, seed=5), AVDataset(rows, spec, [], train=True, seed=5)
    a, b = first[1], again[1]
    assert torch.equal(a["video1"], b["video1"]) and torch.equal(a["audio2"], b["audio2"])
    assert a["audio_offset"] == b["audio_offset"]
    again.set_epoch(1)
    assert again[1]["audio_offset"] != a["audio_offset"]


def test_clips_without_sound_are_skipped_and_counted_or_filled_with_silence(world: Path, tmp_path: Path) -> None:
    rows = [dict(r) for r in load_manifest(world).split("train")][:2]
    silent = tmp_path / "silent.mp4"
    write_video(silent, np.zeros((24, 16, 16, 3), np.uint8), 8.0, codec="mpeg4")
    write_manifest([*rows, {**rows[0], "path": silent}], tmp_path / "m.csv")
    manifest = load_manifest(tmp_path / "m.csv")
    spec = AVSpec(frames=4, fps=8.0, image_size=16, audio_seconds=1.0)
    skipped = AVDataset(manifest, spec, [], train=True)
    assert len(skipped) == 2 and skipped.counts["skipped_no_audio"] == 1
    filled = AVDataset(manifest, replace(spec, missing_audio="silence"), [], train=False)
    assert len(filled) == 3 and filled.counts["silence_filled"] == 1
    silence = filled[2]["audio"]
    assert torch.allclose(silence, silence.flatten()[0].expand_as(silence))  # log(eps), normalised: constant


def test_a_short_clip_is_counted_as_a_fallback(world: Path) -> None:
    spec = AVSpec(frames=4, fps=8.0, image_size=16, audio_seconds=2.0, mode="medium", augment="none")
    dataset = AVDataset(load_manifest(world).split("train"), spec, [], train=True)  # 3 s clips, 2 + 2 s asked
    sample = dataset[0]
    assert sample["fallback"] == 1.0 and dataset.counts["shrunk"] == 1 and sample["audio_offset"] == 1.0


# ---------------------------------------------------------------------------------------------- optimisation
def test_param_groups_partition_the_model_and_predictors_keep_a_constant_lr() -> None:
    model = tiny_model()
    groups = model.param_groups()
    assert [g.name for g in groups] == ["video_encoder", "video_predictor", "audio_encoder", "audio_predictor"]
    ids = [id(p) for g in groups for p in g.params]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters() if p.requires_grad}
    assert not any(p.requires_grad for p in model.backbone.parameters())  # the unused CLIP stays frozen
    optimizer = build_optimizer(groups, OptimConfig(name="adam", lr=2e-4, weight_decay=1e-4, larc=True))
    scheduler = build_scheduler(optimizer, ScheduleConfig(warmup_epochs=2, min_lr_ratio=0.5), 5, 20)
    for _ in range(20):
        optimizer.step()
        scheduler.step()
        for group in optimizer.param_groups:
            if "predictor" in group["name"]:
                assert group["lr"] == pytest.approx(2e-3)
    encoders = [g["lr"] for g in optimizer.param_groups if "encoder" in g["name"]]
    assert encoders == pytest.approx([1e-4] * len(encoders))


def test_clip_image_tower_as_the_video_encoder() -> None:
    model = tiny_model(video_encoder="clip")
    size = model.backbone.image_size
    batch = {"video1": torch.randn(2, 4, 3, size, size), "video2": torch.randn(2, 4, 3, size, size),
             "audio1": torch.randn(2, 1, 80, 101), "audio2": torch.randn(2, 1, 80, 101)}
    assert model.train()(batch)["z_v1"].shape == (2, 16)
    tower = {id(p) for p in model.backbone.parameters() if p.requires_grad}
    assert tower and tower <= {id(p) for p in model.param_groups()[0].params}
    assert model.av_spec().mean == tuple(model.backbone.mean)


def test_larc_scales_gradients_folds_decay_and_restores_the_group() -> None:
    weight = torch.nn.Parameter(torch.ones(4, 4))
    weight.grad = torch.full((4, 4), 2.0)
    optimizer = apply_larc(torch.optim.SGD([{"params": [weight], "weight_decay": 0.1}], lr=1.0),
                           trust=1e-3, clip=True)
    w_norm, g_norm = 4.0, 8.0
    local = 1e-3 * w_norm / (g_norm + 0.1 * w_norm + 1e-8)
    optimizer.step()
    assert torch.allclose(weight, torch.full((4, 4), 1 - local * (2.0 + 0.1)))
    assert optimizer.param_groups[0]["weight_decay"] == 0.1 and optimizer.param_groups[0]["lr"] == 1.0
    tiny = torch.nn.Parameter(torch.ones(2))
    tiny.grad = torch.full((2,), 1e-9)  # a tiny gradient: the local rate would exceed the global lr
    clipped = apply_larc(torch.optim.SGD([tiny], lr=0.5), trust=1.0, clip=True)
    clipped.step()
    assert torch.allclose(tiny, torch.ones(2) - 0.5 * 1e-9)


# ---------------------------------------------------------------------------------------------- config, monitor
def test_sampler_section_is_accepted_at_the_top_level(tmp_path: Path) -> None:
    assert build_run_config("crisscross", overrides=["sampler.mode=medium"]).model.sampler.mode == "medium"
    assert build_run_config("crisscross", overrides=["model.sampler.mode=far"]).model.sampler.mode == "far"
    preset = tmp_path / "p.yaml"
    preset.write_text("sampler:\n  mode: none\nmodel:\n  video_width: 8\n")
    cfg = build_run_config("crisscross", config=preset, overrides=["sampler.mode=random"])
    assert cfg.model.sampler.mode == "random" and cfg.model.video_width == 8
    assert build_run_config("crisscross", config=preset).model.sampler.mode == "none"
    with pytest.raises(ConfigError, match=r"sampler\.mode='sideways'"):
        build_run_config("crisscross", overrides=["sampler.mode=sideways"])
    with pytest.raises(ConfigError, match="sampler"):
        build_run_config("frame-probe", overrides=["sampler.mode=mild"])  # not a section of other methods


def test_collapse_monitor_logs_the_std_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    model = tiny_model().train()
    healthy = {f"{k}_{m}": torch.randn(64, 16) for k in "zp" for m in ("v1", "v2", "a1", "a2")}
    parts = model.loss(healthy, {})
    assert float(parts["video.z_std"]) == pytest.approx(1 / math.sqrt(16), rel=0.25)
    collapsed = {**healthy, "z_a1": torch.ones(64, 16), "z_a2": torch.ones(64, 16)}
    with caplog.at_level(logging.WARNING, logger="chronoclip.methods.crisscross"):
        parts = model.loss(collapsed, {})
        model.loss(collapsed, {})
    assert float(parts["audio.z_std"]) == 0.0
    assert sum("audio embeddings may be collapsing" in r.getMessage() for r in caplog.records) == 1


# ---------------------------------------------------------------------------------------------- real formats, CLI
def _esc50_fixture(root: Path) -> None:
    """An ESC-50 layout: 2 classes (a low and a high tone in noise) × 5 folds × 2 clips of 1 s."""
    rng = np.random.default_rng(0)
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    time = np.arange(16000) / 16000
    for fold in range(1, 6):
        for target, (category, pitch) in enumerate((("dog", 300.0), ("rain", 2400.0))):
            for take in "AB":
                name = f"{fold}-{target}{take}-{category}.wav"
                wave = 0.3 * np.sin(2 * np.pi * pitch * time + rng.uniform(0, 6)) + rng.normal(0, 0.05, 16000)
                write_wav(root / "audio" / name, wave.astype(np.float32), 16000)
                lines.append(f"{name},{fold},{target},{category},False,{target}{fold},{take}")
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "esc50.csv").write_text("\n".join(lines) + "\n")


def test_esc50_layout_through_importer_and_fold_probe(tmp_path: Path) -> None:
    from chronoclip.data.formats import import_dataset
    from chronoclip.eval.av_probe import evaluate_audio_folds

    _esc50_fixture(tmp_path / "ESC-50")
    manifest = load_manifest(import_dataset("esc50", tmp_path / "ESC-50", tmp_path / "data"))
    model = tiny_model(audio_seconds=0.5)
    result = evaluate_audio_folds(model, manifest, crops=2)
    assert [row["fold"] for row in result["per_fold"]] == ["1", "2", "3", "4", "5"]
    assert result["protocol"]["samples"] == 40 and result["protocol"]["crops"] == 2  # 20 clips × 2 crops
    assert result["top1"] >= 90.0  # two tones are separable even by random conv features; chance is 50


def test_cli_train_then_probe_writes_per_modality_metrics(world: Path, tmp_path: Path) -> None:
    from chronoclip.cli import main

    out = tmp_path / "run"
    assert main(["train", "crisscross", "--data", str(world), "--out", str(out), "--backbone",
                 "tiny", "sampler.mode=mild", *TINY_OVERRIDES, "model.cache_media=true", "train.epochs=1",
                 "train.batch_size=8", "train.eval_every=0"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for modality in ("video", "audio"):
        assert 0 <= metrics[f"{modality}.probe_top1"] <= 100
        assert metrics[modality]["probe_top1"] == metrics[f"{modality}.probe_top1"]
    assert metrics["probe_top1"] == pytest.approx((metrics["video.probe_top1"] + metrics["audio.probe_top1"]) / 2)
    assert metrics["protocol"]["split"] == "test"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all({"video.z_std", "audio.z_std", "audio_offset"} <= set(r) for r in rows if "loss" in r)
    assert build_run_config("crisscross", config=out / "config.yaml").model.sampler.mode == "mild"

    from chronoclip.data.formats import import_dataset  # the run's audio encoder probed on ESC-50's folds

    _esc50_fixture(tmp_path / "ESC-50")
    esc50 = import_dataset("esc50", tmp_path / "ESC-50", tmp_path / "esc50")
    assert main(["eval", str(out), "--data", str(esc50), "--protocol", "audio-folds", "--crops", "2",
                 "--out", str(tmp_path / "folds")]) == 0
    folds = json.loads((tmp_path / "folds" / "metrics.json").read_text())
    assert len(folds["per_fold"]) == 5 and 0 <= folds["top1"] <= 100 and folds["protocol"]["crops"] == 2
    assert main(["eval", str(out), "--data", str(world), "--protocol", "nonsense"]) == 2


def test_light_augmentation_keeps_the_colour_that_strong_augmentation_may_change() -> None:
    red = torch.zeros(4, 3, 16, 16, dtype=torch.uint8)
    red[:, 0] = 200
    mean = torch.tensor(av_augment.IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(av_augment.IMAGENET_STD).view(3, 1, 1)

    def red_dominates(level: str, seed: int) -> bool:
        clip = av_augment.augment_video(red, 16, torch.Generator().manual_seed(seed), level=level) * std + mean
        channels = clip.mean(dim=(0, 2, 3))
        return bool(channels[0] > channels[1:].max() + 0.2)

    assert all(red_dominates("light", seed) for seed in range(40))
    assert not all(red_dominates("strong", seed) for seed in range(40))  # hue rotation and grayscale


def test_light_spectrogram_crop_keeps_every_bin_at_its_frequency() -> None:
    tone = torch.zeros(1, 40, 50)
    tone[:, 10] = 5.0  # one bright mel bin: a pure tone

    def peak_bin(along_frequency: bool, seed: int) -> int:
        out = av_augment.random_resize_crop_spectrogram(tone, torch.Generator().manual_seed(seed),
                                                        along_frequency=along_frequency)
        assert out.shape == tone.shape
        return int(out[0].mean(dim=1).argmax())

    assert {peak_bin(False, seed) for seed in range(20)} == {10}
    assert len({peak_bin(True, seed) for seed in range(20)}) > 1  # the released crop shifts the pitch


def test_bad_configs_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"model\.proj_layers"):
        CrissCrossConfig(proj_layers=4)
    with pytest.raises(ConfigError, match="enable at least one"):
        CrissCrossConfig(loss_intra=False, loss_sync=False, loss_async=False)
    with pytest.raises(ConfigError, match="audio window"):
        AVSpec(frames=64, fps=16.0, audio_seconds=2.0)
    with pytest.raises(ConfigError, match="missing_audio"):
        AVSpec(missing_audio="drop")
    with pytest.raises(ConfigError, match=r"model\.augment"):
        CrissCrossConfig(augment="medium")
    assert [build_run_config("crisscross", overrides=[f"model.augment={level}"]).model.augment
            for level in av_augment.AUGMENT_LEVELS] == list(av_augment.AUGMENT_LEVELS)  # none of them YAML-parsed
    assert MelConfig(normalize=True).num_frames(32000) == 201
