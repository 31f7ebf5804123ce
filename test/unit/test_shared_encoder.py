"""space_clip_ros.shared: depth from the hidden states a host encoder computes in its own call.

For every host family (open_clip CLIP and its .visual, open_clip's SigLIP layout, a timm ViT,
transformers CLIPVisionModel / SiglipVisionModel) a tiny tower with random weights serves as
the host, and a standalone SpaceClip holding the same tower weights gives the reference depth:
the host's output must be bit-identical with the tap attached, its blocks must run once per
call, and the tap's depth must equal the standalone model's on the same image.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
import yaml

from space_clip_ros.errors import ConfigError, InputError, RuntimeFailure
from space_clip_ros.model import load_checkpoint
from space_clip_ros.model.encoder_record import record_of_backbone
from space_clip_ros.shared import attach
from testing import tiny_hosts as th

torch.set_num_threads(2)
REPO = Path(__file__).resolve().parents[2]
OPENAI = {"mean": (0.48145466, 0.4578275, 0.40821073), "std": (0.26862954, 0.26130258, 0.27577711)}


def normalised(model, images: torch.Tensor) -> torch.Tensor:
    """What the host is fed: the standalone model's own preprocessing of the same images."""
    return model.backbone.normalize(images)


def reference_depth(model, images: torch.Tensor, size) -> torch.Tensor:
    with torch.no_grad():
        return model(images, output_size=size)


def hook_state(module: torch.nn.Module) -> list:
    """Every hook dict of every submodule: what 'exactly as before' compares."""
    return [
        (name, dict(m._forward_hooks), dict(m._forward_pre_hooks))
        for name, m in module.named_modules()
    ]


class BlockCounter:
    """Counts each block's calls with pre-hooks of the test's own (removed at the end)."""

    def __init__(self, blocks) -> None:
        self.calls = [0] * len(blocks)
        self.handles = [
            b.register_forward_pre_hook(lambda m, a, i=i: self._count(i))
            for i, b in enumerate(blocks)
        ]

    def _count(self, i: int) -> None:
        self.calls[i] += 1

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


@pytest.fixture(scope="module")
def clip_case(tmp_path_factory):
    model = th.standalone(th.clip_config())
    return model, th.saved(model, tmp_path_factory.mktemp("clip") / "ckpt")


@pytest.fixture(scope="module")
def siglip_case(tmp_path_factory):
    model = th.standalone(th.siglip_config())
    return model, th.saved(model, tmp_path_factory.mktemp("siglip") / "ckpt")


def test_open_clip_host_is_untouched_runs_its_blocks_once_and_gives_the_standalone_depth(
    clip_case,
):
    model, ckpt = clip_case
    host = th.open_clip_host(model)
    images = torch.rand(3, 3, 64, 64)
    x = normalised(model, images)
    with torch.no_grad():
        before = host.encode_image(x)
    hooks_before, state_before = hook_state(host), host.state_dict()
    modes_before = [(m.training, p.requires_grad) for m in host.modules() for p in m.parameters()]

    tap = attach(host, ckpt, **OPENAI)
    counter = BlockCounter(host.visual.transformer.resblocks)
    with torch.no_grad():
        during = host.encode_image(x)
    assert counter.calls == [1, 1, 1, 1], "the host's own call runs each block once"
    depth = tap.depth(size=(48, 80))
    assert counter.calls == [1, 1, 1, 1], "depth() runs no block: no second pass"
    counter.remove()

    assert torch.equal(during, before), "the host's output is bit-identical with the tap"
    assert depth.shape == (3, 1, 48, 80) and depth.dtype == torch.float32
    torch.testing.assert_close(depth, reference_depth(model, images, (48, 80)), rtol=0, atol=1e-5)
    assert depth.std() > 0, "a depth that varies over the image, not a constant"
    with pytest.raises(InputError, match="no host call was captured"):
        tap.depth()  # one depth per host call: the capture was released

    tap.detach()
    with torch.no_grad():
        after = host.encode_image(x)
    assert torch.equal(after, before)
    assert hook_state(host) == hooks_before
    assert all(
        torch.equal(a, b) for a, b in zip(host.state_dict().values(), state_before.values())
    )
    assert modes_before == [
        (m.training, p.requires_grad) for m in host.modules() for p in m.parameters()
    ]
    with pytest.raises(RuntimeFailure, match="detached"):
        tap.depth()


