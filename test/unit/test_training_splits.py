"""Validation hold-outs by drive / scene (training/splits.py); selection never sees the test."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from training import datasets, splits
from training.config import ConfigError, load_train_config
from training.datasets import read_filelist, read_nyu_filelist
from training.mini_datasets import (
    KITTI_TEST_DRIVE,
    KITTI_TRAIN_DRIVE,
    KITTI_VAL_DRIVE,
    make_mini_kitti,
    make_mini_nyu,
)
from training.train import Trainer

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "training" / "configs" / "tiny.yaml"
AUTHORS_GROUPS = json.loads(
    (REPO / "test" / "data" / "spaceclip_nyu_scene_groups.json").read_text()
)


def drives(path: Path) -> set[str]:
    return {splits.kitti_drive(line) for line in path.read_text().splitlines() if line.strip()}


def test_the_authors_nyu_scene_draw_is_reproduced_from_their_groups_and_seed():
    """Their manifest lists the 224 + 25 scene groups; sorted, shuffled with random.Random(seed),
    the first round(10 %) are the 25 they held out (the image counts need their list file)."""
    everything = AUTHORS_GROUPS["train"] + AUTHORS_GROUPS["validation"]
    assert len(everything) == len(set(everything)) == 249
    held = splits.held_out_groups(everything, splits.SPLIT_SEED, splits.VAL_FRACTION)
    assert held == set(AUTHORS_GROUPS["validation"]) and len(held) == 25
    assert splits.held_out_groups(everything, 43, 0.1) != held  # the seed matters
    lines = [f"/{g}a/rgb_00001.jpg /{g}a/sync_depth_00001.png 518.8579" for g in everything]
    lines += [f"/{g}b/rgb_00002.jpg /{g}b/sync_depth_00002.png 518.8579" for g in everything]
    split = splits.split_lines(lines, splits.nyu_scene_group, splits.SPLIT_SEED, 0.1)
    assert split.val_groups == sorted(AUTHORS_GROUPS["validation"])
    assert (len(split.train), len(split.val)) == (2 * 224, 2 * 25)


def test_scene_groups_drop_one_trailing_letter_and_stay_whole():
    group = splits.nyu_scene_group
    assert group("/kitchen_0028b/rgb_00045.jpg /kitchen_0028b/sync_depth_00045.png 518.8") == (
        "kitchen_0028"
    )
    assert group("/nyu_office_0/rgb_00001.jpg x 1") == "nyu_office_0"
    assert group("/bookstore_0001j/rgb_00244.jpg x 1") == "bookstore_0001"
    lines = [f"/{s}/rgb_{i:05d}.jpg d 1" for i, s in enumerate(["a_1a", "b_2", "a_1b", "c_3"] * 3)]
    for seed in range(20):
        split = splits.split_lines(lines, group, seed, 0.1)
        val = {group(line) for line in split.val}
        assert len(val) == 1 and not val & {group(line) for line in split.train}
        assert split.train == [line for line in lines if group(line) not in val]  # order kept


def test_the_draw_holds_out_at_least_one_group_and_never_all():
    assert len(splits.held_out_groups(["a", "b"], 1, 0.01)) == 1
    assert len(splits.held_out_groups(["a", "b"], 1, 0.99)) == 1
    assert len(splits.held_out_groups([f"g{i}" for i in range(32)], 1, 0.1)) == 3
    with pytest.raises(splits.InputError, match="at least 2"):
        splits.held_out_groups(["a", "a"], 1, 0.1)


def test_mini_kitti_split_shares_no_drive_between_train_val_and_test(tmp_path):
    mini = make_mini_kitti(tmp_path / "kitti", n_train=3, n_test=2, n_val=2)
    train, val, test = drives(mini.train_list), drives(mini.val_list), drives(mini.test_list)
    assert train == {KITTI_TRAIN_DRIVE.removesuffix("_sync")}
    assert val == {KITTI_VAL_DRIVE.removesuffix("_sync")}
    assert test == {KITTI_TEST_DRIVE.removesuffix("_sync")}
    source = mini.root / "splits" / "kitti_eigen_train_files_with_gt.txt"
    assert sorted(source.read_text().splitlines()) == sorted(
        mini.train_list.read_text().splitlines() + mini.val_list.read_text().splitlines()
    )
    manifest = json.loads((mini.root / "splits" / "kitti_eigen_val.json").read_text())
    assert manifest["counts"] == {"train": 3, "val": 2} and manifest["seed"] == 20260926
    digest = hashlib.sha256(mini.val_list.read_bytes()).hexdigest()
    assert manifest["sha256"]["val"] == digest
    assert len(read_filelist(mini.val_list, mini.root)) == 2


def test_mini_nyu_split_shares_no_scene_group(tmp_path):
    mini = make_mini_nyu(tmp_path / "nyu", n_train=3, n_test=1, n_val=2, size=(48, 64))
    group = splits.nyu_scene_group
    train = {group(line) for line in mini.train_list.read_text().splitlines()}
    val = {group(line) for line in mini.val_list.read_text().splitlines()}
    assert train == {"bedroom_0004", "kitchen_0028"} and val == {"bedroom_0016"}
    assert len(read_nyu_filelist(mini.val_list, mini.root)) == 2
    manifest = json.loads((mini.root / "splits" / "nyudepthv2_val.json").read_text())
    assert manifest["authors_split"] is False  # another source list than the authors'


def test_the_authors_list_must_give_the_authors_split_byte_for_byte(tmp_path, monkeypatch):
    """When the source list is theirs (by SHA-256), our lists must hash as theirs, or fail."""
    mini = make_mini_nyu(tmp_path / "nyu", n_train=2, n_test=1, n_val=1, size=(48, 64))
    source = mini.root / splits.SPECS["nyu"].source
    theirs = json.loads((mini.root / "splits" / "nyudepthv2_val.json").read_text())["sha256"]
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    reference = {**splits.AUTHORS_NYU, "source_sha256": digest}
    monkeypatch.setattr(
        splits,
        "AUTHORS_NYU",
        {**reference, "train_sha256": theirs["train"], "val_sha256": theirs["val"]},
    )
    assert splits.make_split(splits.SPECS["nyu"], mini.root)["authors_split"] is True
    monkeypatch.setattr(splits, "AUTHORS_NYU", {**reference, "val_sha256": "0" * 64})
    with pytest.raises(splits.RuntimeFailure, match="differ from theirs.*bug"):
        splits.make_split(splits.SPECS["nyu"], mini.root)


def test_a_training_list_sharing_a_drive_with_the_test_list_is_refused(tmp_path):
    mini = make_mini_kitti(tmp_path / "kitti", n_train=2, n_test=1, n_val=1)
    test_list = mini.root / splits.SPECS["kitti"].test_list
    test_list.write_text(mini.val_list.read_text())
    with pytest.raises(splits.InputError, match="shares 1 group"):
        splits.make_split(splits.SPECS["kitti"], mini.root)


def test_the_cli_writes_the_split_and_names_a_missing_list(tmp_path, capsys):
    mini = make_mini_kitti(tmp_path / "kitti", n_train=2, n_test=1, n_val=1)
    mini.val_list.unlink()
    assert splits.main(["kitti", "--root", str(mini.root)]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out == {"images": {"train": 2, "val": 1}, "groups": {"train": 1, "val": 1}}
    assert mini.val_list.is_file()
    code = splits.run_tool("training.splits", splits.main, ["nyu", "--root", str(tmp_path)])
    assert code == 2
    assert "nyudepthv2_train_files_with_gt.txt: cannot read" in capsys.readouterr().err


# ------------------------------------------------------------------ selection never reads test


def test_validation_on_the_test_list_is_a_config_error():
    for spelling in (
        "splits/kitti_eigen_test_files_with_gt.txt",
        "./splits/x/../kitti_eigen_test_files_with_gt.txt",
    ):
        with pytest.raises(ConfigError, match="data.val_list.*is the test list"):
            load_train_config(TINY, [f"data.val_list={spelling}", "data.root=/data/kitti"])
    with pytest.raises(ConfigError, match="data.val_list"):
        load_train_config(
            TINY, ["data.root=/d", "data.val_list=/d/test.txt", "data.test_list=test.txt"]
        )


def test_training_and_selection_never_read_the_test_list(tmp_path, monkeypatch):
    mini = make_mini_kitti(tmp_path / "kitti", n_train=2, n_test=2, n_val=2)
    opened: list[Path] = []
    original = datasets._list_entries

    def spy(list_path, fix):
        opened.append(Path(list_path))
        return original(list_path, fix)

    monkeypatch.setattr(datasets, "_list_entries", spy)
    mini.test_list.unlink()  # and nothing may need it: training and selection run without it
    cfg = load_train_config(
        TINY, [f"data.root={mini.root}", f"run.out_dir={tmp_path / 'run'}", "optim.epochs=1"]
    )
    Trainer(cfg).fit()
    assert set(opened) == {mini.train_list, mini.val_list}
    for name in ("best", "best_ema"):
        assert (tmp_path / "run" / "checkpoints" / name / "decoder.safetensors").is_file()
