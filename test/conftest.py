"""Test-session environment shared by every test.

DDS traffic stays on this machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) and each pytest
session gets its own ROS domain, so parallel runs on one host never hear each other's topics.
These must be set before rclpy is first initialised, hence at conftest import time.
"""

import logging
import os
import random

import pytest

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach for the network


@pytest.fixture
def package_caplog(caplog, monkeypatch):
    """caplog that also sees the package's loggers where a ROS pytest plugin imported `launch`.

    launch installs LaunchLogger as the logger class, and its loggers do not propagate to the root
    logger that caplog listens on; every logger of this package created since is re-attached.
    """
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith(("space_clip_ros", "space-clip")) and isinstance(
            logger, logging.Logger
        ):
            monkeypatch.setattr(logger, "propagate", True)
    return caplog
