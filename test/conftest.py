"""Test-session environment, folder markers and fixtures shared by every test.

Tests live by what they need: test/unit (no DDS, no ROS install), test/ros (real rclpy nodes
over DDS: marker `dds`), test/launch (launch_testing, the ros2 CLI, a colcon-built package:
marker `ros_install`; `launch` is launch_pytest's marker). The markers come from the folder, so
`-m "not dds and not ros_install"` is the ROS-free suite; test/unit's own conftest.py refuses an
rclpy start there.

DDS traffic stays on this machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) and each pytest
session gets its own ROS domain, so parallel runs on one host never hear each other's topics.
These must be set before rclpy is first initialised, hence at conftest import time.
"""

import logging
import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach for the network

TEST_DIR = Path(__file__).resolve().parent
FOLDER_MARKERS = {"ros": "dds", "launch": "ros_install"}  # test/<folder>/ -> marker


def pytest_collection_modifyitems(config, items) -> None:
    """Mark each test by its folder (registered in setup.cfg), never by hand per test."""
    for item in items:
        try:
            folder = Path(item.path).resolve().relative_to(TEST_DIR).parts[0]
        except ValueError:  # collected from outside test/
            continue
        if folder in FOLDER_MARKERS:
            item.add_marker(FOLDER_MARKERS[folder])


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint directory of the tiny random SPACE-CLIP (testing/tiny.py), shared read-only
    by every test that needs "some loadable checkpoint" rather than particular weights."""
    from testing.tiny import save_tiny_checkpoint

    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="session")
def golden():
    """The committed golden fixture (testing/golden.py): checkpoint, backbone, image, depth."""
    from testing.golden import load_golden

    return load_golden()


@pytest.fixture
def caplog(caplog, monkeypatch):
    """pytest's caplog, working under the ROS pytest plugins too (every `colcon test` run).

    launch_testing's plugin imports `launch`, which makes LaunchLogger the logger class, and its
    loggers do not propagate to the root logger caplog listens on. For the test's duration,
    loggers that exist are re-attached and new ones are plain `logging.Logger`s again.
    """
    previous = logging.getLoggerClass()
    logging.setLoggerClass(logging.Logger)
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and not logger.propagate:
            monkeypatch.setattr(logger, "propagate", True)
    yield caplog
    logging.setLoggerClass(previous)
