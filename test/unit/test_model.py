"""SPACE-CLIP architecture: shapes, parameter counts, frozen backbone, ablation switches."""

import numpy as np
import pytest
import torch
from open_clip.transformer import QuickGELU
from PIL import Image

from space_clip_ros.model import (
    BackboneConfig,
    ConfigError,
    SpaceClipConfig,
    build_model,
    count_parameters,
)
from space_clip_ros.model.backbone import resolve_quick_gelu
from space_clip_ros.model.space_clip import resize_to_encoder
from testing.tiny import tiny_config, tiny_timm_config

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model(tiny_config()).eval()


@pytest.mark.parametrize("size", [(64, 64), (48, 160), (375, 1242), (17, 23)])
def test_output_is_metric_depth_at_requested_size(tiny, size):
    with torch.no_grad():
        depth = tiny(torch.rand(2, 3, *size))
    assert depth.shape == (2, 1, *size)
    assert torch.isfinite(depth).all() and (depth >= 0).all()


def test_output_size_overrides_input_size(tiny):
    with torch.no_grad():
        depth = tiny(torch.rand(1, 3, 64, 64), output_size=(30, 40))
    assert depth.shape == (1, 1, 30, 40)


def test_aux_maps_are_stage_resolutions(tiny):
    depth, aux = tiny(torch.rand(1, 3, 64, 64), return_aux=True)
    grid = 64 // 16
    assert [a.shape[-1] for a in aux] == [grid * 2, grid * 4, grid * 8]
    assert depth.shape[-1] == 64


def test_rejects_wrong_layout(tiny):
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        tiny(torch.rand(1, 64, 64, 3))


def test_paper_parameter_counts():
    """ViT-B/16 with the paper's settings: decoder 12,050,996 (the release's), backbone 85.8 M.

    The backbone count excludes open_clip's image->joint-space projection (768x512), which
    SPACE-CLIP never uses (it reads the pre-projection class token); with it the tower would be
    86.19 M.
    """
    model = build_model(SpaceClipConfig(backbone=BackboneConfig(pretrained=None)))
    assert count_parameters(model.decoder, trainable_only=True) == 12_050_996
    assert count_parameters(model.backbone) == 85_799_424
    assert count_parameters(model.backbone, trainable_only=True) == 0
    assert model.config.decoder.semantic_layers == [12, 9, 6, 3]
    assert model.config.decoder.structural_layers == [2, 1, 0]
    no_film = build_model(SpaceClipConfig(backbone=BackboneConfig(pretrained=None)))
    no_film = build_model(
        SpaceClipConfig(
            backbone=BackboneConfig(pretrained=None),
            decoder=type(model.config.decoder)(use_film=False),
        )
    )
    # four FiLM MLPs: Linear(768, 256) + Linear(256, 1536)
    assert count_parameters(model.decoder) - count_parameters(no_film.decoder) == 4 * (
        768 * 256 + 256 + 256 * 1536 + 1536
    )


def test_layer_defaults_scale_with_depth():
    cfg = tiny_config()
    model = build_model(cfg)
    assert model.config.decoder.semantic_layers == [4, 3, 2, 1]
    with pytest.raises(ConfigError, match="0..4"):
        build_model(tiny_config(semantic_layers=[9, 3, 2, 1]))


def test_backbone_is_frozen_and_stays_in_eval(tiny):
    model = build_model(tiny_config())
    model.train()
    assert model.decoder.training and not model.backbone.training
    assert not any(m.training for m in model.backbone.modules())
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    depth, aux = model(torch.rand(2, 3, 64, 64), return_aux=True)
    (depth.mean() + sum(a.mean() for a in aux)).backward()
    opt.step()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.backbone.state_dict().items())


def _perturb_backbone_output(model, layer=None, global_embedding=False):
    """Run the model twice, the second time with a hidden state or the global embedding changed."""
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        base = model(x)
        original = model.backbone.forward

        def patched(images, layers):
            feats = original(images, layers)
            if layer is not None:
                feats.hidden[layer] = feats.hidden[layer] + 5.0
            if global_embedding:
                feats.global_embedding = feats.global_embedding * -3.0 + 1.0
            return feats

        model.backbone.forward = patched
        try:
            changed = model(x)
        finally:
            del model.backbone.forward
    return (changed - base).abs().max().item()


