"""Config and checkpoint files under hostile or broken content.

YAML bombs, oversized, non-UTF-8 and empty files, absurd backbone sizes, bad keys inside the
backbone's model_cfg, NaN and integer tensors, file modes, torch-format files on a torch whose
weights_only can be bypassed, and a seeded fuzz of config.yaml: every case ends in a ConfigError
that names the file and the field, with a bounded message, and nothing else.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from space_clip_ros.errors import ConfigError
from space_clip_ros.model import (
    BackboneWeightsError,
    SpaceClipConfig,
    build_model,
    load_checkpoint,
    save_checkpoint,
)
from space_clip_ros.model.config import MAX_CONFIG_BYTES
from space_clip_ros.model.torch_files import load_torch_file
from testing.tiny import tiny_config
from testing.unprivileged import open_folder, outcome_without_privileges

MESSAGE_LIMIT = 2000  # no message may carry a hostile value at length


def _checkpoint_with(tmp_path: Path, saved: Path, config_text: str | bytes) -> Path:
    directory = tmp_path / "ckpt"
    directory.mkdir()
    (directory / "decoder.safetensors").write_bytes((saved / "decoder.safetensors").read_bytes())
    data = config_text.encode() if isinstance(config_text, str) else config_text
    (directory / "config.yaml").write_bytes(data)
    return directory


def _config_dict() -> dict:
    return tiny_config().to_dict()


def _raises_config_error(call, *fragments: str) -> str:
    with pytest.raises(ConfigError) as info:
        call()
    text = str(info.value)
    assert len(text) < MESSAGE_LIMIT, text[:300]
    for fragment in fragments:
        assert fragment in text, text
    return text


def test_a_yaml_alias_bomb_is_refused_quickly_with_a_short_message(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev = chr(ord("a") + i - 1)
        lines.append(f"{chr(ord('a') + i)}: &{chr(ord('a') + i)} [{', '.join(['*' + prev] * 9)}]")
    path = tmp_path / "config.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size < 1000
    start = time.perf_counter()
    _raises_config_error(
        lambda: SpaceClipConfig.load(path),
        str(path),
        "line 2",
        "alias *'a' is not allowed",
        "Fix:",
    )
    assert time.perf_counter() - start < 1.0


def test_oversized_non_utf8_and_empty_config_files_name_the_file_and_the_fix(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * (MAX_CONFIG_BYTES // 10 + 1))
    _raises_config_error(lambda: SpaceClipConfig.load(big), str(big), "more than", "Fix:")
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(yaml.safe_dump(_config_dict()).encode() + b"# caf\xe9\n")
    _raises_config_error(
        lambda: SpaceClipConfig.load(latin1), str(latin1), "not UTF-8", "b'\\xe9'", "UTF-8"
    )
    for text in ("", "   \n# only a comment? no: blank\n"[:4]):
        empty = tmp_path / "empty.yaml"
        empty.write_text(text)
        _raises_config_error(lambda: SpaceClipConfig.load(empty), str(empty), "empty", "Fix:")
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 5000 + "]" * 5000)
    _raises_config_error(lambda: SpaceClipConfig.load(deep), str(deep), "Fix:")


def test_a_huge_value_is_quoted_not_printed(tmp_path):
    data = _config_dict()
    data["decoder"]["use_film"] = "x" * 200_000
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    _raises_config_error(
        lambda: SpaceClipConfig.load(path), "'decoder.use_film' must be true or false", "200002"
    )


@pytest.mark.parametrize(
    "key, value, field",
    [
        ("width", 1_000_000, "backbone.model_cfg.vision_cfg.width"),
        ("layers", 10_000, "backbone.model_cfg.vision_cfg.layers"),
        ("patch_size", 0, "backbone.model_cfg.vision_cfg.patch_size"),
        ("width", "wide", "backbone.model_cfg.vision_cfg.width"),
        ("mlp_ratio", 1e9, "backbone.model_cfg.vision_cfg.mlp_ratio"),
    ],
)
def test_an_absurd_backbone_size_fails_before_any_allocation(tmp_path, key, value, field):
    data = _config_dict()
    data["backbone"]["model_cfg"]["vision_cfg"][key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    start = time.perf_counter()
    _raises_config_error(lambda: SpaceClipConfig.load(path), str(path), field, "Fix:")
    assert time.perf_counter() - start < 1.0


def test_width_and_layers_within_bounds_but_too_many_parameters_together(tmp_path):
    data = _config_dict()
    data["backbone"]["model_cfg"]["vision_cfg"].update(width=8192, layers=128, head_width=64)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    _raises_config_error(lambda: SpaceClipConfig.load(path), "G parameters", "ViT-B-16")


def test_a_bad_key_inside_the_backbone_model_cfg_names_file_field_and_suggestion(
    tmp_path, tiny_checkpoint
):
    data = _config_dict()
    data["backbone"]["model_cfg"]["vision_cfg"]["hed_width"] = 16
    ckpt = _checkpoint_with(tmp_path, tiny_checkpoint, yaml.safe_dump(data))
    _raises_config_error(
        lambda: load_checkpoint(ckpt),
        f"{ckpt / 'config.yaml'}: backbone.model_cfg.vision_cfg: unknown key 'hed_width'",
        "did you mean 'head_width'?",
    )


def test_backbone_weights_problems_are_reported_as_backbone_weights(tmp_path, tiny_checkpoint):
    missing = tmp_path / "nowhere.safetensors"
    text = _raises_config_error(
        lambda: load_checkpoint(tiny_checkpoint, backbone_weights=str(missing)),
        "backbone_weights:",
        "leave backbone_weights empty",
    )
    assert "backbone.pretrained:" not in text
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(BackboneWeightsError, match="set by backbone_weights"):
        load_checkpoint(tiny_checkpoint, backbone_weights=str(garbage))


@pytest.mark.parametrize(
    "spoil, words",
    [
        (lambda t: torch.full_like(t, float("nan")), "NaN/inf"),
        (lambda t: t.clone().index_fill_(0, torch.tensor([0]), float("inf")), "NaN/inf"),
        (lambda t: t.to(torch.int32), "dtype torch.int32"),
    ],
)
def test_nan_inf_and_integer_tensors_are_refused_with_file_key_and_fix(
    tmp_path, tiny_checkpoint, spoil, words
):
    ckpt = _checkpoint_with(
        tmp_path, tiny_checkpoint, (tiny_checkpoint / "config.yaml").read_text()
    )
    state = load_file(str(ckpt / "decoder.safetensors"))
    key = next(k for k, v in state.items() if v.is_floating_point() and v.ndim == 4)
    state[key] = spoil(state[key])
    save_file(state, str(ckpt / "decoder.safetensors"))
    _raises_config_error(
        lambda: load_checkpoint(ckpt), str(ckpt / "decoder.safetensors"), key, words, "Fix:"
    )


def test_checkpoint_files_get_the_umask_mode_and_no_temporaries_remain(tmp_path):
    old = os.umask(0o022)
    try:
        out = save_checkpoint(build_model(tiny_config()), tmp_path / "ckpt")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert modes == {"decoder.safetensors": 0o644, "config.yaml": 0o644}


def test_torch_format_files_are_refused_on_a_torch_older_than_2_6(tmp_path, monkeypatch):
    weights = tmp_path / "w.pt"
    torch.save({"x": torch.ones(2)}, weights)
    _raises_config_error(
        lambda: load_torch_file(weights, field="run.resume", version="2.5.1+nv24.08"),
        f"{weights}: run.resume:",
        "CVE-2025-32434",
        ".safetensors",
    )
    assert torch.equal(load_torch_file(weights, field="x", version="2.6.0")["x"], torch.ones(2))

    # The backbone loader goes through the same gate; safetensors keep working on old torch.
    visual = build_model(tiny_config()).backbone.visual.state_dict()
    torch.save({f"visual.{k}": v for k, v in visual.items()}, tmp_path / "clip.pt")
    save_file(
        {f"visual.{k}": v.contiguous() for k, v in visual.items()}, tmp_path / "clip.safetensors"
    )
    monkeypatch.setattr(torch, "__version__", "2.5.0a0+872d972e41.nv24.08")
    cfg = tiny_config()
    cfg.backbone.pretrained = str(tmp_path / "clip.pt")
    with pytest.raises(BackboneWeightsError, match="backbone.pretrained.*CVE-2025-32434"):
        build_model(cfg)
    cfg.backbone.pretrained = str(tmp_path / "clip.safetensors")
    assert build_model(cfg).backbone.width == 32


def test_training_state_is_refused_on_old_torch(tmp_path, monkeypatch):
    from training.state import load_state, save_state

    save_state(tmp_path / "state_last.pt", {"step": torch.tensor(3)})
    assert int(load_state(tmp_path / "state_last.pt")["step"]) == 3
    monkeypatch.setattr(torch, "__version__", "2.4.1")
    with pytest.raises(ConfigError, match="run.resume.*CVE-2025-32434"):
        load_state(tmp_path / "state_last.pt")


@pytest.mark.parametrize(
    "field, value",
    [
        ("mean", [float("nan"), 0.5, 0.5]),
        ("std", [float("nan"), 1.0, 1.0]),
        ("std", [1e-300, 1.0, 1.0]),
        ("std", [float("inf"), 1.0, 1.0]),
        ("mean", [1e300, 0.5, 0.5]),
    ],
)
def test_non_finite_or_degenerate_normalisation_is_refused_with_field_and_fix(
    tmp_path, tiny_checkpoint, field, value
):
    """Such a config loaded, reported a trained model and published 0 % finite depth."""
    data = _config_dict()
    data["backbone"][field] = value
    ckpt = _checkpoint_with(tmp_path, tiny_checkpoint, yaml.safe_dump(data))
    _raises_config_error(
        lambda: load_checkpoint(ckpt), str(ckpt / "config.yaml"), f"backbone.{field}", "Fix:"
    )


def test_the_usual_normalisations_still_load(tmp_path, tiny_checkpoint):
    for mean, std in [((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), ((0, 0, 0), (1, 1, 1))]:
        data = _config_dict()
        data["backbone"].update(mean=list(mean), std=list(std))
        (tmp_path / str(std[0])).mkdir()
        ckpt = _checkpoint_with(tmp_path / str(std[0]), tiny_checkpoint, yaml.safe_dump(data))
        assert load_checkpoint(ckpt).backbone.std.flatten().tolist() == pytest.approx(std)


def test_a_100000_character_pretrained_is_refused_quoted(tmp_path, tiny_checkpoint):
    data = _config_dict()
    data["backbone"]["pretrained"] = "x" * 100_000
    ckpt = _checkpoint_with(tmp_path, tiny_checkpoint, yaml.safe_dump(data))
    _raises_config_error(
        lambda: load_checkpoint(ckpt), "backbone.pretrained", "(100002 characters)", "Fix:"
    )


def test_a_100000_character_backbone_weights_override_is_refused_quoted(tiny_checkpoint):
    """The node's backbone_weights parameter and every tool's --backbone-weights end here."""
    _raises_config_error(
        lambda: load_checkpoint(tiny_checkpoint, backbone_weights="x" * 100_000),
        "backbone_weights:",
        "(100002 characters)",
        "Fix:",
    )


def test_a_clip_tower_with_nan_weights_is_refused_at_load(tmp_path, tiny_checkpoint):
    """space-clip-import wrote such a tower with exit 0, and the node published NaN depth."""
    visual = build_model(tiny_config()).backbone.visual.state_dict()
    tower = {f"visual.{k}": v.clone().contiguous() for k, v in visual.items()}
    key = next(k for k, v in tower.items() if v.ndim == 2)
    tower[key][0, 0] = float("nan")
    path = tmp_path / "tower.safetensors"
    save_file(tower, path)
    text = _raises_config_error(
        lambda: load_checkpoint(tiny_checkpoint, backbone_weights=str(path)),
        str(path),
        key.removeprefix("visual."),
        "1 NaN/inf value(s)",
        "set by backbone_weights",
        "Fix:",
    )
    assert "re-download" in text


def test_files_this_user_may_not_read_say_permission_denied(tiny_checkpoint):
    """safetensors said 'No such file or directory' for a mode-000 file."""
    with open_folder() as folder:
        ckpt = _checkpoint_with(
            folder, tiny_checkpoint, (tiny_checkpoint / "config.yaml").read_text()
        )
        tower = folder / "tower.safetensors"
        visual = build_model(tiny_config()).backbone.visual.state_dict()
        save_file({f"visual.{k}": v.contiguous() for k, v in visual.items()}, tower)
        for path in (*ckpt.iterdir(), tower, ckpt):
            path.chmod(0o755 if path.is_dir() else 0o644)
        for path in (ckpt / "decoder.safetensors", ckpt / "config.yaml", tower):
            path.chmod(0)
            kind, text = outcome_without_privileges(
                lambda: load_checkpoint(ckpt, backbone_weights=str(tower))
            )
            path.chmod(0o644)
            assert kind in ("CheckpointError", "BackboneWeightsError"), (path, kind, text)
            assert "Permission denied" in text and "No such file" not in text, (path, text)
            assert str(path) in text


# ------------------------------------------------------------------------- seeded fuzz


def _mutate(text: str, rng: random.Random) -> str:
    """One random edit of YAML text: character noise, structural tokens, lines, values."""
    lines = text.splitlines()
    kind = rng.randrange(7)
    if kind == 0 and text:  # delete a span
        i = rng.randrange(len(text))
        return text[:i] + text[i + rng.randint(1, 8) :]
    if kind == 1:  # insert YAML syntax
        token = rng.choice(
            [
                ":",
                "-",
                "[",
                "]",
                "{",
                "}",
                "&x ",
                "*x",
                "!!python/object:os.system ",
                "|",
                ">",
                "'",
                '"',
                "#",
                "\n",
                "  ",
                "\t",
                "? ",
                "%YAML 1.1\n",
                "\x00",
                "\xe9",
                "<<: *x\n",
            ]
        )
        i = rng.randrange(len(text) + 1)
        return text[:i] + token + text[i:]
    if kind == 2 and lines:  # duplicate or drop a line
        i = rng.randrange(len(lines))
        lines[i : i + 1] = [lines[i]] * rng.choice([0, 2])
        return "\n".join(lines)
    if kind == 3 and len(lines) > 1:  # swap two lines
        i, j = rng.sample(range(len(lines)), 2)
        lines[i], lines[j] = lines[j], lines[i]
        return "\n".join(lines)
    if kind == 4 and lines:  # change a line's indentation
        i = rng.randrange(len(lines))
        lines[i] = " " * rng.randint(0, 9) + lines[i].lstrip()
        return "\n".join(lines)
    value = rng.choice(
        [
            "-1",
            "0",
            "1e309",
            "nan",
            ".inf",
            "99999999999999999999",
            "true",
            "null",
            "~",
            "[]",
            "{}",
            "[1, 2]",
            "abc",
            "'x'",
            "2001-12-14",
            "0x10",
            "[[[]]]",
            "!!binary aGk=",
        ]
    )
    candidates = [
        i for i, line in enumerate(lines) if ":" in line or line.lstrip().startswith("-")
    ]
    if not candidates:
        return text + value
    i = rng.choice(candidates)
    head = (
        lines[i].split(":", 1)[0] + ": "
        if ":" in lines[i]
        else lines[i][: lines[i].index("-") + 2]
    )
    lines[i] = head + value
    return "\n".join(lines)


def test_seeded_fuzz_of_config_yaml_raises_only_config_errors(tmp_path):
    base = yaml.safe_dump(_config_dict(), sort_keys=False)
    rng = random.Random(20261125)
    path = tmp_path / "config.yaml"
    outcomes = {"loaded": 0, "refused": 0}
    start = time.perf_counter()
    for _ in range(400):
        text = base
        for _ in range(rng.randint(1, 4)):
            text = _mutate(text, rng)
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        try:
            SpaceClipConfig.load(path)
        except ConfigError as exc:
            assert len(str(exc)) < MESSAGE_LIMIT and str(path) in str(exc), str(exc)[:300]
            outcomes["refused"] += 1
        else:
            outcomes["loaded"] += 1
    assert outcomes["refused"] > 100 and outcomes["loaded"] > 10, outcomes  # both paths exercised
    assert time.perf_counter() - start < 5.0
