"""Procedural scenes with exact geometry: the KITTI-like street, its camera frames and its LiDAR."""
