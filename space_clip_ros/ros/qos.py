"""QoS profiles for the node's topics, chosen by parameter.

Why the defaults are what they are (the most reported failure of depth nodes is a QoS mismatch
that leaves rviz2 empty):

* Outputs are RELIABLE. A reliable publisher serves both reliable subscribers (rviz2's default,
  `ros2 bag record`, depth_image_proc) and best-effort ones; a best-effort publisher serves
  only the latter. Measured with Fast DDS defaults between processes on one machine, best-effort
  delivery of a 1242x375 depth image or point cloud lost most messages (fragments dropped),
  while reliable delivery lost none.
* Input is BEST_AVAILABLE where the middleware offers it (Iron and later): the subscription then
  matches a reliable publisher (`ros2 bag play`, most drivers) as reliable, keeping large frames
  whole across processes, and still matches a best-effort publisher (drivers that use the
  sensor-data profile). A plain best-effort subscription would also match both, but turns
  reliable publishers into lossy ones for large images. On Humble, which lacks BEST_AVAILABLE,
  "best_available" falls back to RELIABLE and the node reports any best-effort publisher it
  cannot hear as an incompatible-QoS warning that names the parameter to change.
* KEEP_LAST with a small depth: the node only ever wants the newest frame.
"""

from __future__ import annotations

from typing import Optional

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions

INPUT_RELIABILITY_CHOICES = ("best_available", "reliable", "best_effort")
OUTPUT_RELIABILITY_CHOICES = ("reliable", "best_effort")

# Absent on Humble; its absence is reported once by the node, not here.
BEST_AVAILABLE: ReliabilityPolicy | None = getattr(ReliabilityPolicy, "BEST_AVAILABLE", None)


def reliability_policy(name: str) -> ReliabilityPolicy:
    """The policy for a parameter value; 'best_available' degrades to RELIABLE where missing."""
    if name == "best_available":
        return BEST_AVAILABLE if BEST_AVAILABLE is not None else ReliabilityPolicy.RELIABLE
    if name == "reliable":
        return ReliabilityPolicy.RELIABLE
    if name == "best_effort":
        return ReliabilityPolicy.BEST_EFFORT
    raise ValueError(f"unknown reliability '{name}'; use one of {INPUT_RELIABILITY_CHOICES}")


def make_qos(reliability: str, depth: int) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=reliability_policy(reliability),
        durability=DurabilityPolicy.VOLATILE,
    )


def qos_overrides() -> QoSOverridingOptions:
    """ROS's own QoS override parameters for a topic, as image_pipeline's nodes declare them.

    `qos_overrides.<fully qualified topic>.<publisher|subscription>.<reliability|history|depth>`
    from a params file or `-p` wins over the shorthand parameters (input_reliability, ...),
    which only set the default of those parameters. ROS declares them read-only when the entity
    is first created (outputs on configure, inputs on activate): from then on the QoS of that
    topic is fixed for the life of the process.
    """
    return QoSOverridingOptions.with_default_policies()


# The shorthand parameters that only seed the qos_overrides.* parameters above.
QOS_SHORTHANDS = ("input_reliability", "input_qos_depth", "output_reliability", "output_qos_depth")


def fixed_qos_refusal(changed: list[str], declared: list[str]) -> Optional[str]:
    """Why a runtime change of a QoS shorthand cannot take effect, or None when it can.

    Once ROS has declared a topic's (read-only) qos_overrides.* parameters, a new shorthand
    value would be silently ignored at the next configure; refusing it says so.
    """
    shorthands = [name for name in changed if name in QOS_SHORTHANDS]
    if not shorthands or not any(name.startswith("qos_overrides.") for name in declared):
        return None
    return (
        f"{', '.join(shorthands)}: the QoS of the node's topics is fixed once they were first "
        "created (ROS declares qos_overrides.* read-only); set it at start-up (-p or a params "
        "file) and restart the node"
    )
