"""CrissCross's downstream protocol (spec A.6): dense clips, clips per video, the pretrained encoder, the head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from chronoclip.backbones import load_backbone
from chronoclip.data.datasets import ManifestDataset, SampleSpec
from chronoclip.data.manifest import load_manifest, write_manifest
from chronoclip.data.worlds import make_world
from chronoclip.engine.runs import build_run_config, load_run, train
from chronoclip.errors import ConfigError
from chronoclip.io.writers import write_video
from chronoclip.methods.crisscross_finetune import CrissCrossFinetune, CrissCrossFinetuneConfig

LEVEL = 8  # frame i is uniformly grey at i * LEVEL, so decoded pixels give the frame number back
FRAMES = 30


@pytest.fixture(scope="module")
def counter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest of one 30-frame video (25 fps) whose frame i is grey level 8 i."""
    folder = tmp_path_factory.mktemp("counter")
    frames = np.repeat(np.arange(FRAMES, dtype=np.uint8)[:, None, None, None] * LEVEL, 32, 1).repeat(32, 2)
    write_video(folder / "count.mp4", frames.repeat(3, 3), 25)
    return write_manifest([{"path": folder / "count.mp4", "label": "a", "split": "train"}], folder / "manifest.csv")


def _frame_numbers(pixels: torch.Tensor) -> list[int]:
    """Frame numbers of an unnormalised-by-hand clip ``[T, 3, S, S]`` (mean 0, std 1 normalisation)."""
    return [round(float(frame.mean()) * 255 / LEVEL) for frame in pixels]


def _spec(**changes: object) -> SampleSpec:
    base = {"frames": 4, "image_size": 32, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0),
            "train_sampling": "dense", "eval_sampling": "dense", "stride": 2, "label": False}
    return SampleSpec(**{**base, **changes})  # type: ignore[arg-type]


def test_dense_clips_keep_the_stride_and_repeats_draw_new_clips(counter: Path) -> None:
    rows = load_manifest(counter)
    dataset = ManifestDataset(rows, _spec(), [], train=True, seed=0, repeats=5)
    assert len(dataset) == 5
    starts = []
    for draw in range(5):
        numbers = _frame_numbers(dataset[draw]["pixels"])
        assert np.diff(numbers).tolist() == [2, 2, 2] and dataset[draw]["index"] == 0
        starts.append(numbers[0])
    assert len(set(starts)) > 1  # each repeat is its own random clip
    assert len(list(dataset)) == 5  # iteration ends after the last draw
    with pytest.raises(IndexError, match="sample 5 of a data set of 5"):
        dataset[5]
    with pytest.raises(ConfigError, match="repeats"):
        ManifestDataset(rows, _spec(), [], train=False, repeats=2)


def test_dense_test_clips_are_centred_in_even_segments(counter: Path) -> None:
    dataset = ManifestDataset(load_manifest(counter), _spec(eval_clips=3), [], train=False)
    clips = [_frame_numbers(view) for view in dataset[0]["pixels"]]
    # 30 frames in 3 windows of 10; a 7-frame span centred in each starts 1 frame in
    assert clips == [[1, 3, 5, 7], [11, 13, 15, 17], [21, 23, 25, 27]]
    assert torch.equal(dataset[0]["pixels"], dataset[0]["pixels"])


def _tiny(**changes: object) -> CrissCrossFinetuneConfig:
    return CrissCrossFinetuneConfig(**{"video_width": 4, "image_size": 16, "frames": 4, "stride": 1,
                                       **changes})  # type: ignore[arg-type]


def test_head_is_orthogonal_with_zero_bias_and_pools_as_configured() -> None:
    torch.manual_seed(0)
    model = CrissCrossFinetune(_tiny(), load_backbone("tiny"), ["a", "b", "c"]).eval()
    weight = model.head.weight
    assert torch.allclose(weight @ weight.T, torch.eye(3), atol=1e-5) and not model.head.bias.any()
    clip = torch.randn(2, 4, 3, 16, 16)
    with torch.no_grad():
        feature_map = model.video_net.feature_map(clip)
        assert torch.allclose(model({"pixels": clip})["logits"], model.head(feature_map.amax(dim=(2, 3, 4))))
        model.cfg.pool = "avg"
        assert torch.allclose(model({"pixels": clip})["logits"], model.head(feature_map.mean(dim=(2, 3, 4))))
    with pytest.raises(ConfigError, match="pool"):
        _tiny(pool="sum")


