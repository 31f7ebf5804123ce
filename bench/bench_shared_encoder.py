"""What depth costs a robot that already runs the encoder: the paper's integration-cost table.

Three configurations on the same images, as in the SPACE-CLIP release's results/integration_cost:

- backbone: the robot's encoder alone (an open_clip ViT `.visual`, projection included), the
  call its policy / detector already makes;
- shared: the same call with a SPACE-CLIP decoder attached (space_clip_ros.shared.attach) and
  tap.depth() after it: the tower runs once;
- separate: the robot's encoder plus a standalone SpaceClip with its own copy of the tower.

Per configuration: total, trainable (the decoder) and duplicated parameters (tensors equal to
the robot's but stored again), peak memory (CPU: peak RSS of a fresh process building only that
configuration, and the part above the process after its imports; CUDA: max allocated) and
latency (median over interleaved rounds in this one process, so the ratios compare like with
like on a shared machine). Goals (the paper: 1.54x and 1.64x): shared / backbone <= 1.55x,
separate / shared >= 1.6x, 0 duplicated parameters when shared.

    python bench/bench_shared_encoder.py                      # CPU, ViT-B/16, random weights
    python bench/bench_shared_encoder.py --device cuda --precision fp16   # on a GPU
    python bench/bench_shared_encoder.py --tiny --rounds 1    # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import open_clip
import torch

from space_clip_ros.model import BackboneConfig, SpaceClipConfig, build_model, save_checkpoint
from space_clip_ros.model.backbone import OpenClipTower
from space_clip_ros.model.open_clip_api import CLIPVisionCfg, build_vision_tower
from space_clip_ros.runtime import PRECISIONS, resolve_device
from space_clip_ros.shared import attach

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # testing/ is not installed

from testing.tiny import TINY_OPEN_CLIP_CFG, tiny_config  # noqa: E402

CONFIGS = ("backbone", "shared", "separate")
# The release's results/integration_cost (batch 1, GPU model not recorded).
PAPER = {"backbone": (3.368, 346.9), "shared": (5.200, 468.1), "separate": (8.512, 796.1)}
GOAL_SHARED, GOAL_SEPARATE = 1.55, 1.6
REPO = Path(__file__).resolve().parents[1]
ROBOT_SEED = 7


def model_config(tiny: bool) -> SpaceClipConfig:
    return tiny_config() if tiny else SpaceClipConfig(backbone=BackboneConfig(pretrained=None))


def robot_encoder(tiny: bool, device: torch.device) -> torch.nn.Module:
    """The encoder as a robot holds it: open_clip's ViT tower with its projection, random
    weights from a fixed seed (every process builds the same ones, with no file to load)."""
    model_cfg = TINY_OPEN_CLIP_CFG if tiny else open_clip.get_model_config("ViT-B-16")
    torch.manual_seed(ROBOT_SEED)
    host = build_vision_tower(
        model_cfg["embed_dim"], CLIPVisionCfg(**model_cfg["vision_cfg"]), quick_gelu=False
    )
    return host.to(device).eval()


def prepare(tiny: bool, directory: Path) -> Path:
    """A checkpoint whose decoder was trained 'on' the robot's tower (its record says so)."""
    model = build_model(model_config(tiny))
    host = robot_encoder(tiny, torch.device("cpu"))
    _load_tower(model, host)
    return save_checkpoint(model, directory / "checkpoint")


def _load_tower(model: torch.nn.Module, host: torch.nn.Module) -> None:
    """The robot's tower weights into a SpaceClip's own tower (copied in place)."""
    result = model.backbone.visual.load_state_dict(host.state_dict(), strict=False)
    assert result.unexpected_keys == ["proj"] and not result.missing_keys, result


