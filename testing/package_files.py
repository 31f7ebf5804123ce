"""What the package ships, read without building or importing launch: setup.py's arguments,
the files it installs, launch/depth.launch.py's constants."""

from __future__ import annotations

import ast
import os
import runpy
from pathlib import Path

import setuptools

REPO = Path(__file__).resolve().parents[1]
DEPTH_LAUNCH_FILE = REPO / "launch" / "depth.launch.py"


def setup_kwargs() -> dict:
    """What setup.py passes to setuptools.setup, evaluated from the repository root as colcon
    does."""
    captured = {}
    original, cwd = setuptools.setup, os.getcwd()
    setuptools.setup = lambda **kw: captured.update(kw)
    try:
        os.chdir(REPO)
        runpy.run_path(str(REPO / "setup.py"), run_name="__main__")
    finally:
        setuptools.setup = original
        os.chdir(cwd)
    return captured


def installed_files(kwargs: dict) -> set[str]:
    """Install-relative paths of setup.py's data_files ("share/<package>/launch/x.py")."""
    return {
        f"{dest}/{Path(src).name}" for dest, sources in kwargs["data_files"] for src in sources
    }


def launch_constants(launch_file: Path = DEPTH_LAUNCH_FILE) -> dict:
    """Module-level constant assignments of a launch file, read without importing launch."""
    tree = ast.parse(launch_file.read_text())
    out = {}
    for stmt in tree.body:
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
        ):
            try:
                out[stmt.targets[0].id] = ast.literal_eval(stmt.value)
            except ValueError:
                pass  # not a literal (e.g. built from other names)
    return out
