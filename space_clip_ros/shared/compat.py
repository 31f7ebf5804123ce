"""attach()'s check of a host encoder against the checkpoint's encoder record.

Two kinds of difference, treated differently:

- The architecture (width, number of blocks, patch size, prefix tokens, how the global
  embedding is pooled) decides what the decoder's tensors even mean: a difference is refused,
  with no override. (A different width would also fail to load; a different depth or pooling
  would load and be wrong.)
- Weights, activation, normalisation and grid leave the decoder runnable but make its depth
  wrong without any error. Each is refused by default too, naming what differs, and can be
  accepted one by one (`accept=("weights",)`), which logs a WARNING instead: a robot acting on
  silently wrong metric depth is worse than a start-up error, and a log line scrolls by; the
  override exists for the deliberate cases (a host fine-tuned a little, measured by its user).
  GELU against its tanh approximation (HF SigLIP against timm's) is one function computed two
  ways: a warning only.

Checkpoints written before the record existed carry no record: only what their config.yaml
pins can be checked (the width, through the decoder's tensor shapes; the layer indices; the
grid from backbone.input_size; an explicit backbone.mean/std); the rest is named in a warning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

from space_clip_ros.errors import ConfigError, message, quote
from space_clip_ros.model.config import EncoderRecord, SpaceClipConfig
from space_clip_ros.model.encoder_record import (
    FINGERPRINT_DTYPES,
    classify_activation,
    digest,
    held_precision,
)

from .hosts import Host

ACCEPTABLE = ("weights", "activation", "normalization", "grid")
ARCHITECTURE = ("width", "layers", "patch_size", "prefix_tokens", "pooling")
SAME_FUNCTION = ({"gelu", "gelu_tanh"},)
NORMALIZATION_TOLERANCE = 1e-4  # CLIP's mean is written with 8 digits in some places, 6 in others
TRAIN_FIX = (
    "train a decoder on this encoder (training/README.md, 'A decoder for an encoder the robot "
    "already runs')"
)


def accepted_set(accept: Iterable[str]) -> frozenset[str]:
    if isinstance(accept, str):
        accept = (accept,)
    chosen = frozenset(accept)
    unknown = sorted(chosen - set(ACCEPTABLE))
    if unknown:
        raise ConfigError(
            f"{quote(unknown)} cannot be accepted",
            field="accept",
            fix=f"choose from {', '.join(ACCEPTABLE)} (an architecture difference never is)",
        )
    return chosen


class _Checker:
    def __init__(self, config_path: Path, accept: frozenset[str], trained_on: str) -> None:
        self.config_path, self.accept, self.trained_on = config_path, accept, trained_on
        self.warnings: list[str] = []

    def mismatch(self, kind: str, field: str, problem: str, fix: str) -> None:
        if kind in self.accept:
            self.warnings.append(f"{problem} (accepted: the depth may be wrong)")
            return
        raise ConfigError(
            problem,
            source=self.config_path,
            field=field,
            fix=f"{fix}; or pass accept=({kind!r},) to attach() to run anyway, knowing the "
            "depth may be wrong",
        )

    def grid(self, host: Host, trained: tuple[int, int], field: str) -> None:
        if tuple(host.tower.grid_size) != tuple(trained):
            self.mismatch(
                "grid",
                field,
                f"the decoder was trained on a {list(trained)} patch grid, the host runs "
                f"{list(host.tower.grid_size)}",
                "feed the host the input size the decoder was trained at (grid x patch size), "
                f"or {TRAIN_FIX}",
            )

    def normalization(
        self,
        mean: Optional[tuple],
        std: Optional[tuple],
        trained: tuple[tuple, tuple],
        field: str,
    ) -> None:
        if mean is None or std is None:
            self.warnings.append(
                "the host's normalisation is not known, so it was not checked against the "
                f"training one (mean {list(trained[0])}, std {list(trained[1])}); pass "
                "mean=..., std=... to attach() to check it"
            )
            return
        close = all(
            abs(a - b) <= NORMALIZATION_TOLERANCE
            for ours, theirs in zip((mean, std), trained)
            for a, b in zip(ours, theirs)
        )
        if not close:
            self.mismatch(
                "normalization",
                field,
                f"the host normalises with mean {list(mean)}, std {list(std)}; the decoder was "
                f"trained on mean {list(trained[0])}, std {list(trained[1])} ({self.trained_on})",
                "feed the host images normalised as in training (or pass the mean/std its "
                "pipeline really uses, if the declared ones are not)",
            )


def check(
    host: Host,
    config: SpaceClipConfig,
    config_path: Path,
    accept: frozenset[str],
    mean: Optional[tuple] = None,
    std: Optional[tuple] = None,
) -> list[str]:
    """Raise ConfigError for a refused difference; return the warnings to log."""
    mean = tuple(mean) if mean is not None else host.mean
    std = tuple(std) if std is not None else host.std
    record = config.encoder_record
    if record is None:
        return _check_without_record(host, config, config_path, accept, mean, std)
    checker = _Checker(config_path, accept, record.source)
    _check_architecture(host, record, config_path)
    checker.grid(host, record.grid, "encoder_record.grid")
    activation = classify_activation(host.tower.activation)
    if activation != record.activation:
        problem = (
            f"the host's blocks compute {activation}, the decoder was trained on "
            f"{record.activation} ({record.source})"
        )
        if {activation, record.activation} in SAME_FUNCTION:
            checker.warnings.append(f"{problem}: two forms of one function, depth nearly equal")
        else:
            checker.mismatch(
                "activation",
                "encoder_record.activation",
                problem,
                "build the host with the activation of its weights (QuickGELU for OpenAI "
                f"CLIP weights), or {TRAIN_FIX}",
            )
    checker.normalization(mean, std, (record.mean, record.std), "encoder_record.mean/std")
    state = host.tower.canonical_state()
    precision = held_precision(state)
    if digest(state, FINGERPRINT_DTYPES[precision]) != getattr(record.weights, precision):
        checker.mismatch(
            "weights",
            "encoder_record.weights",
            f"the host's weights ({precision}) are not the ones the decoder was trained on "
            f"({record.source})",
            "load the host with those weights (the exact file or tag), or " + TRAIN_FIX,
        )
    return checker.warnings


def _check_architecture(host: Host, record: EncoderRecord, config_path: Path) -> None:
    t = host.tower
    found = {
        "width": t.width,
        "layers": t.num_layers,
        "patch_size": tuple(t.patch_size),
        "prefix_tokens": t.prefix,
        "pooling": t.pooling,
    }
    for name in ARCHITECTURE:
        trained = getattr(record, name)
        trained = tuple(trained) if isinstance(trained, (list, tuple)) else trained
        if found[name] != trained:
            raise ConfigError(
                f"the decoder was trained on a tower with {name} {quote(trained)} "
                f"({record.source}); the host {host.description} has {quote(found[name])}",
                source=config_path,
                field=f"encoder_record.{name}",
                fix=f"attach the checkpoint to the encoder it was trained on, or {TRAIN_FIX}",
            )


def _check_without_record(
    host: Host,
    config: SpaceClipConfig,
    config_path: Path,
    accept: frozenset[str],
    mean: Optional[tuple],
    std: Optional[tuple],
) -> list[str]:
    b = config.backbone
    checker = _Checker(config_path, accept, f"backbone {b.model_name}")
    patch = host.tower.patch_size
    if all(side % p == 0 for side, p in zip(b.input_size, patch)):
        grid = tuple(side // p for side, p in zip(b.input_size, patch))
        checker.grid(host, grid, "backbone.input_size")
    unchecked = ["weights", "activation", "pooling"]
    if b.mean is not None and b.std is not None:
        checker.normalization(mean, std, (tuple(b.mean), tuple(b.std)), "backbone.mean/std")
    else:
        unchecked.append("normalisation")
    checker.warnings.append(
        message(
            "has no encoder_record (written before checkpoints recorded their encoder): the "
            f"host's {', '.join(unchecked)} could not be checked against training",
            source=config_path,
            fix="re-export it (python -m training.export --checkpoint DIR --out NEW, with the "
            "training tower's --backbone-weights) to record the encoder",
        )
    )
    return checker.warnings