def test_visual_tower_on_a_non_square_grid_with_gradients_enabled(tmp_path):
    """.visual as the host, a 64x96 input (4x6 grid), called without torch.no_grad()."""
    model = th.standalone(th.clip_config((64, 96)))
    ckpt = th.saved(model, tmp_path / "ckpt")
    host = th.open_clip_host(model).visual
    images = torch.rand(2, 3, 64, 96)
    with attach(host, ckpt, **OPENAI) as tap:
        features = host(normalised(model, images))  # grad mode on, as a training policy runs
        depth = tap.depth()
    assert features.requires_grad and not depth.requires_grad
    assert depth.shape == (2, 1, 64, 96), "by default the size of the host's input tensor"
    torch.testing.assert_close(depth, reference_depth(model, images, (64, 96)), rtol=0, atol=1e-5)


def test_timm_siglip_host(siglip_case):
    """No class token: every token is a patch; the global embedding is the attention pool."""
    model, ckpt = siglip_case
    host = th.timm_host(model)
    images = torch.rand(2, 3, 64, 64)
    x = normalised(model, images)
    with torch.no_grad():
        before = host(x)
    tap = attach(host, ckpt)  # timm's pretrained_cfg declares mean/std 0.5: checked
    assert tap.warnings == []
    counter = BlockCounter(host.blocks)
    with torch.no_grad():
        assert torch.equal(host(x), before)
    depth = tap.depth(size=(40, 56))
    assert counter.calls == [1] * 4
    counter.remove()
    torch.testing.assert_close(depth, reference_depth(model, images, (40, 56)), rtol=0, atol=1e-5)
    tap.detach()


def test_open_clip_siglip_layout_host(siglip_case):
    """open_clip's SigLIP models: CustomTextCLIP -> TimmModel -> timm trunk."""
    model, ckpt = siglip_case
    host = th.open_clip_siglip_host(model)
    images = torch.rand(2, 3, 64, 64)
    x = normalised(model, images)
    with torch.no_grad():
        before = host.encode_image(x)
    tap = attach(host, ckpt, mean=th.SIGLIP_MEAN, std=th.SIGLIP_STD)
    with torch.no_grad():
        assert torch.equal(host.encode_image(x), before)
    torch.testing.assert_close(
        tap.depth(size=(64, 64)), reference_depth(model, images, (64, 64)), rtol=0, atol=1e-5
    )
    tap.detach()


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_transformers_hosts(family, tmp_path):
    pytest.importorskip("transformers")
    model = th.standalone(th.clip_config() if family == "clip" else th.siglip_config())
    # the standalone tower takes the transformers model's weights, renamed
    host = th.hf_clip_host(model) if family == "clip" else th.hf_siglip_host(model)
    ckpt = th.saved(model, tmp_path / "ckpt")
    norm = OPENAI if family == "clip" else {"mean": th.SIGLIP_MEAN, "std": th.SIGLIP_STD}
    images = torch.rand(2, 3, 64, 64)
    x = normalised(model, images)
    with torch.no_grad():
        before = host(pixel_values=x).pooler_output
    tap = attach(host, ckpt, **norm)
    assert tap.warnings == [], "weights, activation and normalisation all match the record"
    counter = BlockCounter(host.encoder.layers)
    with torch.no_grad():
        during = host(pixel_values=x).pooler_output
    depth = tap.depth(size=(64, 64))
    assert counter.calls == [1] * 4
    counter.remove()
    assert torch.equal(during, before)
    # transformers' attention kernels against open_clip's / timm's: equal to fp32 rounding
    reference = reference_depth(model, images, (64, 64))
    torch.testing.assert_close(depth, reference, rtol=1e-5, atol=1e-4)
    tap.detach()


