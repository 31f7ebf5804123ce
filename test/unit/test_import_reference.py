"""space-clip-import: checkpoints of the SPACE-CLIP release in, node checkpoints out.

The release's files are generated here in its exact layout (test/data holds the layout of a real
one: every tensor's name and shape): a model of our own, mapped to the release's names in
reverse, saved as the release saves. Importing it must give back the same depth.
"""

from __future__ import annotations

import errno
import json
import os
import re
import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from space_clip_ros.cli.import_reference import main
from space_clip_ros.errors import ConfigError
from space_clip_ros.model import (
    BackboneConfig,
    SpaceClipConfig,
    build_model,
    count_parameters,
    load_checkpoint,
)
from space_clip_ros.model.decoder import SpaceClipDecoder
from space_clip_ros.model.import_reference import (
    BACKBONE_KEY_MAP,
    BACKBONE_PREFIX,
    DECODER_KEY_MAP,
    backbone_to_open_clip,
    import_reference,
    infer_config,
    split_state,
)
from testing.tiny import TINY_OPEN_CLIP_CFG, tiny_config

torch.set_num_threads(2)
DATA = Path(__file__).resolve().parents[1] / "data"
LAYOUT = DATA / "reference_checkpoint_layout.txt"
KEY_MAP = DATA / "reference_decoder_key_map.txt"
TINY_MODEL_CFG = {**TINY_OPEN_CLIP_CFG, "quick_gelu": True}


def _invert(rules: tuple[tuple[str, str], ...]) -> list[tuple[re.Pattern, str]]:
    out = []
    for ref, ours in rules:
        pattern = re.escape(ours).replace(r"\{i\}", r"(?P<i>\d+)")
        out.append((re.compile(pattern + r"(?P<suffix>(\..+)?)"), ref))
    return out


def _to_reference(key: str, rules: list[tuple[re.Pattern, str]]) -> str:
    for pattern, ref in rules:
        match = pattern.fullmatch(key)
        if match:
            return ref.format(i=match.groupdict().get("i")) + match["suffix"]
    raise AssertionError(f"no reverse rule for {key}")


def to_reference_state(model) -> dict[str, torch.Tensor]:
    """Our model's tensors under the release's names (HF CLIPVisionModel tower, q/k/v split)."""
    state = {}
    dec_rules, bb_rules = _invert(DECODER_KEY_MAP), _invert(BACKBONE_KEY_MAP)
    for key, tensor in model.backbone.visual.state_dict().items():
        match = re.fullmatch(r"transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)", key)
        if match:
            for name, part in zip("qkv", tensor.chunk(3, dim=0)):
                hf = f"encoder.layers.{match[1]}.self_attn.{name}_proj.{match[2]}"
                state[BACKBONE_PREFIX + hf] = part.clone()
            continue
        state[BACKBONE_PREFIX + _to_reference(key, bb_rules)] = tensor.clone()
    for key, tensor in model.decoder.state_dict().items():
        state[_to_reference(key, dec_rules)] = tensor.clone()
    return state


def read_layout() -> dict[str, tuple[int, ...]]:
    shapes = {}
    for line in LAYOUT.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, shape = line.split(None, 2)
            shapes[name] = tuple(json.loads(shape))
    return shapes


def test_decoder_key_map_is_the_release_data():
    rules = dict(DECODER_KEY_MAP)
    expanded = {}
    for ref, ours in rules.items():
        for i in range(4) if "{i}" in ref else [None]:
            expanded[ref.format(i=i)] = ours.format(i=i)
    for line in KEY_MAP.read_text().splitlines():
        ref, ours = (part.strip() for part in line.split("->"))
        assert expanded[ref] == ours, ref


@pytest.fixture(scope="module")
def vit_b16():
    return build_model(SpaceClipConfig(backbone=BackboneConfig(pretrained=None)))


def test_our_vit_b16_in_release_names_is_the_release_layout(vit_b16):
    """Every name and shape of a real release checkpoint, no more, no less (421 tensors)."""
    ours = {k: tuple(v.shape) for k, v in to_reference_state(vit_b16).items()}
    assert ours == read_layout()
    assert count_parameters(vit_b16.decoder, trainable_only=True) == 12_050_996


def test_inferred_config_of_the_release_layout_is_the_papers_model():
    layout = {k: torch.empty(s, device="meta") for k, s in read_layout().items()}
    decoder, hf = split_state(layout, "layout")
    tower = backbone_to_open_clip(hf, "layout")
    cfg = infer_config(decoder, tower, None, None, "layout")
    b, d = cfg.backbone, cfg.decoder
    assert (b.model_name, b.pretrained, b.quick_gelu) == ("ViT-B-16", "openai", True)
    assert (tuple(b.input_size), b.input_resize) == ((224, 224), "pil_bicubic_uint8")
    assert (d.semantic_layers, d.structural_layers) == ([12, 9, 6, 3], [2, 1, 0])
    assert d.semantic_channels == [256, 128, 64, 32] and d.structural_channels == [256, 128, 64]
    assert (d.film_hidden, d.head_hidden, d.aux_heads, d.dropout) == (256, 16, 3, 0.1)
    built = SpaceClipDecoder(768, d)
    assert {k: tuple(v.shape) for k, v in built.state_dict().items()} == {
        k: tuple(v.shape) for k, v in decoder.items()
    }
    release_yaml = {"decoder_channels": [256, 128, 64, 32], "use_film": False}
    with pytest.raises(ConfigError, match="use_film is False but the checkpoint"):
        infer_config(decoder, tower, release_yaml, None, "layout")


