"""A recipe over seeds, against a control: per-seed table, mean ± SD and paired differences.

    python -m training.seeds --config training/configs/nyu.yaml \\
        --control training/configs/nyu_semantic_only.yaml --seeds 42 43 44 45 46 \\
        --out runs/nyu_seeds --set data.root=data/nyu
    python -m training.seeds --runs runs/a runs/b --control-runs runs/c runs/d --out runs/table

For every seed and arm (the recipe, and the control when given) it trains a run (resumable:
run.resume=auto, so an interrupted command picks up where it stopped), selects the raw or EMA
checkpoint with the lower validation score (the trainer's best and best_ema: eval.select on
eval.crop of data.val_list), and evaluates that one checkpoint once on data.test_list with
training.evaluate (flip TTA by default). With --runs it takes finished runs instead, each
evaluated with its own train_config.yaml, paired with the control by run.seed.

Outputs under --out: seeds.json (every number at full precision), seeds.md (the per-seed table,
mean ± sample SD over seeds, paired differences recipe − control with the seeds where the recipe
is better) and seeds.csv (one row per run). This is the SPACE-CLIP authors' reporting for their
controlled NYU study (docs/component_ablation.md, docs/multiseed.md of their repository): seeds
are the unit of repetition, the test set is read once per run, after selection.

Multi-GPU runs: train each seed with torchrun and the recipe (run.seed, run.out_dir set), then
aggregate them with --runs.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from safetensors import safe_open

from space_clip_ros.errors import ConfigError, InputError, RuntimeFailure, run_tool
from space_clip_ros.evaluation.report import finite_or_none
from space_clip_ros.io.atomic import atomic_path
from space_clip_ros.metrics import BOUNDARY_THRESHOLDS, METRIC_NAMES
from space_clip_ros.model.checkpoint import WEIGHTS_FILE
from training import evaluate as evaluate_tool
from training.config import load_train_config

PROG = "python -m training.seeds"
LOG = logging.getLogger("seeds")
DEFAULT_SEEDS = (42, 43, 44, 45, 46)  # the authors' five seeds
TEST_JSON = "test_metrics.json"
SELECTION_JSON = "selection.json"
# Lower is better for errors, higher for the delta accuracies.
HIGHER_IS_BETTER = ("delta1", "delta2", "delta3")
REGION_METRICS = ("abs_rel", "rmse", "delta1")


@dataclass(frozen=True)
class RunResult:
    seed: int
    run_dir: Path
    variant: str  # raw | ema: the weights validation selected
    val_score: float
    metrics: dict[str, float]  # flat: abs_rel, ..., boundary_0.05/abs_rel, ...


# ------------------------------------------------------------------------------------ one run


def validation_score(checkpoint: Path, crop: str, metric: str) -> Optional[float]:
    """The validation score the trainer stored with a best checkpoint; None if there is none."""
    weights = checkpoint / WEIGHTS_FILE
    if not weights.is_file():
        return None
    with safe_open(str(weights), "pt") as handle:
        stored = (handle.metadata() or {}).get("metrics")
    if stored is None:
        return None
    return float(json.loads(stored)[crop][metric])


def select_checkpoint(run_dir: Path) -> tuple[str, Path, float]:
    """(variant, checkpoint, validation score): raw or EMA, whichever validated better.

    The trainer keeps the best of each (checkpoints/best, best_ema) by eval.select on
    data.val_list; the test list plays no part.
    """
    cfg = load_train_config(run_dir / "train_config.yaml")
    candidates = []
    for variant, name in (("raw", "best"), ("ema", "best_ema")):
        checkpoint = run_dir / "checkpoints" / name
        score = validation_score(checkpoint, cfg.eval.crop, cfg.eval.select)
        if score is not None and math.isfinite(score):
            candidates.append((score, variant, checkpoint))
    if not candidates:
        raise InputError(
            "no validated checkpoint (checkpoints/best or best_ema with validation metrics)",
            source=run_dir,
            fix="finish the run with a data.val_list (training/README.md)",
        )
    score, variant, checkpoint = min(candidates, key=lambda c: c[0])
    return variant, checkpoint, score


def flat_metrics(report: dict, crop: str) -> dict[str, float]:
    """The whole-image metrics and the regions' main ones of one crop of an evaluate JSON."""
    results = report["metrics"][crop]
    flat = {name: _number(results[name]) for name in METRIC_NAMES}
    for region, values in results.get("regions", {}).items():
        for name in REGION_METRICS:
            flat[f"{region}/{name}"] = _number(values[name])
    return flat


def _number(value: Optional[float]) -> float:
    return float("nan") if value is None else float(value)


