"""Test support that tests and benchmarks share: the tiny model, golden fixture, stand-in
estimators, camera-format encoders, the ROS test harness.

Not part of the shipped package (setup.py installs space_clip_ros only): it is imported from the
source tree, where pytest, `colcon test` (run in the source folder) and bench/ scripts run.
"""
