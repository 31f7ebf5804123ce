"""space_clip_ros: metric monocular depth for ROS 2 with SPACE-CLIP."""
import os

__version__ = "0.1.0"

# CPU inference here always shares the cores with I/O threads (DDS, image decoding, the executor).
# OpenMP's default busy-waiting keeps torch's idle workers spinning on those cores: on a 2-core
# machine the node's predict() ran 3x slower than bare until the workers were told to sleep
# (bench/RESULTS.md). Set before torch loads libgomp; an explicit user setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
