"""requirements/: what `pip install -r requirements/runtime.txt` does to an environment.

Over a ROS underlay, that install must not break colcon: colcon-core pins setuptools<80, and
torch requires setuptools>=77.0.3, which pip satisfied with the newest setuptools (issue 17,
item 17). Read with packaging (pytest's own dependency), not by running pip: no index here.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[2]
COLCON_PIN = SpecifierSet("<80")  # colcon-core 0.19 .. 0.21 (checked below where installed)
SETUPTOOLS_RELEASES = ["65.5.0", "77.0.3", "78.1.1", "79.0.1", "80.0.0", "80.9.0", "84.2.1"]


def requirements(name: str) -> list[Requirement]:
    """The requirement lines of requirements/<name>, following -r includes."""
    found = []
    for line in (REPO / "requirements" / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            found += requirements(line[3:].strip())
        elif line and not line.startswith("-"):
            found.append(Requirement(line))
    return found


def setuptools_wanted_by(distribution: str) -> SpecifierSet | None:
    """What an installed distribution requires of setuptools (None: not installed, or nothing)."""
    try:
        requires = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:
        return None
    for line in requires:
        requirement = Requirement(line)
        if requirement.name == "setuptools" and (
            requirement.marker is None or requirement.marker.evaluate({"extra": ""})
        ):
            return requirement.specifier
    return None


@pytest.mark.parametrize("name", ["runtime.txt", "training.txt", "dev.txt"])
def test_installing_the_requirements_keeps_setuptools_below_colcons_pin(name):
    ours = SpecifierSet()
    for requirement in requirements(name):
        if requirement.name == "setuptools":
            ours &= requirement.specifier
    colcon = setuptools_wanted_by("colcon-core") or COLCON_PIN
    too_new = [v for v in SETUPTOOLS_RELEASES if v not in colcon]
    assert too_new and not [v for v in too_new if v in ours], (
        f"requirements/{name} lets pip install setuptools {too_new}, which colcon-core refuses"
    )
    # ... while a setuptools remains that every requirement here accepts, torch's included.
    torch = setuptools_wanted_by("torch") or SpecifierSet()
    assert [v for v in SETUPTOOLS_RELEASES if v in ours and v in colcon and v in torch]


def test_the_colcon_pin_recorded_here_is_colcons_own():
    installed = setuptools_wanted_by("colcon-core")
    if installed is None:
        pytest.skip("colcon-core is not installed here (it comes with a ROS install)")
    assert [v for v in SETUPTOOLS_RELEASES if v in installed] == [
        v for v in SETUPTOOLS_RELEASES if v in COLCON_PIN
    ], f"colcon-core now requires setuptools{installed}: update COLCON_PIN and requirements/"