@pytest.fixture()
def release_file(tmp_path):
    """A tiny SPACE-CLIP trained 'by the release': saved as its save_checkpoint does, from DDP."""
    torch.manual_seed(5)
    cfg = tiny_config()
    cfg.backbone.quick_gelu, cfg.backbone.input_resize = True, "pil_bicubic_uint8"
    model = build_model(cfg)
    with torch.no_grad():
        for p in [*model.backbone.parameters(), *model.decoder.parameters()]:
            p.add_(torch.randn_like(p) * 0.05)
    model.train()
    model(torch.rand(2, 3, 64, 64))  # BN running statistics
    model.eval()
    state = {f"module.{k}": v for k, v in to_reference_state(model).items()}
    optimizer = {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]}
    path = tmp_path / "best_checkpoint.pt"
    torch.save({"epoch": 7, "model": state, "optimizer": optimizer}, path)
    model_cfg = tmp_path / "tower.json"
    model_cfg.write_text(json.dumps(TINY_MODEL_CFG))
    return model, path, model_cfg


def test_imported_checkpoint_reproduces_the_source_depth(release_file, tmp_path, capsys):
    source, path, model_cfg = release_file
    out, tower = tmp_path / "imported", tmp_path / "tower.safetensors"
    code = main([str(path), str(out), "--backbone-out", str(tower), "--model-cfg", str(model_cfg)])
    assert code == 0, capsys.readouterr().err
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["backbone"]["quick_gelu"] is True
    assert saved["backbone"]["input_resize"] == "pil_bicubic_uint8"
    assert saved["decoder"]["semantic_layers"] == [4, 3, 2, 1]
    assert all(k.startswith("visual.") for k in load_file(tower))
    imported = load_checkpoint(out, backbone_weights=str(tower))
    x = torch.rand(2, 3, 90, 250)
    with torch.no_grad():
        torch.testing.assert_close(imported(x), source(x), rtol=1e-5, atol=1e-5)
    assert not list(tmp_path.glob(".imported.*")), "no staging directory left behind"


def test_refusals_name_the_file_and_the_fix(release_file, tmp_path, capsys):
    _, path, model_cfg = release_file
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    assert main([str(path), str(busy), "--model-cfg", str(model_cfg)]) == 2
    assert "busy: exists and is not empty. Fix" in capsys.readouterr().err
    # the tiny tower is no known OpenAI tower: the model config must be given
    assert main([str(path), str(tmp_path / "a")]) == 2
    assert "--model-cfg" in capsys.readouterr().err
    other = tmp_path / "other.pt"
    torch.save({"weights": [1, 2]}, other)
    assert main([str(other), str(tmp_path / "b")]) == 2
    assert "holds no 'model' state dict" in capsys.readouterr().err
    data = torch.load(path, weights_only=True)
    data["model"]["module.extra_head.weight"] = torch.zeros(1)
    torch.save(data, other)
    with pytest.raises(ValueError, match="'extra_head.weight' is neither"):
        import_reference(other, tmp_path / "c", model_cfg=TINY_MODEL_CFG)
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_import_records_the_releases_training_camera(release_file, tmp_path, capsys, caplog):
    _, path, model_cfg = release_file
    common = ["--model-cfg", str(model_cfg)]
    assert main([str(path), str(tmp_path / "nyu"), "--dataset", "nyu", *common]) == 0
    camera = load_checkpoint(tmp_path / "nyu").config.camera
    assert camera.crop_size == (480, 640) and camera.focal == (518.8579, 519.4696)
    assert camera.principal_point == (319.5, pytest.approx(253.7362))
    # the release's YAML names the dataset and the crop
    release_yaml = tmp_path / "kitti.yaml"
    release_yaml.write_text(
        yaml.safe_dump({"dataset": "kitti", "input_height": 352, "input_width": 704})
    )
    assert main([str(path), str(tmp_path / "kitti"), "--config", str(release_yaml), *common]) == 0
    camera = load_checkpoint(tmp_path / "kitti").config.camera
    assert camera.crop_size == (352, 704) and camera.focal == (721.5377, 721.5377)
    assert camera.principal_point == (351.5, pytest.approx(172.854 - (375 - 352) / 2))
    # a contradiction is refused; no dataset at all imports without a record, loudly
    assert (
        main(
            [
                str(path),
                str(tmp_path / "x"),
                "--config",
                str(release_yaml),
                "--dataset",
                "nyu",
                *common,
            ]
        )
        == 2
    )
    assert "dataset 'nyu' but the YAML says 'kitti'" in capsys.readouterr().err
    assert main([str(path), str(tmp_path / "none"), *common]) == 0
    assert load_checkpoint(tmp_path / "none").config.camera is None
    assert "no camera recorded" in caplog.text and "--dataset kitti|nyu" in caplog.text


