"""Value checks on loaded weights: one rule for the decoder, the CLIP tower and imports.

A tensor holding NaN or inf loads without complaint, and the model then predicts NaN for every
pixel while reporting itself trained; such weights are refused where they are read, naming the
file, the tensor and the fix.
"""

from __future__ import annotations

from typing import Mapping, Optional

import torch

from space_clip_ros.errors import quote


def first_nonfinite(state: Mapping[str, torch.Tensor]) -> Optional[tuple[str, int, int]]:
    """(key, non-finite count, element count) of the first floating tensor with NaN/inf."""
    for key, tensor in state.items():
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(
            torch.isfinite(tensor).all()
        ):
            return key, int((~torch.isfinite(tensor)).sum()), tensor.numel()
    return None


def nonfinite_problem(state: Mapping[str, torch.Tensor]) -> Optional[str]:
    """'tensor <key> holds N NaN/inf value(s) of M' for the first such tensor, or None."""
    found = first_nonfinite(state)
    if found is None:
        return None
    key, bad, total = found
    return f"tensor {quote(key, 120)} holds {bad} NaN/inf value(s) of {total}"