def test_film_switch_controls_global_conditioning():
    torch.manual_seed(0)
    with_film = build_model(tiny_config()).eval()
    without = build_model(tiny_config(use_film=False)).eval()
    assert _perturb_backbone_output(with_film, global_embedding=True) > 1e-4
    assert _perturb_backbone_output(without, global_embedding=True) == 0.0


def test_structural_switch_controls_low_level_pathway():
    """Hidden state 0 feeds only the structural pathway (tiny semantic layers are [4, 3, 2, 1])."""
    torch.manual_seed(0)
    with_struct = build_model(tiny_config()).eval()
    without = build_model(tiny_config(use_structural=False)).eval()
    assert _perturb_backbone_output(with_struct, layer=0) > 1e-4
    assert 0 not in without._layers
    assert without.decoder.structural is None


def test_hidden_states_match_open_clip(tiny):
    """Hidden state k >= 1 is block k's output and the global embedding is ln_post(class token)."""
    visual = tiny.backbone.visual
    x = tiny.backbone.normalize(torch.rand(2, 3, 64, 64))
    with torch.no_grad():
        ours = tiny.backbone(x, [0, 1, 2, 3, 4])
        ref = visual.forward_intermediates(
            x, indices=[0, 1, 2, 3], output_fmt="NCHW", intermediates_only=True
        )
        embeds = visual._embeds(x)
        pooled, _ = visual._pool(visual.transformer(embeds))
    for k in range(1, 5):
        torch.testing.assert_close(ours.hidden[k], ref["image_intermediates"][k - 1])
    grid0 = embeds[:, 1:].transpose(1, 2).reshape(2, -1, 4, 4)
    torch.testing.assert_close(ours.hidden[0], grid0)
    torch.testing.assert_close(ours.global_embedding, pooled)


def test_aspect_preserving_input_interpolates_positions():
    cfg = tiny_config()
    cfg.backbone.input_size = (64, 192)
    model = build_model(cfg).eval()
    with torch.no_grad():
        feats = model.backbone(model.backbone.normalize(torch.rand(1, 3, 64, 192)), [4])
        depth = model(torch.rand(1, 3, 100, 300))
    assert feats.hidden[4].shape[-2:] == (4, 12)
    assert depth.shape == (1, 1, 100, 300)
    bad = tiny_config()
    bad.backbone.input_size = (64, 100)
    with pytest.raises(ConfigError, match="multiple of the patch size"):
        build_model(bad)


def test_timm_tower_hidden_states_and_global_embedding_match_timm():
    model = build_model(tiny_timm_config()).eval()
    trunk = model.backbone.visual
    assert model.backbone.num_layers == 6 and model.config.decoder.semantic_layers == [6, 4, 3, 1]
    x = model.backbone.normalize(torch.rand(2, 3, 64, 64))
    with torch.no_grad():
        ours = model.backbone(x, [0, 2, 6])
        ref = trunk.forward_intermediates(
            x, indices=[1, 5], norm=False, output_fmt="NCHW", intermediates_only=True
        )
        pooled = trunk.forward_head(trunk.forward_features(x), pre_logits=True)
        depth = model(torch.rand(1, 3, 40, 100))
    torch.testing.assert_close(ours.hidden[2], ref[0])
    torch.testing.assert_close(ours.hidden[6], ref[1])
    torch.testing.assert_close(ours.global_embedding, pooled)
    assert ours.hidden[0].shape == (2, 64, 4, 4)
    assert depth.shape == (1, 1, 40, 100)