class Setup:
    """What one configuration holds in memory, and its per-image call."""

    def __init__(self, name: str, tiny: bool, device: torch.device, checkpoint: Path) -> None:
        self.name = name
        self.host = robot_encoder(tiny, device)
        # the robot knows how it normalises its images: CLIP's (the tower's own) mean/std
        norm = {"mean": open_clip.OPENAI_DATASET_MEAN, "std": open_clip.OPENAI_DATASET_STD}
        self.tap = attach(self.host, checkpoint, **norm) if name == "shared" else None
        self.standalone = None
        if name == "separate":  # the same tower weights, held a second time
            self.standalone = build_model(model_config(tiny))
            _load_tower(self.standalone, self.host)
            self.standalone.to(device).eval()
        self.input_size = tuple(self.host.image_size)

    def parameters(self) -> dict[str, int]:
        host = sum(p.numel() for p in self.host.parameters())
        trainable = duplicated = 0
        total = host
        if self.tap is not None:
            trainable = sum(p.numel() for p in self.tap.decoder.parameters())
            total += trainable
        if self.standalone is not None:
            trainable = sum(p.numel() for p in self.standalone.decoder.parameters())
            total += sum(p.numel() for p in self.standalone.parameters())
            duplicated = _duplicated(self.host, self.standalone.backbone.visual)
        return {"total": total, "trainable": trainable, "duplicated": duplicated}

    def runner(self, precision: str) -> Callable[[torch.Tensor, torch.Tensor], None]:
        device = next(self.host.parameters()).device
        dtype = PRECISIONS[precision]

        def run(images: torch.Tensor, normalised: torch.Tensor) -> None:
            with (
                torch.inference_mode(),
                torch.autocast(device.type, dtype=dtype, enabled=precision != "fp32"),
            ):
                self.host(normalised)  # the robot's own call
                if self.tap is not None:
                    self.tap.depth()
                if self.standalone is not None:
                    self.standalone(images)

        return run


