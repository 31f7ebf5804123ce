"""Scoring depth against LiDAR on any robot: stamp pairing, tf lookups, sparse truth, reports.

Used by the live accuracy node, the offline bag scorer and the KITTI replay alike; no ROS imports.
"""
