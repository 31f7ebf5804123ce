"""Per-frame LiDAR accuracy, the running mean, and their table / JSON forms.

The one report format for the offline bag tool and the live node, so results compare directly.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from space_clip_ros.evaluation.lidar_gt import AccuracySettings
from space_clip_ros.metrics import RunningMetrics, format_table


@dataclass
class AccuracyReport:
    settings: AccuracySettings = field(default_factory=AccuracySettings)
    frames: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    running: RunningMetrics = field(default_factory=RunningMetrics)

    def add(self, stamp_ns: int, metrics: dict[str, float]) -> None:
        self.frames.append((stamp_ns, metrics))
        self.running.update(metrics)

    def table(self, per_frame: bool = False) -> str:
        rows = [(f"{stamp / 1e9:.3f}"[-12:], m) for stamp, m in self.frames] if per_frame else []
        rows.append((f"mean ({self.running.count})", self.running.mean()))
        return format_table(rows)

    def as_dict(self) -> dict:
        """JSON-ready; NaN (no LiDAR returns in view) becomes None, as JSON has no NaN."""
        return {
            "settings": asdict(self.settings),
            "frames_paired": len(self.frames),
            "frames_with_ground_truth": self.running.count,
            "mean": _finite_or_none(self.running.mean()),
            "frames": [
                {"stamp_ns": stamp, **_finite_or_none(metrics)} for stamp, metrics in self.frames
            ],
        }

    def write_json(self, path: Path | str) -> None:
        Path(path).write_text(json.dumps(self.as_dict(), indent=2, allow_nan=False) + "\n")


def _finite_or_none(metrics: dict[str, float]) -> dict[str, float | None]:
    return {name: value if math.isfinite(value) else None for name, value in metrics.items()}
