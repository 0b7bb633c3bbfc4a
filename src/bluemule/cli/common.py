"""What every command shares: exit codes, error reporting, JSON output, atomic writes."""

from __future__ import annotations

import contextlib
import enum
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import click

from bluemule import fsutil


class ExitCode(enum.IntEnum):
    """Exit statuses of every ``bluemule`` command (documented in ``docs/cli.md``)."""

    OK = 0
    """Done; for checks: everything valid."""
    CHECK_FAILED = 1
    """The input was read but an integrity or consistency check failed."""
    BAD_INPUT = 2
    """Unreadable input, not a Particle module/bundle, or wrong usage."""
    INTERNAL = 70
    """A bug in bluemule (EX_SOFTWARE); rerun with BLUEMULE_DEBUG=1 for a traceback."""


class CommandError(click.ClickException):
    """A one-line error for the user, with an exit code."""

    def __init__(self, message: str, code: ExitCode = ExitCode.BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = int(code)  # type: ignore[misc]  # click declares a ClassVar

    def show(self, file: Any = None) -> None:
        """Print ``bluemule: error: <message>`` on stderr."""
        click.echo(f"bluemule: error: {self.format_message()}", err=True)


def fail(message: str, code: ExitCode = ExitCode.BAD_INPUT) -> NoReturn:
    """Stop the command with a one-line message."""
    raise CommandError(message, code)


def emit_json(value: Any) -> None:
    """Print a JSON document on stdout."""
    click.echo(json.dumps(value, indent=2, sort_keys=False))


def write_atomically(path: Path, data: bytes) -> None:
    """Write an output file (mode 0644) so readers see the old file or the whole new one."""
    path = path.expanduser()
    try:
        fsutil.write_atomically(path, data, mode=0o644)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")


@contextlib.contextmanager
def debug_tracebacks() -> Iterator[None]:
    """Turn unexpected exceptions into a one-line message unless BLUEMULE_DEBUG is set."""
    try:
        yield
    except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
        raise
    except Exception as exc:
        if os.environ.get("BLUEMULE_DEBUG"):
            raise
        click.echo(
            f"bluemule: internal error: {type(exc).__name__}: {exc} "
            "(set BLUEMULE_DEBUG=1 for a traceback)",
            err=True,
        )
        sys.exit(ExitCode.INTERNAL)


def quiet_bumble() -> None:
    """Bumble logs packets in flight at a disconnect as warnings; a user needs none of it."""
    import logging  # noqa: PLC0415

    logging.getLogger("bumble").setLevel(logging.ERROR)
