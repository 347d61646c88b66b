"""DiST: the invariants of spec A.8 (1-11), the released-checkpoint key map, presets and mixing."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import CLIPModel

from chronoclip.backbones import load_backbone
from chronoclip.backbones.clip import Backbone
from chronoclip.backbones.presets import clip_config
from chronoclip.backbones.tokenizer import builtin_tokenizer
from chronoclip.config import OptimConfig
from chronoclip.data.datasets import ManifestDataset
from chronoclip.data.manifest import Manifest, load_manifest
from chronoclip.data.mixup import MixConfig
from chronoclip.data.worlds import make_world
from chronoclip.engine.optim import build_optimizer, torch_param_groups
from chronoclip.engine.runs import build_run_config
from chronoclip.errors import ChronoclipError, ConfigError
from chronoclip.methods.dist import DiST, DiSTConfig
from chronoclip.methods.dist.branch import QuickGELU
from chronoclip.methods.dist.official import load_official_state, official_to_branch

NAMES = ["moving left", "moving right", "growing"]
SMALL = {"frames": 2, "integration_dim": 32, "temporal_dim": 8, "pooling_layers": 1}
PRESETS = Path(str(resources.files("chronoclip") / "configs" / "dist"))


@pytest.fixture(scope="module")
def tiny() -> Backbone:
    return load_backbone("tiny")


def make(backbone: Backbone, names: list[str] = NAMES, seed: int = 0, **overrides: Any) -> DiST:
    torch.manual_seed(seed)
    return DiST(DiSTConfig(**{**SMALL, **overrides}), backbone, names)


def clips(model: DiST, batch: int = 2, seed: int = 1) -> torch.Tensor:
    spec = model.sample_spec()
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, spec.frames, 3, spec.image_size, spec.image_size, generator=generator)


# ----------------------------------------------------------------------------------------------- 1, 2
def test_frozen_means_frozen(tiny: Backbone) -> None:
    model = make(tiny, head="linear").train()
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    batch = {"pixels": clips(model, 3), "label": torch.tensor([0, 1, 2])}
    model.loss(model(batch), batch)["loss"].backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith(("branch.", "head.")) for n, _ in trainable)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for _, p in trainable)
    # the only branch parameters that do not train: the released design's dead last integration→temporal map
    assert {n for n, p in model.branch.named_parameters() if not p.requires_grad} == \
        {f"layers.{len(model.layers) - 1}.to_temporal.weight", f"layers.{len(model.layers) - 1}.to_temporal.bias"}
    optimizer = build_optimizer(model.param_groups(), OptimConfig(lr=0.1))
    head_before = model.head.weight.clone()
    optimizer.step()
    assert not torch.equal(model.head.weight, head_before)
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.backbone.training  # the frozen tower stays in eval mode


def _tower(layers: int) -> Backbone:
    config = clip_config(image_size=32, patch_size=8, vision_width=64, vision_layers=layers, vision_heads=4,
                         text_width=64, text_layers=1, text_heads=4, context_length=16, projection=64)
    torch.manual_seed(0)
    return Backbone(CLIPModel(config), builtin_tokenizer(16), f"depth-{layers}").eval()


def _saved_bytes(model: DiST, pixels: torch.Tensor) -> int:
    saved: list[int] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved.append(tensor.numel() * tensor.element_size())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.loss(model({"pixels": pixels, "label": torch.tensor([0, 1])}), {"label": torch.tensor([0, 1])})
    return sum(saved)


def test_no_graph_through_clip_and_memory_does_not_grow_with_depth(tiny: Backbone) -> None:
    model = make(tiny).train()
    taps, last_cls = model.tower_taps(clips(model))
    assert all(not t.requires_grad and t.grad_fn is None for t in [*taps, last_cls])
    # what autograd stores for backward is the same for a 3- and a 6-block tower tapped at the same layer
    shallow, deep = (make(_tower(depth), layers=[1]).train() for depth in (3, 6))
    assert _saved_bytes(shallow, clips(shallow)) == _saved_bytes(deep, clips(deep)) > 0


def test_quick_gelu_matches_the_composite_and_keeps_only_its_input() -> None:
    x = torch.linspace(-6, 6, 101, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(QuickGELU(), (x,))
    reference = x * torch.sigmoid(1.702 * x)
    mine = QuickGELU()(x)
    assert torch.allclose(mine, reference)
    assert torch.allclose(torch.autograd.grad(mine.sum(), x)[0], torch.autograd.grad(reference.sum(), x)[0])
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        QuickGELU()(x)
    assert len(saved) == 1 and saved[0] is x


@pytest.mark.parametrize("recompute", ["integration", "layers"])
def test_checkpointed_branch_gives_the_same_loss_and_gradients_with_less_saved(tiny: Backbone, recompute: str
                                                                               ) -> None:
    plain, recomputed = (make(tiny, checkpoint_branch=mode).train() for mode in ("none", recompute))
    pixels = clips(plain)
    batch = {"pixels": pixels, "label": torch.tensor([0, 1])}
    losses = []
    for model in (plain, recomputed):
        loss = model.loss(model(batch), batch)["loss"]
        loss.backward()
        losses.append(loss.detach())
    assert torch.equal(losses[0], losses[1])
    grads = [{n: p.grad for n, p in m.named_parameters() if p.requires_grad} for m in (plain, recomputed)]
    assert grads[0].keys() == grads[1].keys()
    assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-6) for n in grads[0])
    # the tiny branch keeps 72 % (integration) / 56 % (layers) of what it keeps without recomputation
    assert _saved_bytes(recomputed, pixels) < (0.8 if recompute == "integration" else 0.6) * _saved_bytes(plain, pixels)
    with torch.no_grad():  # evaluation runs the layers once, without checkpoints
        assert torch.equal(plain(batch)["logits"], recomputed(batch)["logits"])


# ----------------------------------------------------------------------------------------------- 3
@pytest.mark.parametrize(("batch", "frames", "ratio"), [(1, 2, 2), (3, 3, 2), (2, 2, 3)])
def test_shapes(tiny: Backbone, batch: int, frames: int, ratio: int) -> None:
    model = make(tiny, frames=frames, temporal_ratio=ratio)
    seen: dict[str, tuple[int, ...]] = {}
    block = model.branch.layers[0].integration_block
    block.register_forward_hook(lambda m, args, out: seen.update(u=tuple(args[0].shape), r=tuple(out.shape)))
    pool = model.branch.pooling[0]
    pool.register_forward_hook(lambda m, args, out: seen.update(v=tuple(out[1].shape)))
    pixels = clips(model, batch)
    grid, tokens = tiny.grid_size, 1 + tiny.num_patches
    assert model.branch.temporal_stream(pixels).shape == (batch, 8, ratio * frames, grid, grid)
    embedding = model.embed(pixels)
    assert seen == {"u": (batch * frames, tokens, 32), "r": (batch * frames, tokens, 32), "v": (batch, 1, 32)}
    assert embedding.shape == (batch, tiny.embed_dim)
    assert model({"pixels": pixels})["logits"].shape == (batch, len(NAMES))
    with pytest.raises(ValueError, match=r"pixels must be \["):
        model.embed(pixels[:, :-1])


@pytest.fixture(scope="module")
def b16() -> Backbone:
    return load_backbone("clip-b16")


def _b16(backbone: Backbone, preset: str) -> DiST:
    cfg = build_run_config("dist", config=PRESETS / preset).model
    torch.manual_seed(0)
    return DiST(cfg, backbone, ["a", "b"])  # the class count does not size the text head


def test_b16_parameter_count(b16: Backbone) -> None:
    """A.8-9: the released B/16 configs' branch sizes (spec A.3: 26.105 M for K400, 19.0 M for SSv2)."""
    model = _b16(b16, "k400-b16-8f.yaml")
    branch = sum(p.numel() for p in model.branch.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert branch == pytest.approx(26.105e6, rel=1e-3)
    dead = model.branch.layers[-1].to_temporal  # frozen: the released forward never reads its output
    assert trainable == branch - sum(p.numel() for p in dead.parameters()) == 26_068_224
    ssv2 = _b16(b16, "ssv2-b16-8f.yaml")
    assert sum(p.numel() for p in ssv2.branch.parameters()) == pytest.approx(19.0e6, rel=1e-3)


def test_b16_branch_shapes(b16: Backbone) -> None:
    """A.8-3 at B/16 and 224²: the branch alone on random taps (no tower forward)."""
    model = _b16(b16, "k400-b16-8f.yaml")
    seen: dict[str, tuple[int, ...]] = {}
    model.branch.layers[-1].integration_block.register_forward_hook(
        lambda m, args, out: seen.update(u=tuple(args[0].shape), r=tuple(out.shape)))
    model.branch.pooling[-1].register_forward_hook(lambda m, args, out: seen.update(v=tuple(out[1].shape)))
    taps = [torch.randn(8, 197, 768) for _ in model.layers]
    dense = torch.randn(1, 16, 3, 224, 224)
    with torch.no_grad():
        assert model.branch.temporal_stream(dense).shape == (1, 96, 16, 14, 14)
        embedding = model.branch(taps, taps[-1][:, 0], dense)
    assert seen == {"u": (8, 197, 384), "r": (8, 197, 384), "v": (1, 1, 384)} and embedding.shape == (1, 512)


# ----------------------------------------------------------------------------------------------- 4
def test_sparse_frames_are_the_strided_dense_frames(tiny: Backbone, monkeypatch: pytest.MonkeyPatch) -> None:
    model = make(tiny, frames=3, temporal_ratio=2)
    dense = clips(model)
    seen = []
    original = tiny.image_tokens
    monkeypatch.setattr(tiny, "image_tokens", lambda pixels, layers: seen.append(pixels) or original(pixels, layers))
    model.embed(dense)
    assert len(seen) == 1 and torch.equal(seen[0], dense[:, [0, 2, 4]].flatten(0, 1))  # only T frames embedded


def test_exchange_maps_align_dense_and_sparse_frames_by_impulse(tiny: Backbone) -> None:
    ratio, frames = 3, 2
    layer = make(tiny, frames=frames, temporal_ratio=ratio).branch.layers[0]
    grid = tiny.grid_size
    with torch.no_grad():
        for p in (layer.to_integration.bias, layer.to_temporal.bias):
            p.normal_()  # a non-zero bias must not break the test: compare against the zero input
        zero_z = torch.zeros(1, 8, ratio * frames, grid, grid)
        base = layer.temporal_to_integration(zero_z)
        for dense_frame in range(ratio * frames):
            z = zero_z.clone()
            z[0, :, dense_frame, 1, 2] = 1.0
            changed = (layer.temporal_to_integration(z) - base).abs().sum(dim=(1, 2)) > 0   # per sparse slot
            assert changed.tolist() == [slot == dense_frame // ratio for slot in range(frames)]
        zero_m = torch.zeros(frames, 1 + tiny.num_patches, 32)
        base_z = layer.integration_to_temporal(zero_m)
        for slot in range(frames):
            m = zero_m.clone()
            m[slot, 5] = 1.0
            changed = (layer.integration_to_temporal(m) - base_z).abs().sum(dim=(0, 1, 3, 4)) > 0  # per dense frame
            assert changed.tolist() == [f // ratio == slot for f in range(ratio * frames)]


# ----------------------------------------------------------------------------------------------- 5
def test_kernels_are_centred_reversal_matters_and_frames_only_size_tokens(tiny: Backbone) -> None:
    model = make(tiny).eval()
    for module in model.branch.modules():
        if isinstance(module, torch.nn.Conv3d) and module.stride[0] == 1:
            assert module.padding[0] == module.kernel_size[0] // 2
    pixels = clips(model)
    with torch.no_grad():
        assert not torch.allclose(model({"pixels": pixels})["logits"], model({"pixels": pixels.flip(1)})["logits"])
    counts = {}
    for frames in (2, 4):
        branch = make(tiny, frames=frames).branch
        per_frame = sum(p.numel() for n, p in branch.named_parameters() if n.endswith(("frame_cls", "time_pos")))
        counts[frames] = (sum(p.numel() for p in branch.parameters()) - per_frame, per_frame)
    assert counts[2][0] == counts[4][0] and counts[4][1] == 2 * counts[2][1]


# ----------------------------------------------------------------------------------------------- 6, 7
def _zero_video_path(model: DiST) -> None:
    """Spec A.8-6 by hand: the initial video query and every temporal cross-attention's out-projection
    and MLP output layer are zero."""
    with torch.no_grad():
        model.branch.video_query.zero_()
        for pool in model.branch.pooling:
            for module in (pool.video_attn.attn.out_proj, pool.video_mlp.proj):
                module.weight.zero_()
                module.bias.zero_()


def _shuffle_sparse_slots(dense: torch.Tensor, ratio: int, order: list[int]) -> torch.Tensor:
    batch, total = dense.shape[:2]
    grouped = dense.view(batch, total // ratio, ratio, *dense.shape[2:])
    return grouped[:, order].flatten(1, 2)


def test_spatial_only_reduction_is_frame_order_invariant(tiny: Backbone) -> None:
    by_hand = make(tiny, frames=3, pooling_layers=2).eval()
    _zero_video_path(by_hand)
    configured = make(tiny, frames=3, pooling_layers=2, ablation="spatial-only").eval()
    assert {n for n, p in configured.named_parameters() if p.requires_grad} == \
        {"branch.skip.weight", "branch.skip.bias", "branch.norm_post.weight", "branch.norm_post.bias", "branch.proj"}
    dense = clips(by_hand)
    shuffled = _shuffle_sparse_slots(dense, 2, [2, 0, 1])
    noisy = dense.clone()
    noisy[:, 1::2] = torch.randn_like(noisy[:, 1::2])  # the dense-only frames: the temporal encoder's alone
    with torch.no_grad():
        for model in (by_hand, configured):
            reference = model.embed(dense)
            assert torch.allclose(model.embed(shuffled), reference, atol=1e-5)
            assert torch.allclose(model.embed(noisy), reference, atol=1e-5)
            cls = tiny.image_tokens(dense[:, ::2].flatten(0, 1), [-1])[-1][:, 0].view(2, 3, -1).mean(1)
            branch = model.branch
            assert torch.allclose(reference, branch.norm_post(branch.skip(cls)) @ branch.proj, atol=1e-5)
        control = make(tiny, frames=3, pooling_layers=2).eval()
        assert not torch.allclose(control.embed(shuffled), control.embed(dense), atol=1e-4)


def test_temporal_encoder_ablation_ignores_dense_only_frames(tiny: Backbone) -> None:
    ablated = make(tiny, ablation="no-temporal-encoder").eval()
    control = make(tiny).eval()
    dense = clips(ablated)
    perturbed = dense.clone()
    perturbed[:, 1::2] += torch.randn_like(perturbed[:, 1::2])
    with torch.no_grad():
        assert torch.allclose(ablated.embed(perturbed), ablated.embed(dense), atol=1e-6)
        assert not torch.allclose(control.embed(perturbed), control.embed(dense), atol=1e-4)
    frozen = {n for n, p in ablated.branch.named_parameters() if not p.requires_grad}
    assert "temporal_stem.weight" in frozen and "layers.0.to_integration.weight" in frozen
    assert "layers.0.tap_proj.weight" not in frozen


# ----------------------------------------------------------------------------------------------- 8
def test_classifier_is_scaled_cosine_to_cached_bare_name_embeddings(tiny: Backbone,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    model = make(tiny).eval()
    reversed_model = make(tiny, names=NAMES[::-1]).eval()
    reversed_model.branch.load_state_dict(model.branch.state_dict())
    calls = []
    monkeypatch.setattr(tiny, "encode_text", lambda *a, **k: calls.append(a))
    pixels = clips(model)
    with torch.no_grad():
        logits = model({"pixels": pixels})["logits"]
        embedding = torch.nn.functional.normalize(model.embed(pixels), dim=-1)
        assert torch.allclose(reversed_model({"pixels": pixels})["logits"], logits.flip(1), atol=1e-5)
    monkeypatch.undo()
    assert calls == []  # the text tower never runs in forward
    with torch.no_grad():
        text = tiny.encode_text(NAMES, normalize=True)  # the bare names, no prompt template
    assert torch.allclose(logits, 100.0 * embedding @ text.T, atol=1e-4)
    assert "text_features" not in model.state_dict()  # recomputed from the backbone, never checkpointed


# ----------------------------------------------------------------------------------------------- 10
def test_optimizer_groups(tiny: Backbone) -> None:
    model = make(tiny, head="linear", lr_mult=10.0)
    optim = OptimConfig(lr=3.2e-5, weight_decay=1e-4)
    groups = torch_param_groups(model.param_groups(), optim)
    members = [id(p) for g in groups for p in g["params"]]  # type: ignore[attr-defined]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert len(members) == len(set(members)) and set(members) == trainable
    assert not trainable & {id(p) for p in model.backbone.parameters()}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in groups:
        assert group["lr"] == pytest.approx(3.2e-4)
        for p in group["params"]:  # type: ignore[attr-defined]
            no_decay = p.ndim <= 1 or names[id(p)].endswith(("frame_cls", "time_pos", "frame_query", "video_query"))
            assert group["weight_decay"] == (0.0 if no_decay else 1e-4), names[id(p)]


def test_the_end_to_end_baseline_trains_the_tower_at_the_base_lr(tiny: Backbone) -> None:
    """``model.tower=end-to-end`` (the cost baseline of spec A.3): gradients reach the tower's blocks, whose
    parameters form their own group at ``optim.lr`` (no ``lr_mult``); the branch groups are DiST's."""
    model = make(tiny, head="linear", lr_mult=10.0, tower="end-to-end").train()
    batch = {"pixels": clips(model, 2), "label": torch.tensor([0, 1])}
    model.loss(model(batch), batch)["loss"].backward()
    blocks = list(model.backbone.vision.encoder.parameters())
    assert blocks and all(p.grad is not None and p.grad.abs().sum() > 0 for p in blocks)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)  # no unused trainable parameter
    groups = torch_param_groups(model.param_groups(), OptimConfig(lr=3.2e-5))
    members = {g["name"].split("/")[0]: set() for g in groups}  # type: ignore[union-attr]
    for g in groups:
        members[g["name"].split("/")[0]] |= {id(p) for p in g["params"]}  # type: ignore[union-attr,attr-defined]
        assert g["lr"] == pytest.approx(3.2e-5 if g["name"].startswith("tower/") else 3.2e-4)  # type: ignore[union-attr]
    tower = {id(p) for p in model.backbone.parameters() if p.requires_grad}
    assert members.pop("tower") == tower and not tower & set().union(*members.values())


# ----------------------------------------------------------------------------------------------- 11
def test_view_sampling_is_deterministic_distinct_and_monotone(tiny: Backbone, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import chronoclip.io.video as video

    manifest = load_manifest(make_world("motion", tmp_path, seed=0, n=1, frames=24, size=32))
    model = make(tiny, frames=3, eval_clips=3)
    spec = model.sample_spec()
    assert (spec.frames, spec.eval_sampling, spec.train_sampling) == (6, "segment", "random")
    read = video.read_video
    seen: list[list[int]] = []
    monkeypatch.setattr(video, "read_video", lambda *a, **k: seen.append(list((clip := read(*a, **k)).indices))
                        or clip)
    dataset = ManifestDataset(manifest, spec, manifest.labels, train=False)
    assert dataset[0]["pixels"].shape == (3, 6, 3, 32, 32)
    first, seen[:] = list(seen), []
    dataset[0]
    assert seen == first and len({tuple(v) for v in first}) == 3
    flat = [i for view in first for i in view]
    assert flat == sorted(flat) and flat[0] >= 0 and flat[-1] <= 23
    assert all(len(view) == 6 for view in first)


# ----------------------------------------------------------------------------------------------- official checkpoints
def _official_keys(layers: int, pools: int) -> list[str]:
    """The released ``model_state`` names of the branch (``models/module_zoo/branches/dist.py`` under
    ``model.backbone.base_encoder``)."""
    wb = (".weight", ".bias")
    keys = [f"temporal_stem{s}" for s in wb]
    for i in range(layers):
        keys += [f"input_linears.{i}{s}" for s in wb]
        keys += [f"integration2temporal_nets.{i}.linear_fuse{s}" for s in wb]
        keys += [f"temporal2integration_nets.{i}.linear_fuse{s}" for s in wb] + [
            f"temporal2integration_nets.{i}.cls_token"]
        keys += [f"temporal_nets.{i}.{m}{s}" for m in ("temporal_net.c_fc1", "temporal_net.c_fc2", "ln") for s in wb]
        keys += [f"integration_nets.{i}.{m}{s}" for m in ("ffn.c_fc", "ffn.c_proj", "temporal_ffn.c_fc1",
                                                          "temporal_ffn.c_fc2", "temporal_ffn.c_proj", "ln",
                                                          "ln_temporal") for s in wb]
    for p in range(pools):
        for attn in ("temporal_transformer", "spatial_transformer"):
            keys += [f"adapooling_nets.{p}.{attn}.attn.{n}" for n in ("in_proj_weight", "in_proj_bias",
                                                                       "out_proj.weight", "out_proj.bias")]
            keys += [f"adapooling_nets.{p}.{attn}.ln_1{s}" for s in wb]
        keys += [f"adapooling_nets.{p}.positional_embedding"]
        keys += [f"adapooling_nets.{p}.{m}{s}" for m in ("output_map_cls_token.c_fc", "output_map_cls_token.c_proj",
                                                         "ln_out_temp_cls_token", "output_map_spatial_cls_token.c_fc",
                                                         "output_map_spatial_cls_token.c_proj", "ln_out_spat_cls_token")
                 for s in wb]
    keys += [f"proj_spatial_cls_token{s}" for s in wb] + [f"ln_post{s}" for s in wb]
    keys += ["proj", "aggregated_cls_token", "aggregated_spatial_cls_token"]
    return ["backbone.base_encoder.dist_net." + k for k in keys]


def test_official_checkpoint_loads_by_key_map(tiny: Backbone, tmp_path: Path) -> None:
    model = make(tiny, pooling_layers=2)
    keys = _official_keys(len(model.layers), 2)
    names = official_to_branch(dict.fromkeys(keys, torch.zeros(1)))
    assert set(names) == set(model.branch.state_dict())  # every released tensor has a home, and vice versa
    shapes = model.branch.state_dict()
    generator = torch.Generator().manual_seed(3)
    released = {key: torch.randn(shapes[ours].shape, generator=generator) for key, ours in zip(keys, names,
                                                                                                strict=True)}
    released["backbone.base_encoder.visual.conv1.weight"] = torch.zeros(2)  # CLIP keys: ignored
    released["backbone.base_encoder.logit_scale"] = torch.zeros(())
    load_official_state(model, released)
    state = model.branch.state_dict()
    prefix = "backbone.base_encoder.dist_net."
    assert torch.equal(state["layers.1.tap_proj.weight"], released[prefix + "input_linears.1.weight"])
    assert torch.equal(state["video_query"], released[prefix + "aggregated_cls_token"])
    assert torch.equal(state["pooling.1.frame_attn.attn.in_proj_weight"],
                       released[prefix + "adapooling_nets.1.spatial_transformer.attn.in_proj_weight"])
    torch.save({"model_state": released, "epoch": 35}, tmp_path / "DiST.pyth")
    again = make(tiny, seed=9, pooling_layers=2, init_checkpoint=str(tmp_path / "DiST.pyth"))
    again.initialise(Manifest([], tmp_path))  # the released weights need no training rows
    assert all(torch.equal(again.branch.state_dict()[k], v) for k, v in state.items())
    with pytest.raises(ChronoclipError, match=r"model\.frames"):
        load_official_state(make(tiny, frames=3, pooling_layers=2), released)
    with pytest.raises(ChronoclipError, match="pooling_layers"):
        load_official_state(make(tiny, pooling_layers=1), released)
    with pytest.raises(ChronoclipError, match="no chronoclip counterpart"):
        official_to_branch({"model.dist_net.new_module.weight": torch.zeros(1)})


# ----------------------------------------------------------------------------------------------- config, mixing
def test_default_preset_and_config_errors() -> None:
    default = build_run_config("dist")
    assert default.model == build_run_config("dist", config=PRESETS / "motion.yaml").model
    k400 = build_run_config("dist", config="dist/k400-b16-8f.yaml").model  # a packaged recipe
    assert (k400.eval_clips, k400.checkpoint_branch) == (3, "integration")
    assert default.model.frames * default.model.temporal_ratio == 16  # the motion world's 16 frames
    with pytest.raises(ConfigError, match=r"model\.temporal_kernel"):
        build_run_config("dist", overrides=["model.temporal_kernel=2"])
    with pytest.raises(ConfigError, match=r"model\.head"):
        build_run_config("dist", overrides=["model.head=mlp"])
    with pytest.raises(ConfigError, match=r"model\.layers"):
        DiST(DiSTConfig(layers=[1, 9]), load_backbone("tiny"), NAMES)


def test_mixup_and_cutmix_mix_pixels_and_targets_alike(tiny: Backbone) -> None:
    pixels, labels = torch.rand(4, 4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    torch.manual_seed(0)
    mixed, targets = MixConfig(mixup_alpha=0.8, smoothing=0.1).mix(pixels, labels, 3)
    lam = (mixed[1] - pixels[2]) / (pixels[1] - pixels[2])  # sample 1 is mixed with sample 2 (reversed batch)
    assert torch.allclose(lam, lam.flatten()[0].expand_as(lam), atol=1e-4)  # one λ for the whole clip
    value = float(lam.flatten()[0])
    assert targets[1].tolist() == pytest.approx([0.1 / 3, value * 0.9 + 0.1 / 3, (1 - value) * 0.9 + 0.1 / 3])
    assert torch.allclose(targets.sum(-1), torch.ones(4))
    torch.manual_seed(0)
    cut, cut_targets = MixConfig(cutmix_alpha=1.0).mix(pixels, labels, 3)
    pasted = (cut[1] != pixels[1]).float().mean()
    assert torch.allclose(cut_targets[1, labels[2]], pasted, atol=1e-6)  # λ = the area actually kept
    assert torch.equal((cut[1] != pixels[1])[0], (cut[1] != pixels[1])[-1])  # the same box in every frame
    model = make(tiny, head="linear", mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1).train()
    batch = {"pixels": clips(model, 4), "label": labels}
    outputs = model(batch)
    assert outputs["targets"].shape == (4, 3) and torch.isfinite(model.loss(outputs, batch)["loss"])
    assert "targets" not in model.eval()(batch)