# ------------------------------------------------------------------------------ hostile files

POS = f"module.{BACKBONE_PREFIX}embeddings.position_embedding.weight"
PATCH = f"module.{BACKBONE_PREFIX}embeddings.patch_embedding.weight"
DECODER_CONV = "module.depth_prediction_head.0.weight"


def _spoiled(path: Path, tmp_path: Path, change) -> Path:
    data = torch.load(path, weights_only=True)
    change(data["model"])
    out = tmp_path / "spoiled.pt"
    torch.save(data, out)
    return out


def _nan_at(key):
    def change(state):
        state[key] = state[key].clone()
        state[key].view(-1)[0] = float("nan")

    return change


def _set(key, make):
    def change(state):
        state[key] = make(state[key])

    return change


@pytest.mark.parametrize(
    "change, words",
    [
        (_nan_at(DECODER_CONV), ["depth_prediction_head.0.weight", "1 NaN/inf value(s)"]),
        (_nan_at(PATCH), ["patch_embedding.weight", "NaN/inf"]),
        (_set(DECODER_CONV, lambda t: t.to(torch.complex64)), ["complex64", "not a real"]),
        (_set(DECODER_CONV, lambda t: t.to(torch.int8)), ["torch.int8", "not a real"]),
        (_set(PATCH, lambda t: t[:, :, 0]), ["patch_embedding.weight has shape", "(32, 3, patch"]),
        (_set(POS, lambda t: torch.zeros(7, 32)), ["position_embedding.weight", "no square"]),
        (_set(POS, lambda t: torch.zeros(0)), ["position_embedding.weight has shape (0,)"]),
        (lambda state: state.update({3: torch.zeros(1)}), ["key 3 that is not a tensor name"]),
    ],
)
def test_a_hostile_release_file_is_refused_with_exit_2_and_nothing_written(
    release_file, tmp_path, capsys, change, words
):
    """Each of these imported with exit 0 (the node then failed or published NaN), or ended
    in a traceback with exit 1."""
    _, path, model_cfg = release_file
    spoiled = _spoiled(path, tmp_path, change)
    out, tower = tmp_path / "out", tmp_path / "tower.safetensors"
    argv = [str(spoiled), str(out), "--backbone-out", str(tower), "--model-cfg", str(model_cfg)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("space-clip-import: error: ") and "Traceback" not in err
    assert str(spoiled) in err and "Fix:" in err
    for word in words:
        assert word in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best_checkpoint.pt", "spoiled.pt",
                                                          "tower.json"]  # fmt: skip


def test_a_zip_bomb_is_refused_from_its_declared_sizes_before_torch_reads_it(
    tmp_path, capsys, monkeypatch
):
    bomb = tmp_path / "best_checkpoint.pt"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("archive/data/0", bytes(64 << 20))  # 64 MiB of zeros
    assert bomb.stat().st_size < 200_000

    def no_loading(*args, **kwargs):
        raise AssertionError("torch.load read the bomb")

    monkeypatch.setattr(torch, "load", no_loading)
    assert main([str(bomb), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "checkpoint: a " in err and "declares 67108870 bytes" in err and "Fix:" in err


def test_a_full_disk_is_exit_1_with_the_reason_and_leaves_nothing(
    release_file, tmp_path, capsys, monkeypatch
):
    import space_clip_ros.model.import_reference as importer

    _, path, model_cfg = release_file

    def disk_full(tensors, filename, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)

    monkeypatch.setattr(importer, "save_file", disk_full)
    out, tower = tmp_path / "out", tmp_path / "tower.safetensors"
    argv = [str(path), str(out), "--backbone-out", str(tower), "--model-cfg", str(model_cfg)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "nothing was written" in err
    assert "Traceback" not in err and "Fix: free disk space" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best_checkpoint.pt", "tower.json"]


def test_the_output_folder_and_tower_follow_the_umask(release_file, tmp_path):
    """mkdtemp's 0700 and safetensors' 0600 kept a robot's service user out."""
    _, path, model_cfg = release_file
    out, tower = tmp_path / "out", tmp_path / "tower.safetensors"
    old = os.umask(0o022)
    try:
        argv = [str(path), str(out), "--backbone-out", str(tower), "--model-cfg", str(model_cfg)]
        assert main(argv) == 0
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o755
    assert {p.name: p.stat().st_mode & 0o777 for p in [*out.iterdir(), tower]} == {
        "decoder.safetensors": 0o644,
        "config.yaml": 0o644,
        "tower.safetensors": 0o644,
    }
