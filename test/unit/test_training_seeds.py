"""training.seeds: aggregation on fixed inputs, the authors' published statistics, a tiny run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from space_clip_ros.model import build_model
from space_clip_ros.model.space_clip import count_parameters
from training import seeds
from training.config import ConfigError, load_train_config
from training.mini_datasets import make_mini_kitti

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "training" / "configs"

# The authors' per-seed test AbsRel of their controlled NYU study (results/nyu_component_ablation/
# component_comparison.json of taewan2002/SPACE-CLIP): "early" is the full model, "main_only"
# the semantic-only control.
AUTHORS_FULL = {
    42: 0.12308451664001069,
    43: 0.1236691642688227,
    44: 0.14854322865909805,
    45: 0.12299899865693473,
    46: 0.12298304185584694,
}
AUTHORS_CONTROL = {
    42: 0.12761024907930107,
    43: 0.128645566325969,
    44: 0.16529988016036412,
    45: 0.15696805676797682,
    46: 0.12756654131599357,
}


def test_aggregate_gives_exact_means_sample_sds_and_paired_differences():
    full = {1: {"abs_rel": 0.10, "delta1": 0.90}, 2: {"abs_rel": 0.12, "delta1": 0.80},
            3: {"abs_rel": 0.14, "delta1": 0.85}}  # fmt: skip
    control = {1: {"abs_rel": 0.11, "delta1": 0.85}, 2: {"abs_rel": 0.15, "delta1": 0.85},
               3: {"abs_rel": 0.13, "delta1": 0.85}}  # fmt: skip
    summary = seeds.aggregate(full, control)
    assert summary["seeds"] == [1, 2, 3]
    abs_rel = summary["arms"]["full"]["abs_rel"]
    assert abs_rel["mean"] == pytest.approx(0.12) and abs_rel["sample_sd"] == pytest.approx(0.02)
    assert summary["arms"]["control"]["abs_rel"]["mean"] == pytest.approx(0.13)
    assert summary["arms"]["control"]["abs_rel"]["sample_sd"] == pytest.approx(0.02)
    paired = summary["paired"]["abs_rel"]
    assert [paired["per_seed"][s] for s in (1, 2, 3)] == pytest.approx([-0.01, -0.03, 0.01])
    assert paired["mean"] == pytest.approx(-0.01) and paired["sample_sd"] == pytest.approx(0.02)
    assert paired["seeds_full_better"] == 2  # lower AbsRel in seeds 1 and 2
    # delta1 is better higher: +0.05, -0.05, 0 -> one seed
    assert summary["paired"]["delta1"]["seeds_full_better"] == 1
    assert summary["paired"]["delta1"]["sample_sd"] == pytest.approx(0.05)


def test_the_authors_published_five_seed_numbers_are_reproduced_from_their_per_seed_values():
    """docs/component_ablation.md: 0.1283 ± 0.0113 vs 0.1412 ± 0.0184, paired −0.0130 ± 0.0129."""
    summary = seeds.aggregate(
        {s: {"abs_rel": v} for s, v in AUTHORS_FULL.items()},
        {s: {"abs_rel": v} for s, v in AUTHORS_CONTROL.items()},
    )
    full, control = summary["arms"]["full"]["abs_rel"], summary["arms"]["control"]["abs_rel"]
    # their JSON's full-precision summaries
    assert full["mean"] == pytest.approx(0.12825579001614262, abs=1e-15)
    assert full["sample_sd"] == pytest.approx(0.011344548242707758, abs=1e-15)
    assert control["mean"] == pytest.approx(0.1412180587299209, abs=1e-15)
    assert control["sample_sd"] == pytest.approx(0.018422815596728228, abs=1e-15)
    table = seeds.markdown(summary)
    assert "| mean ± SD | 0.1283 ± 0.0113 | 0.1412 ± 0.0184 | -0.0130 ± 0.0129 |" in table
    assert summary["paired"]["abs_rel"]["seeds_full_better"] == 5  # "in all five seeds"


def test_one_seed_has_no_sd_and_unpaired_seeds_are_refused():
    summary = seeds.aggregate({7: {"abs_rel": 0.2}})
    assert math.isnan(summary["arms"]["full"]["abs_rel"]["sample_sd"]) and not summary["paired"]
    assert "| mean ± SD | 0.2000 |" in seeds.markdown(summary)
    with pytest.raises(seeds.InputError, match=r"seeds \[1, 2\] and the control's \[1, 3\]"):
        seeds.aggregate({1: {"abs_rel": 0.1}, 2: {"abs_rel": 0.1}},
                        {1: {"abs_rel": 0.1}, 3: {"abs_rel": 0.1}})  # fmt: skip


def test_the_semantic_only_control_has_the_authors_trainable_parameter_count():
    """7,570,932 with ViT-B/16 (docs/component_ablation.md); the full decoder 12,050,996."""
    random_tower = ["model.backbone.pretrained=null"]  # no download; the count is the same
    for name, trainable in (("nyu_semantic_only", 7_570_932), ("nyu", 12_050_996)):
        model = build_model(load_train_config(CONFIGS / f"{name}.yaml", random_tower).model)
        assert count_parameters(model, trainable_only=True) == trainable, name
    control = load_train_config(CONFIGS / "kitti_semantic_only.yaml")
    assert not control.model.decoder.use_structural and control.data.dataset == "kitti"


def test_a_recipe_with_a_base_is_the_base_plus_its_own_fields(tmp_path):
    full = load_train_config(CONFIGS / "nyu.yaml").to_dict()
    control = load_train_config(CONFIGS / "nyu_semantic_only.yaml").to_dict()
    assert control["model"]["decoder"].pop("use_structural") is False
    assert full["model"]["decoder"].pop("use_structural") is True
    assert control["run"].pop("out_dir") != full["run"].pop("out_dir")
    assert control == full  # nothing else differs: the arms cannot drift apart
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="base: recipes name each other"):
        load_train_config(tmp_path / "a.yaml")


def test_seeds_trains_selects_on_val_tests_once_and_writes_the_tables(tmp_path, monkeypatch):
    mini = make_mini_kitti(tmp_path / "kitti", n_train=2, n_test=2, n_val=1)
    control = tmp_path / "control.yaml"
    control.write_text(
        f"base: {CONFIGS / 'tiny.yaml'}\nmodel:\n  decoder:\n    use_structural: false\n"
    )
    out = tmp_path / "seeds"
    argv = ["--config", str(CONFIGS / "tiny.yaml"), "--control", str(control), "--seeds", "1", "2"]
    argv += ["--out", str(out), "--set", f"data.root={mini.root}", "--set", "optim.epochs=1"]
    argv += ["--device", "cpu", "--no-flip-tta"]
    assert seeds.main(argv) == 0
    summary = json.loads((out / "seeds.json").read_text())
    assert summary["seeds"] == [1, 2] and set(summary["arms"]) == {"full", "control"}
    runs = summary["runs"]["full"] + summary["runs"]["control"]
    assert len(runs) == 4
    for run in runs:
        run_dir = Path(run["run_dir"])
        report = json.loads((run_dir / "test_metrics.json").read_text())
        assert report["list"].endswith("kitti_eigen_test_files_with_gt.txt")
        assert report["metrics"]["eigen"]["count"] == 2  # the test drive, not the val drive
        variant, _, score = seeds.select_checkpoint(run_dir)
        assert (variant, score) == (run["selected"], run["val"])
        other = "best_ema" if variant == "raw" else "best"
        other_score = seeds.validation_score(run_dir / "checkpoints" / other, "eigen", "abs_rel")
        assert score <= other_score
        arm = summary["arms"]["full" if run in summary["runs"]["full"] else "control"]
        tested = report["metrics"]["eigen"]["abs_rel"]
        assert arm["abs_rel"]["per_seed"][str(run["seed"])] == pytest.approx(tested)
    assert "| seed | full | control | full − control |" in (out / "seeds.md").read_text()
    assert len((out / "seeds.csv").read_text().splitlines()) == 1 + 4

    # run again: the finished runs are neither retrained nor tested a second time
    def refuse(*args, **kwargs):
        raise AssertionError("the test set was evaluated twice")

    monkeypatch.setattr(seeds.evaluate_tool, "main", refuse)
    finished = [r["run_dir"] for r in summary["runs"]["full"]]
    assert seeds.main(["--runs", *finished, "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "seeds.json").read_text())
    assert again["arms"]["full"] == summary["arms"]["full"] and not again["paired"]
