"""Per-frame LiDAR accuracy, the running mean, and their table / JSON / diagnostic forms.

The one report format for the offline bag tool and the live node, so results compare directly.
A frame's metrics are lidar_gt.frame_metrics' dict: the whole-image metrics, 'lidar_pixels' and
'regions' (boundary / interior metrics per threshold, each with its pixel count).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from space_clip_ros.evaluation.lidar_gt import LIDAR_BOUNDARY_RULE, AccuracySettings
from space_clip_ros.io.atomic import atomic_path
from space_clip_ros.metrics import (
    BOUNDARY_THRESHOLDS,
    METRIC_NAMES,
    RunningMetrics,
    RunningRegions,
    format_table,
    region_name,
)

# The regions shown in tables and diagnostics: the primary threshold's. The sensitivity
# thresholds are in the JSON.
PRIMARY_REGIONS = tuple(region_name(k, BOUNDARY_THRESHOLDS[0]) for k in ("boundary", "interior"))


@dataclass
class AccuracyReport:
    settings: AccuracySettings = field(default_factory=AccuracySettings)
    frames: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    running: RunningMetrics = field(default_factory=RunningMetrics)
    regions: RunningRegions = field(default_factory=RunningRegions)

    def add(self, stamp_ns: int, metrics: dict[str, Any]) -> None:
        self.frames.append((stamp_ns, metrics))
        self.running.update(metrics)
        self.regions.update(metrics.get("regions", {}))

    def mean(self) -> dict[str, Any]:
        """The running whole-image means plus 'regions' (each over its own frames and pixels)."""
        return {**self.running.mean(), "regions": self.regions.mean()}

    def table(self, per_frame: bool = False) -> str:
        rows = [(f"{stamp / 1e9:.3f}"[-12:], m) for stamp, m in self.frames] if per_frame else []
        rows.append((f"mean ({self.running.count})", self.running.mean()))
        regions = self.regions.mean()
        rows += [
            (f"{name} ({regions[name]['images']})", regions[name])
            for name in PRIMARY_REGIONS
            if name in regions
        ]
        counts = [f"{n}: {regions[n]['pixels']} px" for n in PRIMARY_REGIONS if n in regions]
        note = f"\n{LIDAR_BOUNDARY_RULE} boundary rule; {', '.join(counts)}" if counts else ""
        return format_table(rows) + note

    def as_dict(self) -> dict:
        """JSON-ready; NaN (no LiDAR returns in view) becomes None, as JSON has no NaN."""
        return {
            "settings": {**asdict(self.settings), "boundary_rule": LIDAR_BOUNDARY_RULE},
            "frames_paired": len(self.frames),
            "frames_with_ground_truth": self.running.count,
            "mean": finite_or_none(self.mean()),
            "frames": [
                {"stamp_ns": stamp, **finite_or_none(metrics)} for stamp, metrics in self.frames
            ],
        }

    def write_json(self, path: Path | str) -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.as_dict(), indent=2, allow_nan=False) + "\n")


def diagnostic_values(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, value) pairs for a DiagnosticStatus: the whole-image metrics, then the primary
    threshold's boundary / interior metrics and pixel counts ('boundary_0.05/abs_rel', ...)."""
    values = [(name, f"{metrics[name]:.6g}") for name in METRIC_NAMES]
    regions = metrics.get("regions", {})
    for region in PRIMARY_REGIONS:
        if region in regions:
            values += [
                (f"{region}/{name}", f"{regions[region][name]:.6g}")
                for name in (*METRIC_NAMES, "pixels")
            ]
    return values


def finite_or_none(value: Any) -> Any:
    """NaN and infinities to None, through nested dicts (JSON has no NaN; reports use this)."""
    if isinstance(value, dict):
        return {name: finite_or_none(item) for name, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
