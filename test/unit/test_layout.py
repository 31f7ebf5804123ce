"""The layout's import rules (docs/ARCHITECTURE.md, "What each folder may import"), enforced.

Read with ast, not by importing, so a rule breaks here even where rclpy is not installed: pure
code never imports ROS (it must run in training, bench and plain Python); training imports the
model, never the node; every third-party package the code imports is declared in requirements/.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "space_clip_ros"
ROS_LAYER = PACKAGE / "ros"
# Modules a plain `pip install` of the ROS wheels or a ROS install provides, never PyPI proper.
ROS_TOP_LEVEL = {
    "rclpy",
    "launch",
    "launch_ros",
    "launch_testing",
    "message_filters",
    "cv_bridge",
    "image_geometry",
    "tf2_ros",
    "sensor_msgs_py",
    "rosidl_runtime_py",
    "rpyutils",
}
# Import name -> distribution name where they differ.
DISTRIBUTION = {
    "PIL": "pillow",
    "yaml": "pyyaml",
    "open_clip": "open_clip_torch",
    "cv2": "opencv-python-headless",
}


def _is_ros(module: str) -> bool:
    top = module.split(".")[0]
    return top in ROS_TOP_LEVEL or top.endswith(("_msgs", "_srvs", "_interfaces"))


def _imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, absolute module name, at module level?) of every import in a file, lazy ones too."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue  # relative imports stay inside their package
        found += [(node.lineno, name, id(node) in top_level) for name in names]
    return found


def _python_files(*folders: Path) -> list[Path]:
    return sorted(p for folder in folders for p in folder.rglob("*.py"))


def _requirements(*names: str) -> set[str]:
    """Distribution names in requirements/<name>.txt (following -r includes), lower case."""
    found: set[str] = set()
    for name in names:
        for line in (REPO / "requirements" / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line.startswith("-r "):
                found |= _requirements(line[3:].strip())
            elif line:
                found.add(re.split(r"[<>=!~\[; ]", line)[0].lower().replace("_", "-"))
    return found


def _third_party(module: str) -> str | None:
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top in ("space_clip_ros", "training", "__future__"):
        return None
    return DISTRIBUTION.get(top, top).lower().replace("_", "-")


def test_only_the_ros_layer_imports_ros():
    offenders = [
        f"{path.relative_to(REPO)}:{line}: {module}"
        for path in _python_files(PACKAGE, REPO / "training")
        if ROS_LAYER not in path.parents
        for line, module, _ in _imports(path)
        if _is_ros(module)
    ]
    assert not offenders, "ROS imported outside space_clip_ros/ros/:\n" + "\n".join(offenders)
    # Not vacuous: the scan does see the ROS layer's own imports.
    assert any(_is_ros(m) for path in _python_files(ROS_LAYER) for _, m, _ in _imports(path))


def test_nothing_below_the_ros_layer_or_in_training_imports_it():
    offenders = [
        f"{path.relative_to(REPO)}:{line}: {module}"
        for path in _python_files(PACKAGE, REPO / "training")
        if ROS_LAYER not in path.parents
        for line, module, _ in _imports(path)
        if module == "space_clip_ros.ros" or module.startswith("space_clip_ros.ros.")
    ]
    assert not offenders, "the ROS layer imported from pure code:\n" + "\n".join(offenders)


@pytest.mark.parametrize(
    "folder, requirement_files",
    [
        (PACKAGE, ("runtime.txt",)),
        (REPO / "training", ("training.txt",)),
    ],
)
def test_every_third_party_import_is_declared(folder, requirement_files):
    """Module-level imports need the folder's own requirements; lazy (optional) ones any file's."""
    declared = _requirements(*requirement_files)
    anywhere = _requirements("dev.txt")
    missing = [
        f"{path.relative_to(REPO)}:{line}: {module} ({dist})"
        for path in _python_files(folder)
        if ROS_LAYER not in path.parents
        for line, module, module_level in _imports(path)
        if (dist := _third_party(module)) and dist not in (declared if module_level else anywhere)
    ]
    assert not missing, "imported but not declared in requirements/:\n" + "\n".join(missing)


def test_the_shipped_code_never_imports_the_test_support():
    """testing/ (tiny models, golden, stand-ins) is not installed: an import of it from the
    package, training or an example would work in the source tree and fail for every user."""
    from testing.package_files import setup_kwargs

    offenders = [
        f"{path.relative_to(REPO)}:{line}: {module}"
        for path in _python_files(PACKAGE, REPO / "training", REPO / "examples", REPO / "launch")
        for line, module, _ in _imports(path)
        if module.split(".")[0] == "testing"
    ]
    assert not offenders, "the shipped code imports testing/:\n" + "\n".join(offenders)
    packages = setup_kwargs()["packages"]
    assert "space_clip_ros.model" in packages  # the list is the real one
    assert not [p for p in packages if p.split(".")[0] in ("testing", "test", "training")]


def test_the_rules_see_a_violation(tmp_path):
    """The checks above would catch a lazy rclpy import and an undeclared package."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import numpy\n\ndef f():\n    from sensor_msgs.msg import Image\n    import rclpy\n"
    )
    modules = [(module, level) for _, module, level in _imports(bad)]
    assert modules == [("numpy", True), ("sensor_msgs.msg", False), ("rclpy", False)]
    assert _is_ros("sensor_msgs.msg") and _is_ros("rclpy") and not _is_ros("rosbags.rosbag2")
    assert _third_party("PIL.Image") == "pillow" and _third_party("json") is None


def test_open_clip_bound_is_stated_once_and_a_moved_internal_names_it(monkeypatch):
    """open_clip_api.py states the range requirements/runtime.txt holds; import errors name it."""
    from space_clip_ros.model import open_clip_api

    requirement = next(
        line.strip()
        for line in (REPO / "requirements" / "runtime.txt").read_text().splitlines()
        if line.startswith("open_clip_torch")
    )
    assert requirement == f"open_clip_torch{open_clip_api.SUPPORTED_OPEN_CLIP}"

    # An open_clip whose model module lost the private factory: load a fresh copy of the module.
    monkeypatch.setitem(sys.modules, "open_clip.model", types.ModuleType("open_clip.model"))
    spec = importlib.util.spec_from_file_location("open_clip_api_probe", open_clip_api.__file__)
    with pytest.raises(ImportError, match=re.escape(open_clip_api.SUPPORTED_OPEN_CLIP)):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
