"""Training state for exact resume: weights, optimiser, schedule, EMA, scaler, RNG, counters.

Written and read only by this trainer, as a torch file of tensors and plain Python values so that
``torch.load(weights_only=True)`` reads it: no arbitrary unpickling, even of our own files. The
deliverable checkpoint for the node is a different thing (space_clip_ros.model.save_checkpoint).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from space_clip_ros.model.torch_files import load_torch_file

STATE_LAST = "state_last.pt"


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
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(value: Any) -> Any:
    return [_to_lists(v) for v in value] if isinstance(value, (tuple, list)) else value


def _to_tuples(value: Any) -> Any:
    return tuple(_to_tuples(v) for v in value) if isinstance(value, list) else value


def save_state(path: Union[str, Path], state: dict[str, Any]) -> None:
    """Atomic write: a crash mid-save leaves the previous state file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_state(path: Union[str, Path]) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: training state not found. "
            "Fix: point run.resume to a state_*.pt in a run's out_dir."
        )
    return load_torch_file(path, field="run.resume")  # refused on torch < 2.6 (CVE-2025-32434)
