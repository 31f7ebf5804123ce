"""io/atomic.py, the one write-to-a-temporary-then-rename rule: folders (with the staging marker),
groups of files, and the writers that use it (checkpoints, training states, JSON reports)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from space_clip_ros.errors import ConfigError
from space_clip_ros.evaluation.report import AccuracyReport
from space_clip_ros.io.atomic import MARKER, atomic_dir, atomic_paths, default_file_mode
from space_clip_ros.model import SpaceClipConfig, build_model, load_checkpoint, save_checkpoint
from space_clip_ros.model.checkpoint import CONFIG_FILE, WEIGHTS_FILE
from testing.tiny import tiny_config
from training.state import load_state, save_state


def test_a_folder_appears_whole_and_its_staging_folder_goes(tmp_path: Path):
    target = tmp_path / "bag"
    with atomic_dir(target) as staged:
        assert staged.name == "bag" and not staged.exists()
        (staging,) = tmp_path.iterdir()  # only the hidden staging folder exists meanwhile
        assert staging.name.startswith(f".bag.{os.getpid()}-")
        assert staging.name.endswith(".partial")
        assert json.loads((staging / MARKER).read_text())["output"] == "bag"
        staged.mkdir()
        (staged / "data.txt").write_text("complete")
    assert [p.name for p in tmp_path.iterdir()] == ["bag"]
    assert (target / "data.txt").read_text() == "complete"
    assert not (target / MARKER).exists()  # the marker stays in the staging folder


def test_a_failed_folder_write_leaves_nothing(tmp_path: Path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(tmp_path / "bag") as staged:
            staged.mkdir()
            (staged / "half.txt").write_text("half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_refused_and_an_empty_one_replaced_only_when_asked(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(ConfigError, match="out: already exists. Fix: pick another"):
        with atomic_dir(target, exists_fix="pick another"):
            pytest.fail("the block must not run")
    with atomic_dir(target, replace_empty=True) as staged:
        staged.mkdir()
        (staged / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    with pytest.raises(ConfigError, match="already exists and is not an empty folder"):
        with atomic_dir(target, replace_empty=True):
            pytest.fail("the block must not run")


def test_a_folder_that_appears_while_writing_is_kept_and_reported(tmp_path: Path):
    target = tmp_path / "out"
    with pytest.raises(ConfigError, match="appeared while it was written"):
        with atomic_dir(target) as staged:
            staged.mkdir()
            target.mkdir()
            (target / "theirs.txt").write_text("another writer's")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert (target / "theirs.txt").read_text() == "another writer's"


def test_a_group_gets_the_umask_mode_with_fix_mode(tmp_path: Path):
    targets = [tmp_path / "a.bin", tmp_path / "b.bin"]
    with atomic_paths(targets, fix_mode=True) as staged:
        for path in staged:
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)  # as safetensors does
            os.close(fd)
    assert {p.stat().st_mode & 0o777 for p in targets} == {default_file_mode()}


def test_a_checkpoint_whose_config_fails_to_write_keeps_the_previous_pair(tmp_path, monkeypatch):
    """Weights and config.yaml are one group: a failure never pairs new weights with an old
    config (or leaves weights without one)."""
    model = build_model(tiny_config())
    save_checkpoint(model, tmp_path / "ckpt")
    before = {p.name: p.read_bytes() for p in (tmp_path / "ckpt").iterdir()}
    with torch.no_grad():
        next(model.decoder.parameters()).add_(1.0)

    def full_disk(self, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SpaceClipConfig, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(model, tmp_path / "ckpt")
    assert {p.name: p.read_bytes() for p in (tmp_path / "ckpt").iterdir()} == before
    assert sorted(before) == [CONFIG_FILE, WEIGHTS_FILE]
    monkeypatch.undo()
    load_checkpoint(tmp_path / "ckpt")  # still a loadable pair


def test_a_training_state_save_that_fails_keeps_the_previous_state_and_no_temporary(tmp_path):
    path = tmp_path / "state_last.pt"
    save_state(path, {"step": 1})
    with pytest.raises(Exception):
        save_state(path, {"step": 2, "unpicklable": lambda: None})
    assert load_state(path) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state_last.pt"]


def test_an_accuracy_json_that_fails_to_serialise_leaves_no_file(tmp_path: Path):
    report = AccuracyReport(frames=[(1, {"abs_rel": object()})])  # not JSON: fails half-way
    with pytest.raises(TypeError):
        report.write_json(tmp_path / "accuracy.json")
    assert list(tmp_path.iterdir()) == []
