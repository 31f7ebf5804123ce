"""One error family and one exit-code rule for every tool, node and training script.

Every error a user can act on derives from `SpaceClipError` and says what is wrong, where (the
file, the field or parameter) and the fix. Its class decides the exit code, so no tool decides
it again: usage and configuration problems (a bad argument, parameter, config file, checkpoint
or input file named by the user) exit 2 before any work starts; failures while working exit 1.
The mixed-in ValueError/RuntimeError keep `except ValueError` callers working.
"""

from __future__ import annotations

import logging
import sys
from typing import Callable, Optional, Sequence

EXIT_OK = 0
EXIT_FAILURE = 1  # the run started and something failed (inference, I/O, some inputs unreadable)
EXIT_USAGE = 2  # nothing ran: fix the command line, parameter, config or file and start again
EXIT_INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, what a shell reports for an interrupted command

# A message quotes user data (a YAML value, a file's bytes); a hostile or huge value must not
# become a 100 MB log line, so every quoted value goes through `quote`.
MAX_QUOTED_CHARS = 200


def quote(value: object, limit: int = MAX_QUOTED_CHARS) -> str:
    """repr() of a value, cut to `limit` characters, with control characters escaped.

    repr escapes newlines and ANSI escapes, so a quoted value cannot forge a log line.
    """
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def message(
    problem: str,
    *,
    source: Optional[object] = None,
    field: Optional[str] = None,
    fix: Optional[str] = None,
) -> str:
    """'<source>: <field>: <problem>. Fix: <fix>': the one shape every error message takes."""
    parts = [str(p) for p in (source, field) if p]
    text = ": ".join([*parts, problem])
    return f"{text}. Fix: {fix}" if fix else text


class SpaceClipError(Exception):
    """Base of every error a user can fix.

    `exit_code` is what a tool exits with when this error ends the run.
    """

    exit_code = EXIT_FAILURE

    def __init__(
        self,
        problem: str,
        *,
        source: Optional[object] = None,
        field: Optional[str] = None,
        fix: Optional[str] = None,
    ) -> None:
        super().__init__(message(problem, source=source, field=field, fix=fix))
        self.source, self.field, self.fix = source, field, fix


class ConfigError(SpaceClipError, ValueError):
    """A command line, parameter, config file or checkpoint is invalid: nothing ran."""

    exit_code = EXIT_USAGE


class UsageError(ConfigError):
    """The command line asks for something impossible: reported, after the tool's usage line
    (as argparse reports its own errors), before anything is loaded."""


class InputError(SpaceClipError, ValueError):
    """Data handed to the code (an image, a message, a dataset or KITTI file) cannot be used."""

    exit_code = EXIT_USAGE


class RuntimeFailure(SpaceClipError, RuntimeError):
    """The work started and failed for a reason outside the user's input (device, disk...)."""

    exit_code = EXIT_FAILURE


TOOL_LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def run_tool(
    prog: str,
    main: Callable[[Optional[Sequence[str]]], int],
    argv: Optional[Sequence[str]] = None,
    *,
    usage: Optional[Callable[[], str]] = None,
    log_level: Optional[int] = None,
) -> int:
    """Run a tool's main(); a SpaceClipError becomes '<prog>: error: ...' and its exit code,
    Ctrl-C one line and EXIT_INTERRUPTED instead of a KeyboardInterrupt traceback.

    usage: the tool's usage line (ArgumentParser.format_usage), printed before a UsageError.
    log_level: the tools' log lines on stderr from this level, in one format (TOOL_LOG_FORMAT).
    """
    if log_level is not None:
        logging.basicConfig(level=log_level, format=TOOL_LOG_FORMAT)
    try:
        return main(argv)
    except SpaceClipError as exc:
        if usage is not None and isinstance(exc, UsageError):
            print(usage(), end="", file=sys.stderr)
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted (Ctrl-C)", file=sys.stderr)
        return EXIT_INTERRUPTED