def test_run(
    run_dir: Path, overrides: Sequence[str], flip_tta: bool, device: str, batch_size: int
) -> RunResult:
    """Evaluate a finished run's validation-selected checkpoint on its test list, once.

    A test_metrics.json already written for the same checkpoint is reused, not recomputed:
    rerunning the command never evaluates the test set twice.
    """
    run_dir = Path(run_dir)
    config = run_dir / "train_config.yaml"
    if not config.is_file():
        raise InputError(
            "no train_config.yaml: not a run written by training.train",
            source=run_dir,
            fix="pass the run.out_dir of a finished training run",
        )
    cfg = load_train_config(config, list(overrides))
    variant, checkpoint, score = select_checkpoint(run_dir)
    out = run_dir / TEST_JSON
    if not (out.is_file() and json.loads(out.read_text()).get("checkpoint") == str(checkpoint)):
        argv = ["--checkpoint", str(checkpoint), "--config", str(config), "--json", str(out)]
        argv += ["--device", device, "--batch-size", str(batch_size)]
        argv += [arg for o in overrides for arg in ("--set", o)]
        if flip_tta:
            argv.append("--flip-tta")
        code = evaluate_tool.main(argv)
        if code != 0:
            raise RuntimeFailure(
                f"training.evaluate exited with {code} (its message is above)", source=run_dir
            )
    with atomic_path(run_dir / SELECTION_JSON) as tmp:
        selection = {"variant": variant, "checkpoint": str(checkpoint), "val_score": score}
        tmp.write_text(json.dumps(selection, indent=2) + "\n")
    report = json.loads(out.read_text())
    return RunResult(cfg.run.seed, run_dir, variant, score, flat_metrics(report, cfg.eval.crop))


def train_run(recipe: Path, seed: int, run_dir: Path, overrides: Sequence[str]) -> None:
    """Train (or finish, or skip: run.resume=auto) one seed of a recipe, in this process."""
    from training.train import Trainer  # torch DDP and tensorboard only where training happens

    cfg = load_train_config(
        recipe, [*overrides, f"run.seed={seed}", f"run.out_dir={run_dir}", "run.resume=auto"]
    )
    LOG.info("training %s, seed %d, in %s", recipe, seed, run_dir)
    trainer = Trainer(cfg)
    try:
        trainer.fit()
    finally:
        trainer.close()


# ------------------------------------------------------------------------------ aggregation


