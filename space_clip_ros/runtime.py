"""Where the model runs and in what precision.

The one resolver for inference, training, evaluation and bench.

Why one place: three resolvers used to disagree (one strict, one passing "cuda" unchecked to
torch, one trusting `torch.cuda.is_bf16_supported()`, which counts emulation and so picked bf16
on V100, T4, RTX 20xx and Xavier). Every tool now asks these functions, and a bad device or
precision fails at start with the field and the fix.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import platform
from pathlib import Path
from typing import Iterator, Optional

import torch

from space_clip_ros.errors import ConfigError, message, quote
from space_clip_ros.runtime_choices import (
    DEVICE_CHOICES_TEXT,
    PRECISION_CHOICES,
    PRECISION_NAMES,
)

log = logging.getLogger(__name__)

PRECISIONS: dict[str, torch.dtype] = dict(
    zip(PRECISION_NAMES, (torch.float32, torch.float16, torch.bfloat16))
)
# bf16 tensor cores arrived with Ampere (compute capability 8.0); before that CUDA emulates it.
NATIVE_BF16_CUDA_CAPABILITY = (8, 0)
# CPU flags that mean bf16 arithmetic in hardware (x86 AVX512-BF16 / AMX, Arm BF16 extension).
NATIVE_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
# fp16 inference on a CPU against fp32, measured by bench/bench_precision.py (bench/RESULTS.md:
# 27x on one thread of an AMD EPYC; the issue that found it measured 50x with two).
CPU_FP16_SLOWDOWN = "27x"


def resolve_device(name: str, field: str = "device") -> torch.device:
    """'auto' picks CUDA when present.

    CUDA asked for where there is none, or cuda:N past the device count, is an error.
    """
    name = name.strip()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        index_text = name.partition(":")[2]
        if index_text and not index_text.isdigit():
            raise ConfigError(
                f"'{name}' is not a device", field=field, fix=f"use {DEVICE_CHOICES_TEXT}"
            )
        if not torch.cuda.is_available():
            raise _no_cuda(name, field)
        index = int(index_text) if index_text else torch.cuda.current_device()
        count = torch.cuda.device_count()
        if index >= count:
            raise ConfigError(
                f"'{name}' requested but only {count} CUDA device(s) are visible",
                field=field,
                fix=f"use cuda:0..cuda:{count - 1} (check CUDA_VISIBLE_DEVICES)",
            )
        return torch.device("cuda", index)
    raise ConfigError(f"unknown device '{name}'", field=field, fix=f"use {DEVICE_CHOICES_TEXT}")


def _no_cuda(name: str, field: str) -> ConfigError:
    """Why CUDA is unavailable: a CPU-only torch and a GPU torch that sees no GPU need
    different fixes (installing a CUDA build is no help for a missing driver)."""
    if torch.version.cuda is None:
        return ConfigError(
            f"'{name}' requested but CUDA is not available: torch {torch.__version__} is a "
            "CPU-only build",
            field=field,
            fix="install a CUDA build of torch (https://pytorch.org/get-started/locally/), "
            "or use 'auto' or 'cpu'",
        )
    try:
        torch.cuda.init()  # raises with the driver's own reason
        reason = "no CUDA device is visible"
    except Exception as exc:  # noqa: BLE001 - any failure here is the reason to report
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        reason = first_line.split(". ")[0][:200]  # torch's own first sentence
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    shown = f"; CUDA_VISIBLE_DEVICES={quote(visible, 60)}" if visible is not None else ""
    return ConfigError(
        f"'{name}' requested but CUDA is not available: torch {torch.__version__} is built for "
        f"CUDA {torch.version.cuda} but sees no GPU ({reason}{shown})",
        field=field,
        fix="check the NVIDIA driver (nvidia-smi), CUDA_VISIBLE_DEVICES and the container's GPU "
        "access (docker run --gpus all), or use 'auto' or 'cpu'",
    )


@functools.lru_cache(maxsize=None)
def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no way to tell, so no native bf16 claimed
        return ""


@functools.lru_cache(maxsize=None)
def _cpu_flags() -> frozenset[str]:
    flags: set[str] = set()
    for line in _cpuinfo().splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return frozenset(flags)


def cpu_model_name() -> str:
    """The CPU model as the OS names it (platform.processor() is empty on most Linux)."""
    for line in _cpuinfo().splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "model name":
            return value.strip()
    return platform.processor() or platform.machine()


def has_native_bf16(device: torch.device) -> bool:
    """True where bf16 runs in hardware, not emulated (unlike torch.cuda.is_bf16_supported())."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= NATIVE_BF16_CUDA_CAPABILITY
    if device.type == "cpu":
        return bool(_cpu_flags() & NATIVE_BF16_CPU_FLAGS) and platform.machine().lower() in (
            "x86_64",
            "amd64",
            "aarch64",
            "arm64",
        )
    return False


def resolve_precision(name: str, device: torch.device, field: str = "precision") -> torch.dtype:
    """'auto': fp16 on CUDA, bf16 on a CPU that has it natively, fp32 otherwise.

    'auto' is the fast choice everywhere (bench/bench_precision.py); an explicit choice that is
    emulated on this device is honoured with a warning that says so and what to use instead.
    """
    if name == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if has_native_bf16(device) else torch.float32
    if name not in PRECISIONS:
        raise ConfigError(
            f"unknown precision '{name}'",
            field=field,
            fix=f"use one of {', '.join(PRECISION_CHOICES)}",
        )
    dtype = PRECISIONS[name]
    slow = emulated_precision(dtype, device)
    if slow:
        fast = precision_name(resolve_precision("auto", device))
        log.warning(
            message(
                f"'{name}' on {device} {slow}",
                field=field,
                fix=f"use '{fast}' ('auto' picks it here) unless this precision's numbers are "
                "what you are testing",
            )
        )
    return dtype


def emulated_precision(dtype: torch.dtype, device: torch.device) -> Optional[str]:
    """Why dtype runs emulated (slowly) on device, or None where the hardware has it."""
    if dtype == torch.float16 and device.type == "cpu":
        return (
            "is emulated: CPUs have no fp16 arithmetic, and PyTorch ran it "
            f"{CPU_FP16_SLOWDOWN} slower than fp32 (bench/RESULTS.md)"
        )
    if dtype == torch.bfloat16 and not has_native_bf16(device):
        what = (
            f"compute capability {'.'.join(map(str, torch.cuda.get_device_capability(device)))}"
            if device.type == "cuda"
            else f"this CPU ({cpu_model_name()}: no avx512_bf16, amx_bf16 or Arm bf16)"
        )
        return f"is emulated: {what} has no native bf16"
    return None


def training_precision(device: torch.device) -> torch.dtype:
    """Training's mixed precision: bf16 where native (no loss scaling), else fp16 on CUDA."""
    if device.type == "cuda":
        return torch.bfloat16 if has_native_bf16(device) else torch.float16
    return torch.bfloat16 if has_native_bf16(device) else torch.float32


def precision_name(dtype: torch.dtype) -> str:
    return next(name for name, d in PRECISIONS.items() if d == dtype)


@contextlib.contextmanager
def autocast(device: torch.device, dtype: Optional[torch.dtype]) -> Iterator[None]:
    """Autocast to dtype on device; fp32 or None runs as is (autocast to fp32 is pure overhead)."""
    if dtype is None or dtype == torch.float32:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield
