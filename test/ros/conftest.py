"""The DDS tests' harness (testing/harness.py): one per module, clean for every test."""

import pytest

from testing.harness import Harness


@pytest.fixture(scope="module")
def ros_module(tiny_checkpoint):
    """One rclpy context, client node and executor for a module: set up once, it saves each
    test a second of DDS discovery."""
    with Harness(checkpoint=tiny_checkpoint) as harness:
        yield harness


@pytest.fixture
def ros(ros_module):
    """The module's harness; the nodes and client endpoints a test made are gone after it."""
    yield ros_module
    ros_module.cleanup()


@pytest.fixture
def own_ros(tiny_checkpoint):
    """A harness of the test's own: a fresh rclpy context the test may see shut down (a node
    that gives up, Ctrl-C during inference)."""
    with Harness("space_clip_own_client", checkpoint=tiny_checkpoint) as harness:
        yield harness