def test_autocast_and_a_bf16_host(clip_case):
    """Under autocast the tap decodes what the host computed, as the standalone model would; a
    host cast to bf16 is recognised as the training weights by the bf16 fingerprint."""
    model, ckpt = clip_case
    host = th.open_clip_host(model)
    images = torch.rand(2, 3, 64, 64)
    x = normalised(model, images)
    fp32 = reference_depth(model, images, (64, 64))
    with attach(host, ckpt, **OPENAI) as tap:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            host.encode_image(x)
            depth = tap.depth()
            reference = model(images)
    assert depth.dtype == torch.float32
    torch.testing.assert_close(depth, reference, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(depth, fp32, rtol=0.05, atol=0.1)

    host = host.to(torch.bfloat16)
    with attach(host, ckpt, **OPENAI) as tap:  # no weights mismatch: bf16 digest matches
        assert tap.warnings == []
        with torch.no_grad():
            host.encode_image(x.bfloat16())
        depth = tap.depth()
    assert depth.dtype == torch.float32
    torch.testing.assert_close(depth, fp32, rtol=0.05, atol=0.1)


@pytest.mark.slow
def test_torch_compile_of_the_host_aot_eager(clip_case):
    """Hooks attached before compiling are traced into the graph: the compiled host's output
    with the tap equals its output after detach() bit for bit (both differ from eager in the
    last bits: AOT decomposes attention), and the depth is the standalone model's. detach()
    flips the flag the compiled hooks are guarded on, so the host recompiles without them."""
    torch._dynamo.reset()  # no compiled code of an earlier test (without hooks) to reuse
    model, ckpt = clip_case
    host = th.open_clip_host(model)
    images = torch.rand(2, 3, 64, 64)
    x = normalised(model, images)
    with torch.no_grad():
        eager = host.encode_image(x)
    tap = attach(host, ckpt, **OPENAI)
    compiled = torch.compile(host.encode_image, backend="aot_eager")
    with torch.no_grad():
        with_tap = compiled(x)
    reference = reference_depth(model, images, (64, 64))
    torch.testing.assert_close(tap.depth(), reference, rtol=0, atol=1e-5)
    tap.detach()
    with torch.no_grad():
        without_tap = compiled(x)
    assert torch.equal(with_tap, without_tap)
    torch.testing.assert_close(with_tap, eager, rtol=1e-5, atol=1e-6)
    assert getattr(tap._local, "store", None) in (None, {}), "a detached tap captures nothing"


@pytest.mark.slow
def test_torch_compile_of_the_host_inductor(clip_case):
    """The default backend (inductor, C++ on the CPU): one tiny compile, tens of seconds."""
    torch._dynamo.reset()
    model, ckpt = clip_case
    host = th.open_clip_host(model)
    images = torch.rand(1, 3, 64, 64)
    x = normalised(model, images)
    with torch.no_grad():
        eager = host.encode_image(x)
    with attach(host, ckpt, **OPENAI) as tap:
        compiled = torch.compile(host.encode_image)
        with torch.no_grad():
            out = compiled(x)
        depth = tap.depth()
    torch.testing.assert_close(out, eager, rtol=1e-5, atol=1e-5)  # inductor fuses: not bitwise
    torch.testing.assert_close(depth, reference_depth(model, images, (64, 64)), rtol=0, atol=1e-4)


@pytest.mark.slow
def test_hooks_added_after_compiling_are_not_seen_and_depth_says_so(clip_case):
    """torch.compile does not guard on module hooks (skip_nnmodule_hook_guards): code compiled
    before attach() runs without them. depth() must say so, never return a stale depth."""
    torch._dynamo.reset()
    model, ckpt = clip_case
    host = th.open_clip_host(model)
    x = normalised(model, torch.rand(1, 3, 64, 64))
    compiled = torch.compile(host.visual, backend="aot_eager")
    with torch.no_grad():
        compiled(x)
    tap = attach(compiled, ckpt, **OPENAI)
    assert any("torch.compile wrapper" in w for w in tap.warnings)
    with torch.no_grad():
        compiled(x)
    with pytest.raises(InputError, match="attach first, then compile"):
        tap.depth()
    torch.compiler.reset()  # the documented fix: the next call recompiles, hooks included
    with torch.no_grad():
        compiled(x)
    assert tap.depth().shape == (1, 1, 64, 64)
    tap.detach()
    torch.compiler.reset()


def test_each_thread_gets_the_depth_of_its_own_host_call(clip_case):
    model, ckpt = clip_case
    host = th.open_clip_host(model)
    images = [torch.rand(1, 3, 64, 64), torch.rand(2, 3, 64, 64)]
    barrier = threading.Barrier(2)
    results: dict[int, torch.Tensor] = {}
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            with torch.no_grad():
                host.encode_image(normalised(model, images[i]))
            barrier.wait(timeout=120)  # both calls done before either depth()
            results[i] = tap.depth()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    with attach(host, ckpt, **OPENAI) as tap:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    assert not errors, errors
    for i in range(2):
        expected = reference_depth(model, images[i], (64, 64))
        torch.testing.assert_close(results[i], expected, rtol=0, atol=1e-5)


def test_a_call_that_stops_early_is_named(siglip_case):
    model, ckpt = siglip_case
    host = th.timm_host(model)
    x = normalised(model, torch.rand(1, 3, 64, 64))
    with attach(host, ckpt) as tap:
        with torch.no_grad():
            host.forward_intermediates(x, indices=[1], stop_early=True, intermediates_only=True)
        with pytest.raises(InputError, match=r"did not run hidden state\(s\) \[3, 4\]"):
            tap.depth()


def test_architecture_differences_are_refused(clip_case, siglip_case, tmp_path):
    clip_model, clip_ckpt = clip_case
    _, siglip_ckpt = siglip_case
    siglip_host = th.timm_host(th.standalone(th.siglip_config()))
    with pytest.raises(
        ConfigError, match=r"encoder_record.prefix_tokens: the decoder was trained"
    ):
        attach(siglip_host, clip_ckpt)
    with pytest.raises(ConfigError, match=r"encoder_record.prefix_tokens"):
        attach(th.open_clip_host(clip_model), siglip_ckpt, **OPENAI)
    import open_clip

    wide = open_clip.model.CLIP(
        embed_dim=16,
        vision_cfg={
            "image_size": 64,
            "layers": 4,
            "width": 64,
            "head_width": 16,
            "patch_size": 16,
        },
        text_cfg=th.TINY_OPEN_CLIP_CFG["text_cfg"],
    )
    with pytest.raises(ConfigError) as refused:
        attach(wide, clip_ckpt, accept=("weights", "activation", "normalization", "grid"))
    message = str(refused.value)
    assert f"{clip_ckpt / 'config.yaml'}: encoder_record.width" in message
    assert "has 64" in message and "Fix: attach the checkpoint to the encoder" in message


def test_weights_activation_normalisation_and_grid_differences(clip_case, tmp_path, caplog):
    model, ckpt = clip_case
    other = th.open_clip_host(th.standalone(th.clip_config(), seed=9))
    with pytest.raises(
        ConfigError, match=r"encoder_record.weights: the host's weights \(float32\)"
    ):
        attach(other, ckpt, **OPENAI)
    with caplog.at_level(logging.WARNING, logger="space_clip_ros.shared"):
        tap = attach(other, ckpt, accept=("weights",), **OPENAI)
    assert "accepted: the depth may be wrong" in caplog.text and len(tap.warnings) == 1
    tap.detach()

    quick = th.open_clip_host(model, quick_gelu=True)
    with pytest.raises(ConfigError, match="compute quick_gelu, the decoder was trained on gelu"):
        attach(quick, ckpt, **OPENAI)
    host = th.open_clip_host(model)
    with pytest.raises(ConfigError, match=r"encoder_record.mean/std: the host normalises with"):
        attach(host, ckpt, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    tap = attach(host, ckpt)  # a hand-built open_clip model declares no normalisation
    assert any("normalisation is not known" in w for w in tap.warnings)
    tap.detach()
    with pytest.raises(ConfigError, match=r"field 'accept'|accept: \['everything'\] cannot"):
        attach(host, ckpt, accept=("everything",))

    wide_grid = th.open_clip_host(th.standalone(th.clip_config((64, 96))))
    with pytest.raises(
        ConfigError, match=r"encoder_record.grid: the decoder was trained on a \[4, 4\]"
    ):
        attach(wide_grid, ckpt, accept=("weights",), **OPENAI)


def test_a_host_running_another_grid_than_attach_saw(tmp_path):
    """transformers towers can interpolate positions per call: the grid is checked per call."""
    pytest.importorskip("transformers")
    model = th.standalone(th.clip_config())
    host = th.hf_clip_host(model)
    ckpt = th.saved(model, tmp_path / "ckpt")
    x = torch.rand(1, 3, 64, 96)
    with attach(host, ckpt, **OPENAI) as tap:
        with torch.no_grad():
            host(pixel_values=x, interpolate_pos_encoding=True)
        with pytest.raises(InputError, match=r"ran on a \[4, 6\] patch grid.*trained on \[4, 4\]"):
            tap.depth()
    with attach(host, ckpt, accept=("grid",), **OPENAI) as tap:
        with torch.no_grad():
            host(pixel_values=x, interpolate_pos_encoding=True)
        assert tap.depth().shape == (1, 1, 64, 96)


def test_a_checkpoint_without_a_record_attaches_with_what_it_can_check(clip_case, tmp_path):
    model, ckpt = clip_case
    old = tmp_path / "old"
    old.mkdir()
    (old / "decoder.safetensors").write_bytes((ckpt / "decoder.safetensors").read_bytes())
    config = yaml.safe_load((ckpt / "config.yaml").read_text())
    del config["encoder_record"]
    (old / "config.yaml").write_text(yaml.safe_dump(config))
    host = th.open_clip_host(model)
    with attach(host, old, **OPENAI) as tap:
        warning = " ".join(tap.warnings)
        assert "has no encoder_record" in warning
        assert "weights, activation, pooling, normalisation could not be checked" in warning
        with torch.no_grad():
            host.encode_image(normalised(model, torch.rand(1, 3, 64, 64)))
        assert torch.isfinite(tap.depth()).all()
    grid = th.open_clip_host(th.standalone(th.clip_config((64, 96))))
    with pytest.raises(
        ConfigError, match=r"backbone.input_size: the decoder was trained on a \[4, 4\]"
    ):
        attach(grid, old)


def test_unsupported_encoders_are_named():
    with pytest.raises(ConfigError, match="encoder: torch.nn.modules.linear.Linear is not an"):
        attach(torch.nn.Linear(3, 3), "unused")
    with pytest.raises(ConfigError, match="encoder: is a str, not a torch module"):
        attach("ViT-B-16", "unused")


def test_the_record_of_an_attached_host_is_the_standalone_tower_s(clip_case):
    """Saving measures the tower; a model loaded from the checkpoint keeps (re-saves) that
    record even when run with other tower weights: it says what the decoder was trained on."""
    model, ckpt = clip_case
    loaded = load_checkpoint(ckpt)
    assert loaded.config.encoder_record == record_of_backbone(model.backbone)
    record = loaded.config.encoder_record
    assert (record.width, record.layers, record.grid, record.prefix_tokens) == (32, 4, (4, 4), 1)
    assert (record.pooling, record.activation) == ("class_token", "gelu")


@pytest.mark.slow
def test_transformers_stays_optional(clip_case, tmp_path):
    """With transformers unimportable, an open_clip host still attaches and decodes."""
    _, ckpt = clip_case
    code = f"""
import sys
sys.modules["transformers"] = None  # any import of it fails
sys.path.insert(0, {str(REPO)!r})
import torch
from testing import tiny_hosts as th
from space_clip_ros.shared import attach
model = th.standalone(th.clip_config())
host = th.open_clip_host(model)
tap = attach(host, {str(ckpt)!r}, mean={OPENAI["mean"]!r}, std={OPENAI["std"]!r})
with torch.no_grad():
    host.encode_image(torch.rand(1, 3, 64, 64))
print("depth", tuple(tap.depth().shape))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=REPO
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "depth (1, 1, 64, 64)" in done.stdout


@pytest.mark.slow
def test_the_siglip_recipe_attaches_to_a_vla_s_timm_siglip(tmp_path):
    """training/configs/nyu_siglip.yaml at full size (random weights: no download): its
    checkpoint attaches to timm's vit_base_patch16_siglip_224 as a VLA creates it."""
    import timm

    from space_clip_ros.model import build_model, save_checkpoint
    from training.config import load_train_config

    recipe = REPO / "training" / "configs" / "nyu_siglip.yaml"
    cfg = load_train_config(recipe, ["model.backbone.pretrained=null"])
    model = build_model(cfg.model).eval()
    ckpt = save_checkpoint(model, tmp_path / "ckpt")
    record = load_checkpoint(ckpt).config.encoder_record
    assert (record.width, record.layers, record.grid, record.prefix_tokens) == (
        768,
        12,
        (14, 14),
        0,
    )
    assert (record.pooling, record.mean) == ("attention_pool", (0.5, 0.5, 0.5))
    host = timm.create_model("vit_base_patch16_siglip_224", pretrained=False, num_classes=0)
    host.load_state_dict(model.backbone.visual.state_dict())
    host.eval()
    with attach(host, ckpt) as tap:  # timm's pretrained_cfg declares SigLIP's mean/std
        assert tap.warnings == []
        images = torch.rand(1, 3, 224, 224)
        with torch.no_grad():
            host(model.backbone.normalize(images))
        depth = tap.depth()
    torch.testing.assert_close(
        depth, reference_depth(model, images, (224, 224)), rtol=0, atol=1e-4
    )


def test_a_decoder_without_film_serves_a_host_that_stops_before_the_last_block(tmp_path):
    """VLAs such as OpenVLA read SigLIP's penultimate block and never run the last one; a
    decoder without FiLM reading no later block needs nothing more from the host."""
    cfg = th.siglip_config()
    cfg.decoder.use_film, cfg.decoder.semantic_layers = False, [3, 3, 2, 1]
    model = th.standalone(cfg)
    ckpt = th.saved(model, tmp_path / "ckpt")
    host = th.timm_host(model)
    images = torch.rand(2, 3, 64, 64)
    with attach(host, ckpt) as tap:
        counter = BlockCounter(host.blocks)
        with torch.no_grad():  # blocks 1..3 of 4 (timm indices are 0-based)
            host.forward_intermediates(
                normalised(model, images), indices=[2], stop_early=True, intermediates_only=True
            )
        assert counter.calls == [1, 1, 1, 0]
        counter.remove()
        depth = tap.depth()
    torch.testing.assert_close(depth, reference_depth(model, images, (64, 64)), rtol=0, atol=1e-5)
