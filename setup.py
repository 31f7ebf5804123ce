"""ament_python build for space_clip_ros.

Runtime Python dependencies (torch, open_clip, ...) live in requirements/*.txt rather than in
install_requires: colcon runs this file with setuptools, which would otherwise try to fetch
multi-GB wheels itself. See README.md for the two supported installs (colcon and pip).
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "space_clip_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/examples", glob("examples/*.py")),
        (
            f"share/{PACKAGE}/config",
            glob("config/*.yaml") + glob("config/*.rviz") + glob("config/*.xml"),
        ),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    python_requires=">=3.10",
    maintainer="space_clip_ros developers",
    maintainer_email="space-clip-ros@example.com",
    description=(
        "Metric monocular depth for ROS 2 with SPACE-CLIP "
        "(frozen CLIP encoder + dual-pathway decoder)."
    ),
    license="Apache-2.0",
    # colcon picks its pytest runner from extras_require["test"] (tests_require is gone from
    # setuptools >= 72 and made colcon fall back to unittest, which found no tests).
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            # ROS executables (ros2 run space_clip_ros <name>) use ROS-style underscores.
            f"space_clip_depth = {PACKAGE}.ros.node_cli:space_clip_depth",
            f"space_clip_bag_replay = {PACKAGE}.ros.bag_replay:main",
            f"space_clip_accuracy = {PACKAGE}.ros.accuracy_node:main",
            # Offline command-line tools use dashes.
            f"space-clip-predict = {PACKAGE}.predict:main",
            f"space-clip-depth = {PACKAGE}.predict:deprecated_main",  # old name, one release
            f"space-clip-demo = {PACKAGE}.ros.demo:main",
            f"space-clip-kitti2bag = {PACKAGE}.cli.kitti2bag:main",
            f"space-clip-generate-drive = {PACKAGE}.kitti.generated_drive:main",
            f"space-clip-bag-accuracy = {PACKAGE}.cli.bag_accuracy:main",
            f"space-clip-verify = {PACKAGE}.cli.verify:main",
            f"space-clip-import = {PACKAGE}.cli.import_reference:main",
        ],
    },
)
