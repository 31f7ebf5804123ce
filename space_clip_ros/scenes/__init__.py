"""Procedural scenes with exact geometry: the KITTI-like street, its camera and its LiDAR."""
