"""The device and precision names runtime.py accepts, without importing torch.

Command lines (`space_clip_ros.cli`) and node parameters (`ros/params.py`) list them while
answering --help and refusing a bad value, at the speed of argparse and rclpy; runtime.py
resolves them. One list, so no tool offers a choice the resolver refuses.
"""

from __future__ import annotations

PRECISION_NAMES = ("fp32", "fp16", "bf16")  # runtime.PRECISIONS maps each to its torch dtype
PRECISION_CHOICES = ("auto", *PRECISION_NAMES)
DEVICE_PATTERN = r"auto|cpu|cuda(:\d+)?"  # runtime.resolve_device checks the device exists
DEVICE_CHOICES_TEXT = "'auto', 'cpu', 'cuda' or 'cuda:N'"