@pytest.mark.slow
def test_siglip_tower_without_class_token_at_kitti_aspect():
    """SigLIP: no class token, attention-pool global embedding; built at a 1:3 input directly."""
    cfg = SpaceClipConfig(
        backbone=BackboneConfig(
            model_name="ViT-B-16-SigLIP", pretrained=None, input_size=(224, 672)
        )
    )
    model = build_model(cfg).eval()
    with torch.no_grad():
        feats = model.backbone(model.backbone.normalize(torch.rand(1, 3, 224, 672)), [0, 12])
    assert feats.hidden[0].shape == (1, 768, 14, 42) and feats.hidden[12].shape == (1, 768, 14, 42)
    assert feats.global_embedding.shape == (1, 768)
    assert count_parameters(model.decoder) == 12_050_996  # same widths as ViT-B/16: same decoder


def test_unsupported_towers_are_refused_with_a_reason():
    with pytest.raises(ConfigError, match="only timm VisionTransformer"):
        build_model(
            SpaceClipConfig(backbone=BackboneConfig(model_name="EVA02-B-16", pretrained=None))
        )
    with pytest.raises(ConfigError, match="not an open_clip architecture"):
        build_model(
            SpaceClipConfig(backbone=BackboneConfig(model_name="ViT-Nope", pretrained=None))
        )


def test_quick_gelu_follows_tag_and_name_and_is_required_for_local_openai_files(tmp_path):
    b16 = BackboneConfig(pretrained="openai")
    tag = {"quick_gelu": True}
    assert resolve_quick_gelu(b16, {"vision_cfg": {}}, tag, from_file=False)
    assert resolve_quick_gelu(b16, {"quick_gelu": True, "vision_cfg": {}}, {}, from_file=True)
    assert not resolve_quick_gelu(BackboneConfig(model_name="ViT-B-16-SigLIP"), {}, {}, True)
    weights = tmp_path / "ViT-B-16-openai.safetensors"
    weights.write_bytes(b"not read: the activation is decided first")
    cfg = SpaceClipConfig(backbone=BackboneConfig(pretrained=str(weights)))
    with pytest.raises(ConfigError, match=r"backbone.quick_gelu.*Fix: set backbone.quick_gelu"):
        build_model(cfg)
    # the -quickgelu name says it; the block's activation is QuickGELU
    named = tiny_config()
    named.backbone.model_name, named.backbone.model_cfg = "ViT-B-16-quickgelu", None
    named.backbone.input_size = (224, 224)
    model = build_model(named)
    assert isinstance(model.backbone.visual.transformer.resblocks[0].mlp.gelu, QuickGELU)


@pytest.mark.parametrize("size", [(375, 1242), (352, 704), (100, 90)])
def test_pil_bicubic_uint8_resize_matches_pil(size):
    """The release's encoder resize: PIL bicubic on 8-bit images, to within one grey level."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    image[: size[0] // 2] = 40  # flat regions and edges, like a real frame
    pil = np.asarray(Image.fromarray(image).resize((224, 224), Image.BICUBIC), dtype=np.int16)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    ours = resize_to_encoder(x, (224, 224), "pil_bicubic_uint8")[0].permute(1, 2, 0) * 255.0
    diff = np.abs(ours.round().numpy().astype(np.int16) - pil)  # ours: exact multiples of 1/255
    assert diff.max() <= 1 and diff.mean() < 0.01, (diff.max(), diff.mean())  # fixed point
    bilinear = resize_to_encoder(x, (224, 224), "bilinear_antialias")[0].permute(1, 2, 0) * 255
    assert np.abs(bilinear.numpy() - pil).mean() > 5 * diff.mean()


def test_input_resize_is_a_checked_config_field_defaulting_to_bilinear():
    assert SpaceClipConfig.from_dict({}).backbone.input_resize == "bilinear_antialias"
    with pytest.raises(ConfigError, match="backbone.input_resize.*pil_bicubic_uint8"):
        SpaceClipConfig.from_dict({"backbone": {"input_resize": "lanczos"}})
    cfg = tiny_config()
    cfg.backbone.input_resize = "pil_bicubic_uint8"
    model = build_model(cfg).eval()
    x = torch.rand(1, 3, 50, 130)
    with torch.no_grad():
        bicubic = model(x)
        model.config.backbone.input_resize = "bilinear_antialias"
        assert not torch.equal(bicubic, model(x))