def _duplicated(host: torch.nn.Module, copy: torch.nn.Module) -> int:
    """Parameters of `copy` equal to the host's same-named ones but stored separately."""
    theirs = OpenClipTower(host).canonical_state()
    ours = OpenClipTower(copy).canonical_state()
    return sum(
        v.numel()
        for k, v in ours.items()
        if k in theirs
        and v.shape == theirs[k].shape
        and v.data_ptr() != theirs[k].data_ptr()
        and torch.equal(v, theirs[k].to(v))
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _memory_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process's address space, from /proc/self/status.

    Not getrusage's ru_maxrss: after fork + exec it starts from the parent's peak at the fork.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def measure_memory(args: argparse.Namespace) -> dict:
    """In a fresh process: the peak memory of one configuration (weights + activations)."""
    device = resolve_device(args.device)
    baseline = _memory_mb("VmRSS")
    setup = Setup(args.memory_of, args.tiny, device, args.checkpoint)
    images = torch.rand(args.batch, 3, *setup.input_size, device=device)
    run = setup.runner(args.precision)
    for _ in range(3):
        run(images, images)
    _sync(device)
    peak = _memory_mb("VmHWM")
    result = {"rss_peak_mb": peak, "rss_over_imports_mb": peak - baseline}
    if device.type == "cuda":
        result["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def memory_in_subprocess(name: str, args: argparse.Namespace, checkpoint: Path) -> dict:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--memory-of", name,
        "--checkpoint", str(checkpoint),
        "--device", args.device,
        "--precision", args.precision,
        "--batch", str(args.batch),
    ] + (["--tiny"] if args.tiny else [])  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"memory run of {name} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def time_configs(setups: dict, args: argparse.Namespace, device: torch.device) -> dict:
    """Per configuration: median wall ms per call, its min and max, and the median process CPU
    ms per call (all threads; on a shared CPU it moves far less with other processes' load).
    Rounds are interleaved and their order rotated, so drift hits every configuration."""
    size = setups["backbone"].input_size
    images = torch.rand(args.batch, 3, *size, device=device)
    normalised = setups["separate"].standalone.backbone.normalize(images)
    runs = {name: s.runner(args.precision) for name, s in setups.items()}
    for run in runs.values():  # warm-up: allocator, kernels, autocast caches
        for _ in range(args.warmup):
            run(images, normalised)
    _sync(device)
    wall: dict[str, list[float]] = {name: [] for name in setups}
    cpu: dict[str, list[float]] = {name: [] for name in setups}
    order = list(setups)
    for r in range(args.rounds):
        for name in order[r % len(order) :] + order[: r % len(order)]:
            for _ in range(args.iters):
                start, start_cpu = time.perf_counter(), time.process_time()
                runs[name](images, normalised)
                _sync(device)
                wall[name].append((time.perf_counter() - start) * 1000)
                cpu[name].append((time.process_time() - start_cpu) * 1000)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    return {
        name: {
            "ms": statistics.median(wall[name]),
            "min": min(wall[name]),
            "max": max(wall[name]),
            "cpu_ms": statistics.median(cpu[name]),
        }
        for name in setups
    }


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--precision", default="fp32", choices=sorted(PRECISIONS))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=None, help="default 6 (CPU), 20 (CUDA)")
    parser.add_argument("--iters", type=int, default=None, help="per round: 2 (CPU), 25 (CUDA)")
    parser.add_argument("--warmup", type=int, default=None, help="default 2 (CPU), 20 (CUDA)")
    parser.add_argument("--tiny", action="store_true", help="tiny model: smoke test")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory processes")
    parser.add_argument("--memory-of", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
    args.rounds = args.rounds or (20 if cuda else 6)
    args.iters = args.iters or (25 if cuda else 2)
    args.warmup = args.warmup if args.warmup is not None else (20 if cuda else 2)
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if args.memory_of:
        print(json.dumps(measure_memory(args)))
        return 0
    device = resolve_device(args.device)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    model = "tiny test ViT" if args.tiny else "ViT-B/16 (random weights)"
    print(f"# {model}, batch {args.batch}, {args.precision}, {name}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory(prefix="space_clip_shared_bench_") as tmp:
        checkpoint = prepare(args.tiny, Path(tmp))
        memory = {}
        if not args.no_memory:
            for config in CONFIGS:
                memory[config] = memory_in_subprocess(config, args, checkpoint)
        setups = {c: Setup(c, args.tiny, device, checkpoint) for c in CONFIGS}
        params = {c: s.parameters() for c, s in setups.items()}
        latency = time_configs(setups, args, device)
    report(args, device, params, memory, latency)
    return 0


def report(args, device, params: dict, memory: dict, latency: dict) -> None:
    cuda = device.type == "cuda"
    mem_head = "max allocated MiB" if cuda else "peak RSS MiB (above imports)"
    cpu_head = "" if cuda else " CPU ms / call | vs backbone |"
    print(
        f"\n| configuration | total params | trainable | duplicated | {mem_head} | "
        f"latency ms (min-max) | vs backbone |{cpu_head}"
    )
    print("|---|---:|---:|---:|---:|---:|---:|" + ("" if cuda else "---:|---:|"))
    base = latency["backbone"]
    for c in CONFIGS:
        p, t = params[c], latency[c]
        if c not in memory:
            mem = "-"
        elif cuda:
            mem = f"{memory[c]['cuda_max_allocated_mb']:.1f}"
        else:
            mem = f"{memory[c]['rss_peak_mb']:.0f} ({memory[c]['rss_over_imports_mb']:.0f})"
        cpu = "" if cuda else f" {t['cpu_ms']:.0f} | {t['cpu_ms'] / base['cpu_ms']:.2f}x |"
        print(
            f"| {c} | {p['total']:,} | {p['trainable']:,} | {p['duplicated']:,} | {mem} | "
            f"{t['ms']:.1f} ({t['min']:.1f}-{t['max']:.1f}) | {t['ms'] / base['ms']:.2f}x |{cpu}"
        )
    for kind in ("ms",) if cuda else ("ms", "cpu_ms"):
        shared = latency["shared"][kind] / base[kind]
        separate = latency["separate"][kind] / latency["shared"][kind]
        label = "wall time" if kind == "ms" else "CPU time"
        print(
            f"\n{label}: shared / backbone {shared:.2f}x (goal <= {GOAL_SHARED}, paper 1.54x) "
            f"{'MET' if shared <= GOAL_SHARED else 'MISSED'}; separate / shared "
            f"{separate:.2f}x (goal >= {GOAL_SEPARATE}, paper 1.64x) "
            f"{'MET' if separate >= GOAL_SEPARATE else 'MISSED'}; decoder = "
            f"{shared - 1:.2f} x the encoder (paper, GPU: 1.83 / 3.37 = 0.54)"
        )
    if memory:
        key = "cuda_max_allocated_mb" if cuda else "rss_over_imports_mb"
        m = {c: memory[c][key] for c in CONFIGS}
        print(
            f"memory: shared / backbone {m['shared'] / m['backbone']:.2f}x, separate / shared "
            f"{m['separate'] / m['shared']:.2f}x (paper: 1.35x, 1.70x)"
        )
    print(
        f"duplicated parameters when shared: {params['shared']['duplicated']} (goal 0); "
        f"separate duplicates {params['separate']['duplicated']:,} (paper 85,799,424)"
    )
    print(
        "paper (batch 1, GPU): "
        + ", ".join(f"{c} {ms} ms / {mb} MB" for c, (ms, mb) in PAPER.items())
    )
    if not cuda:
        print(
            "GPU figures: python bench/bench_shared_encoder.py --device cuda --precision fp32 "
            "(and --precision fp16)"
        )


if __name__ == "__main__":
    sys.exit(main())
