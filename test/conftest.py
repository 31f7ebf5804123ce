"""Test-session environment shared by every test.

DDS traffic stays on this machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) and each pytest
session gets its own ROS domain, so parallel runs on one host never hear each other's topics.
These must be set before rclpy is first initialised, hence at conftest import time.
"""

import os
import random

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach for the network
