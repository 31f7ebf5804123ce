"""What setup.py hands setuptools, read without building: the tests of installed files use it."""

from __future__ import annotations

import os
import runpy
from pathlib import Path

import setuptools

REPO = Path(__file__).resolve().parents[1]


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