def _mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample SD (n - 1); the SD is NaN for a single seed, never a made-up 0."""
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else float("nan")


def aggregate(
    full: dict[int, dict[str, float]], control: Optional[dict[int, dict[str, float]]] = None
) -> dict:
    """Per-seed values, mean ± sample SD per arm and paired differences (full − control).

    full and control map seed -> flat metrics. Paired statistics need the same seeds in both.
    """
    if not full:
        raise InputError("no runs to aggregate", fix="give --seeds or --runs")
    seeds = sorted(full)
    if control is not None and sorted(control) != seeds:
        raise InputError(
            f"the recipe's seeds {seeds} and the control's {sorted(control)} differ",
            fix="pair every run with a control run of the same run.seed",
        )
    arms = {"full": full} if control is None else {"full": full, "control": control}
    names = [n for n in full[seeds[0]] if all(n in arm[s] for arm in arms.values() for s in seeds)]
    summary: dict = {"seeds": seeds, "arms": {}, "paired": {}}
    for arm, runs in arms.items():
        summary["arms"][arm] = {}
        for name in names:
            values = [runs[s][name] for s in seeds]
            mean, sd = _mean_sd(values)
            summary["arms"][arm][name] = {
                "per_seed": dict(zip(seeds, values)),
                "mean": mean,
                "sample_sd": sd,
            }
    if control is not None:
        for name in names:
            diffs = [full[s][name] - control[s][name] for s in seeds]
            mean, sd = _mean_sd(diffs)
            higher = name.rsplit("/", 1)[-1] in HIGHER_IS_BETTER
            better = sum((d > 0) if higher else (d < 0) for d in diffs)
            summary["paired"][name] = {
                "per_seed": dict(zip(seeds, diffs)),
                "mean": mean,
                "sample_sd": sd,
                "seeds_full_better": better,
            }
    return summary


def _pm(entry: dict) -> str:
    sd = entry["sample_sd"]
    return f"{entry['mean']:.4f} ± {sd:.4f}" if math.isfinite(sd) else f"{entry['mean']:.4f}"


def markdown(summary: dict, headline: str = "abs_rel") -> str:
    """The per-seed table of the headline metric, then mean ± SD (and paired) for every metric."""
    arms, paired, seeds = summary["arms"], summary["paired"], summary["seeds"]
    columns = list(arms) + (["full − control"] if paired else [])
    lines = [
        f"Per seed: test {headline} (metric depth, validation-selected checkpoint)",
        "",
        "| seed | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for seed in seeds:
        cells = [f"{arms[a][headline]['per_seed'][seed]:.4f}" for a in arms]
        if paired:
            cells.append(f"{paired[headline]['per_seed'][seed]:+.4f}")
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    cells = [_pm(arms[a][headline]) for a in arms] + ([_pm(paired[headline])] if paired else [])
    lines += ["| mean ± SD | " + " | ".join(cells) + " |", ""]
    lines += [
        f"Mean ± sample SD over {len(seeds)} seed(s)"
        + ("; paired = full − control, with the seeds where full is better" if paired else ""),
        "",
        "| metric | " + " | ".join(arms) + (" | paired | full better |" if paired else " |"),
        "|---" * (len(arms) + 1 + (2 if paired else 0)) + "|",
    ]
    for name in arms["full"]:
        row = [name, *(_pm(arms[a][name]) for a in arms)]
        if paired:
            row += [_pm(paired[name]), f"{paired[name]['seeds_full_better']}/{len(seeds)}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def per_run_csv(results: dict[str, list[RunResult]]) -> str:
    buffer = io.StringIO()
    names = list(results["full"][0].metrics)
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["arm", "seed", "run_dir", "selected", "val_score", *names])
    for arm, runs in results.items():
        for run in runs:
            row = [arm, run.seed, str(run.run_dir), run.variant, run.val_score]
            writer.writerow(row + [run.metrics.get(name, "") for name in names])
    return buffer.getvalue()


def write_outputs(out: Path, results: dict[str, list[RunResult]], recipes: dict) -> dict:
    """seeds.json, seeds.md and seeds.csv under out; returns the summary."""
    by_seed = {arm: _by_seed(arm, runs) for arm, runs in results.items()}
    summary = aggregate(by_seed["full"], by_seed.get("control"))
    summary["recipes"] = recipes
    summary["runs"] = {
        arm: [
            {"seed": r.seed, "run_dir": str(r.run_dir), "selected": r.variant, "val": r.val_score}
            for r in runs
        ]
        for arm, runs in results.items()
    }
    summary["primary_boundary_threshold"] = BOUNDARY_THRESHOLDS[0]
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "seeds.json": json.dumps(finite_or_none(summary), indent=2, allow_nan=False) + "\n",
        "seeds.md": markdown(summary),
        "seeds.csv": per_run_csv(results),
    }
    for name, text in files.items():
        with atomic_path(out / name) as tmp:
            tmp.write_text(text)
    return summary


def _by_seed(arm: str, runs: list[RunResult]) -> dict[int, dict[str, float]]:
    seeds = [r.seed for r in runs]
    if len(set(seeds)) != len(seeds):
        raise InputError(
            f"the {arm} runs repeat a seed: {sorted(seeds)}",
            fix="give one run per run.seed",
        )
    return {r.seed: r.metrics for r in runs}


# ------------------------------------------------------------------------------ command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train (or take) one run per seed for a recipe and a control, evaluate each "
        "validation-selected checkpoint once on the test list, report mean ± SD and paired "
        "differences.",
    )
    parser.add_argument("--config", type=Path, help="the recipe to train for every seed")
    parser.add_argument("--control", type=Path, help="the control recipe (e.g. semantic-only)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    parser.add_argument("--runs", type=Path, nargs="+", help="finished runs instead of --config")
    parser.add_argument("--control-runs", type=Path, nargs="+", help="finished control runs")
    parser.add_argument("--out", type=Path, required=True, help="runs (when training) and tables")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field for every run, training and evaluation (e.g. data.root=...)",
    )
    parser.add_argument(
        "--flip-tta",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="flip averaging in the test evaluation (default on, as the authors' protocol)",
    )
    parser.add_argument("--device", default="auto", help="evaluation device")
    parser.add_argument("--batch-size", type=int, default=8, help="evaluation batch size")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_tool(PROG, run, argv, log_level=logging.INFO)


def run(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if (args.config is None) == (args.runs is None):
        raise ConfigError(
            "give either --config (train the seeds) or --runs (finished runs)",
            field="--config/--runs",
            fix="e.g. --config training/configs/nyu.yaml --seeds 42 43 44",
        )
    if args.runs is not None and args.control is not None:
        raise ConfigError(
            "--control trains a control recipe; with --runs give --control-runs",
            field="--control",
            fix="use --control-runs DIR...",
        )
    if len(set(args.seeds)) != len(args.seeds):
        raise ConfigError(f"repeats a seed: {args.seeds}", field="--seeds", fix="list each once")
    arms: dict[str, list[Path]] = {}
    recipes: dict[str, str] = {}
    if args.config is not None:
        for arm, recipe in (("full", args.config), ("control", args.control)):
            if recipe is None:
                continue
            recipes[arm] = str(recipe)
            load_train_config(recipe, args.set)  # a bad recipe fails before any training
            arms[arm] = [args.out / f"{arm}_{recipe.stem}" / f"seed_{s}" for s in args.seeds]
        for arm, recipe in recipes.items():
            for seed, run_dir in zip(args.seeds, arms[arm]):
                train_run(Path(recipe), seed, run_dir, args.set)
    else:
        arms["full"] = list(args.runs)
        if args.control_runs:
            arms["control"] = list(args.control_runs)
        recipes = {arm: "finished runs" for arm in arms}
    results = {
        arm: [test_run(run, args.set, args.flip_tta, args.device, args.batch_size) for run in runs]
        for arm, runs in arms.items()
    }
    summary = write_outputs(args.out, results, recipes)
    print(markdown(summary))
    print(f"wrote {args.out / 'seeds.md'}, seeds.json, seeds.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