def test_init_takes_the_pretrained_video_encoder_and_refuses_other_runs(tmp_path: Path) -> None:
    world = make_world("audiovisual", tmp_path / "av", seed=0, n=6, duration=3.0, size=16)
    pretrain = ["train.epochs=1", "train.batch_size=8", "train.log_every=1000", "train.eval_every=0",
                "model.video_width=4", "model.audio_width=4", "model.proj_dim=16", "model.proj_hidden=16",
                "model.pred_hidden=8", "model.frames=4", "model.fps=8", "model.image_size=16",
                "model.audio_seconds=1.0", "model.eval_clips=1"]
    run = train("crisscross", world, tmp_path / "pre", backbone="tiny", overrides=pretrain)
    model = CrissCrossFinetune(_tiny(init=str(tmp_path / "pre")), load_backbone("tiny"), ["a", "b"])
    pretrained = run.method.video_net.state_dict()  # type: ignore[union-attr]
    assert not all(torch.equal(value, pretrained[key]) for key, value in model.video_net.state_dict().items())
    rows = load_manifest(world)
    model.initialise(rows)
    assert all(torch.equal(value, pretrained[key]) for key, value in model.video_net.state_dict().items())
    assert all(p.requires_grad for p in model.video_net.parameters())
    with pytest.raises(ConfigError, match=r"set model\.video_width=4"):
        CrissCrossFinetune(_tiny(init=str(tmp_path / "pre"), video_width=8), load_backbone("tiny"),
                           ["a", "b"]).initialise(rows)
    tuned = train("crisscross-finetune", world, tmp_path / "tuned", backbone="tiny",
                  overrides=["train.epochs=1", "train.batch_size=8", "train.log_every=1000", "model.video_width=4",
                             "model.image_size=16", "model.frames=4", "model.stride=1", "model.eval_clips=1",
                             f"model.init={tmp_path / 'pre'}"])
    (tmp_path / "pre").rename(tmp_path / "moved")  # a finished run keeps its own weights: no init source needed
    reloaded = load_run(tuned.path)
    trained = tuned.method.state_dict()
    assert all(torch.equal(value, trained[key]) for key, value in reloaded.method.state_dict().items())
    probe = train("frame-probe", make_world("motion", tmp_path / "motion", seed=0, n=2, frames=8, size=32),
                  tmp_path / "probe", backbone="tiny",
                  overrides=["train.epochs=1", "train.batch_size=4", "model.frames=2"])
    with pytest.raises(ConfigError, match="crisscross run"):
        CrissCrossFinetune(_tiny(init=str(probe.path)), load_backbone("tiny"), ["a", "b"]).initialise(rows)


def test_the_packaged_presets_are_the_spec_recipes() -> None:
    ucf = build_run_config("crisscross-finetune", config="crisscross/finetune-ucf101-8f.yaml")
    hmdb = build_run_config("crisscross-finetune", config="crisscross/finetune-hmdb51-8f.yaml")
    for cfg in (ucf, hmdb):
        assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.momentum) == ("sgd", 5e-4, 0.0, 0.9)
        assert (cfg.schedule.name, cfg.schedule.warmup_epochs, cfg.schedule.milestones) == ("step", 2, [6, 10, 14])
        assert (cfg.train.epochs, cfg.train.batch_size, cfg.model.pool, cfg.model.image_size) == (20, 64, "max", 224)
        assert (cfg.model.train_clips, cfg.model.eval_clips, cfg.model.frames) == (10, 10, 8)
    assert (ucf.schedule.gamma, hmdb.schedule.gamma) == (0.3, 0.1)
