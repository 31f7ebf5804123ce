"""Parameters the user gave that this node would otherwise ignore without a word.

rclpy keeps an override for a parameter nobody declares (`-p chekpoint:=...`, a typo in a
params file) and never says so, and it silently drops params-file entries keyed for another
node name, so the node starts with defaults the user thinks they replaced. These checks turn
each case into a ParameterError (exit 2) naming the parameter or file, with a did-you-mean;
a params file rcl cannot parse becomes the same kind of error instead of a traceback.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import yaml

from space_clip_ros.errors import quote
from space_clip_ros.ros.params import ParameterError

# Declared later than start-up (publishers made with qos_overriding_options declare them).
DEFERRED_PREFIXES = ("qos_overrides.",)
PARAMS_KEY = "ros__parameters"


def check_declared(node: Any, declared: Iterable[str], listing: str) -> None:
    """Raise ParameterError for every override on `node` that is not a declared parameter.

    `declared` are the names the node knows (its own and rclpy's use_sim_time etc.), `listing`
    where the user finds them. The overrides are rclpy's private `_parameter_overrides` (from
    -p, --params-file and the constructor); there is no public accessor in Humble..Kilted.
    """
    known = sorted(set(declared))
    problems = []
    for name in sorted(getattr(node, "_parameter_overrides", {}) or {}):
        if name in known or name.startswith(DEFERRED_PREFIXES):
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"see {listing} for the list"
        problems.append(
            f"{quote(name, 80)}: not a parameter of this node ({hint}); "
            "remove it or correct the name (ros2 param list shows the declared ones)"
        )
    if problems:
        raise ParameterError("unknown parameters:\n  " + "\n  ".join(problems))


def params_files(argv: Optional[Sequence[str]]) -> list[Path]:
    """The --params-file paths in the --ros-args sections of argv."""
    files, inside, args = [], False, list(argv or [])
    for i, arg in enumerate(args):
        if arg == "--ros-args":
            inside = True
        elif arg == "--":
            inside = False
        elif inside and arg == "--params-file" and i + 1 < len(args):
            files.append(Path(args[i + 1]))
    return files


def explain_init_failure(exc: Exception, argv: Optional[Sequence[str]]) -> ParameterError:
    """A ParameterError for rclpy.init() failing on the command line's ROS arguments.

    rcl's own message names neither a fix nor, for YAML problems, a readable reason; each
    params file is checked here so the message names the file and what is wrong with it.
    """
    fix = "fix the file (a params file maps node names to ros__parameters) or drop the argument"
    for path in params_files(argv):
        if not path.is_file():
            return ParameterError(
                f"--params-file {path}: no such file; check the path (relative paths start "
                "from the current directory)"
            )
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            return ParameterError(f"--params-file {path}: {_reason(err)}; {fix}")
        if not isinstance(data, dict):
            return ParameterError(f"--params-file {path}: not a mapping of node names; {fix}")
    return ParameterError(
        f"the ROS arguments cannot be parsed: {quote(str(exc), 600)}; write parameters as "
        "-p name:=value and params files as --params-file FILE"
    )


def _reason(err: Exception) -> str:
    """'line L, column C: problem' for a YAML error (its str() spans five lines), else str()."""
    mark, problem = getattr(err, "problem_mark", None), getattr(err, "problem", None)
    if mark is None or not problem:
        return quote(str(err), 400)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem[:200]}"


def check_params_files_target(argv: Optional[Sequence[str]], fqn: str) -> None:
    """Raise ParameterError when a --params-file has parameters, but none for node `fqn`.

    rcl applies only entries whose key matches the node (name, /namespace/name, or wildcards
    /** and *); a file written for another node name is otherwise dropped without a word.
    """
    problems = []
    for path in params_files(argv):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # rcl parsed it; a file we cannot read again is not ours to judge
        keys = _node_keys(data)
        if keys and not any(_matches(key, fqn) for key in keys):
            shown = ", ".join(quote(k, 60) for k in keys[:5])
            problems.append(
                f"--params-file {path}: has parameters for {shown} but none for this node "
                f"({fqn}); key them under '{fqn.rsplit('/', 1)[-1]}:' or '/**:'"
            )
    if problems:
        raise ParameterError("parameters for another node:\n  " + "\n  ".join(problems))


def _node_keys(data: Any, prefix: str = "") -> list[str]:
    """Node-name keys of a params file: the key paths that lead to a ros__parameters mapping."""
    if not isinstance(data, dict):
        return []
    keys = []
    for key, value in data.items():
        if key == PARAMS_KEY:
            keys.append(prefix or "/")
        elif isinstance(value, dict):
            keys.extend(_node_keys(value, f"{prefix}/{str(key).strip('/')}"))
    return keys


def _matches(key: str, fqn: str) -> bool:
    """rcl's node-name match: '*' is one name token, '**' any number of tokens.

    A key without a leading slash is taken from the root, as rcl does: 'space_clip_depth'
    does not match /cam/space_clip_depth.
    """
    parts = [p for p in key.strip("/").split("/") if p]
    pattern = ""
    for part in parts:
        if part == "**":
            pattern += "(/[^/]+)*"
        else:
            pattern += "/" + re.escape(part).replace(r"\*", "[^/]+")
    return re.fullmatch(pattern or "/", fqn) is not None
