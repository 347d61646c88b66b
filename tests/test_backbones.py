"""Backbones: parity with transformers' CLIPModel, taps, token subsets, freezing, save/load offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import CLIPModel

from chronoclip.backbones import Backbone, list_presets, load_backbone
from chronoclip.errors import BackboneError

ATOL = 1e-5


@pytest.fixture(scope="module")
def tiny() -> Backbone:
    return load_backbone("tiny")


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_presets_listed() -> None:
    assert {"tiny", "clip-b32", "clip-b16", "clip-l14"} <= set(list_presets())


def test_image_and_text_parity_with_transformers(tiny: Backbone, pixels: torch.Tensor) -> None:
    with torch.no_grad():
        reference = tiny.model.get_image_features(pixel_values=pixels)
        reference = getattr(reference, "pooler_output", reference)
        torch.testing.assert_close(tiny.encode_image(pixels), reference, atol=ATOL, rtol=0)
        texts = ["a small red circle on the left", "an unknown xylophone", ""]
        tokens = tiny.tokenize(texts)
        text_reference = tiny.model.get_text_features(input_ids=tokens["input_ids"],
                                                      attention_mask=tokens["attention_mask"])
        text_reference = getattr(text_reference, "pooler_output", text_reference)
        torch.testing.assert_close(tiny.encode_text(texts), text_reference, atol=ATOL, rtol=0)


def test_taps_match_hidden_states_and_leave_the_embedding_unchanged(tiny: Backbone, pixels: torch.Tensor) -> None:
    with torch.no_grad():
        embedding, taps = tiny.image_features_and_tokens(pixels, layers=(0, 1, -1))
        hidden = tiny.vision(pixel_values=pixels, output_hidden_states=True).hidden_states
        torch.testing.assert_close(embedding, tiny.encode_image(pixels), atol=ATOL, rtol=0)
    assert set(taps) == {0, 1, -1}
    torch.testing.assert_close(taps[1], hidden[1], atol=ATOL, rtol=0)
    torch.testing.assert_close(taps[-1], hidden[tiny.num_layers], atol=ATOL, rtol=0)
    assert taps[0].shape == (3, 1 + tiny.num_patches, tiny.vision_width)
    with pytest.raises(ValueError, match="outside"):
        tiny.image_tokens(pixels, layers=(tiny.num_layers + 1,))


def test_keep_all_patches_equals_unmasked_and_subset_matches_a_manual_reference(
        tiny: Backbone, pixels: torch.Tensor) -> None:
    every = torch.arange(tiny.num_patches).expand(3, -1)
    with torch.no_grad():
        torch.testing.assert_close(tiny.encode_image(pixels, keep=every), tiny.encode_image(pixels), atol=ATOL, rtol=0)
        keep = torch.stack([torch.randperm(tiny.num_patches, generator=torch.Generator().manual_seed(i))[:7]
                            for i in range(3)])
        tokens = tiny.vision.embeddings(pixels)  # position embeddings included
        kept = torch.stack([torch.cat([tokens[b, :1], tokens[b, 1:][keep[b]]]) for b in range(3)])
        states = tiny.vision.pre_layrnorm(kept)
        for block in tiny.vision.encoder.layers:
            states = block(states, None)
        manual = tiny.model.visual_projection(tiny.vision.post_layernorm(states[:, 0]))
        torch.testing.assert_close(tiny.encode_image(pixels, keep=keep), manual, atol=ATOL, rtol=0)
        assert not torch.allclose(manual, tiny.encode_image(pixels), atol=1e-3)


def test_video_frames_are_folded_into_the_batch(tiny: Backbone) -> None:
    video = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        frames = tiny.encode_video_frames(video)
        torch.testing.assert_close(frames[1, 2], tiny.encode_image(video[1, 2:3])[0], atol=ATOL, rtol=0)
    assert frames.shape == (2, 4, tiny.embed_dim)


def test_tokenizer_reports_truncation_and_handles_any_text(tiny: Backbone) -> None:
    long = " ".join(["circle"] * 100)
    tokens = tiny.tokenize(["a red circle", long, "ünïcödé ✓"])
    assert tokens["input_ids"].shape == (3, tiny.text_context_length)
    assert tokens["num_truncated"] == 1
    with pytest.raises(TypeError):
        tiny.tokenize("one string")  # type: ignore[arg-type]


def _trainable_text_blocks(backbone: Backbone) -> int:
    return sum(any(p.requires_grad for p in block.parameters()) for block in backbone.text.encoder.layers)


def test_freeze_modes() -> None:
    backbone = load_backbone("tiny")
    backbone.freeze(image=True, text="all")
    assert not any(p.requires_grad for p in backbone.parameters())
    backbone.freeze(image=False, text="all-but-last-k", k=1)
    assert all(p.requires_grad for p in backbone.vision.parameters())
    assert _trainable_text_blocks(backbone) == 1
    assert not backbone.text.embeddings.token_embedding.weight.requires_grad
    assert backbone.model.text_projection.weight.requires_grad
    backbone.freeze(image=True, text="none")
    assert _trainable_text_blocks(backbone) == 2 and not any(p.requires_grad for p in backbone.vision.parameters())
    backbone.freeze(image=True, text="all")
    pixels = torch.randn(1, 3, 32, 32, requires_grad=True)
    backbone.encode_image(pixels).sum().backward()
    assert all(p.grad is None for p in backbone.parameters())
    with pytest.raises(ValueError):
        backbone.freeze(text="some")


def test_presets_are_deterministic_and_fingerprints_track_weights() -> None:
    first, second = load_backbone("tiny"), load_backbone("tiny")
    assert first.fingerprint() == second.fingerprint()
    with torch.no_grad():
        second.model.visual_projection.weight[0, 0] += 1e-3
    assert first.fingerprint() != second.fingerprint()


def test_save_and_reload_offline(tmp_path: Path, tiny: Backbone, pixels: torch.Tensor,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tiny.save(tmp_path / "tiny-saved")
    reloaded = load_backbone(folder)
    with torch.no_grad():
        torch.testing.assert_close(reloaded.encode_image(pixels), tiny.encode_image(pixels), atol=0, rtol=0)
        # the reloaded text tower may pick another attention kernel: equal to float rounding
        torch.testing.assert_close(reloaded.encode_text(["a red circle"]), tiny.encode_text(["a red circle"]),
                                   atol=ATOL, rtol=0)
    assert reloaded.fingerprint() == tiny.fingerprint()
    assert isinstance(CLIPModel.from_pretrained(folder, local_files_only=True), CLIPModel)


def test_incomplete_folder_unknown_spec_and_offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "config.json").write_text("{}")
    with pytest.raises(BackboneError, match=r"missing model\.safetensors .*tokenizer\.json"):
        load_backbone(tmp_path / "partial")
    with pytest.raises(BackboneError, match="unknown backbone 'tinny'"):
        load_backbone("tinny")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneError, match=r"offline.*config\.json"):
        load_backbone("openai/clip-vit-base-patch16")


def test_clip_b16_vision_tower_size() -> None:
    backbone = load_backbone("clip-b16")
    vision = sum(p.numel() for p in backbone.vision.parameters())
    assert vision == 85_799_424  # ViT-B/16 image transformer incl. pre/post LayerNorm, without the projection
    assert backbone.num_patches == 196 and backbone.embed_dim == 512
