"""Training state for exact resume: weights, optimiser, schedule, EMA, scaler, RNG, counters.

Written and read only by this trainer, as a torch file of tensors and plain Python values so that
``torch.load(weights_only=True)`` reads it: no arbitrary unpickling, even of our own files. The
deliverable checkpoint for the node is a different thing (space_clip_ros.model.save_checkpoint).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from space_clip_ros.errors import ConfigError
from space_clip_ros.io.atomic import atomic_path
from space_clip_ros.model.torch_files import load_torch_file

STATE_LAST = "state_last.pt"
LOG = logging.getLogger(__name__)


def capture_rng() -> dict[str, Any]:
    """Every generator this process draws from (dropout, shuffling fallbacks, numpy, random)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    random.setstate(_to_tuples(state["python"]))
    saved = state.get("cuda") or []
    if saved and torch.cuda.is_available():
        # Per device, not set_rng_state_all: that fails when fewer GPUs are visible than saved.
        visible = torch.cuda.device_count()
        for index, rng in enumerate(saved[:visible]):
            torch.cuda.set_rng_state(rng, index)
        if len(saved) != visible:
            LOG.warning(
                "CUDA RNG state saved for %d device(s), %d visible: restored %d",
                len(saved),
                visible,
                min(len(saved), visible),
            )


def restore_scaler(scaler: torch.amp.GradScaler, saved: dict[str, Any], source: object) -> None:
    """Load a GradScaler state; an empty one (a bf16 or fp32 run wrote it) leaves it as built.

    GradScaler.load_state_dict refuses an empty dict, so resuming in fp16 from a bf16/fp32 state
    would crash; starting loss scaling afresh is what a new fp16 run does.
    """
    if not saved:
        if scaler.is_enabled():
            LOG.info(
                "%s holds no loss-scaler state (not an fp16 run): scaling starts fresh", source
            )
        return
    scaler.load_state_dict(saved)


def _to_lists(value: Any) -> Any:
    return [_to_lists(v) for v in value] if isinstance(value, (tuple, list)) else value


def _to_tuples(value: Any) -> Any:
    return tuple(_to_tuples(v) for v in value) if isinstance(value, list) else value


def save_state(path: Union[str, Path], state: dict[str, Any]) -> None:
    """Atomic write (io/atomic): a crash mid-save leaves the previous state file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path: Union[str, Path]) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            "training state not found",
            source=path,
            field="run.resume",
            fix="point run.resume to a state_*.pt in a run's out_dir",
        )
    return load_torch_file(path, field="run.resume")  # refused on torch < 2.6 (CVE-2025-32434)
