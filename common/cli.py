"""Shared command-line plumbing: one-line errors and exit codes.

Every hospfed command runs through :func:`run_app`: a user error (bad flag,
bad value, missing data) prints ``PROG: error: ...`` on one line and exits
with code 2; a failed run exits non-zero with what failed; no traceback is
shown for either.
"""

from __future__ import annotations

import sys
from typing import Any

import click
import typer

from hospfed.common.errors import EXIT_USAGE, HospfedError


def make_app(help_text: str) -> typer.Typer:
    """Build a hospfed command group: help on every command, no tracebacks.

    Parameters
    ----------
    help_text : str
        One line saying what the command is for.

    Returns
    -------
    typer.Typer
        A Typer app whose subcommands are always named (even if only one).

    """
    app = typer.Typer(
        help=help_text,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(lambda: None)  # keep subcommand names with one command
    return app


def run_app(app: Any, prog: str, argv: list[str] | None = None) -> int:
    """Run a Typer app; turn errors into one line and an exit code.

    Parameters
    ----------
    app : typer.Typer
        The command.
    prog : str
        Program name used in messages.
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The process exit code.

    """
    try:
        result = app(args=argv, prog_name=prog, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except (click.ClickException, click.exceptions.Abort, HospfedError, OSError) as exc:
        code, message = _code_and_message(exc)
        return code if message is None else fail(prog, message, code)
    return result if isinstance(result, int) else 0


def _code_and_message(exc: BaseException) -> tuple[int, str | None]:
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):
        return EXIT_USAGE, None  # Typer has already shown the help
    if isinstance(exc, click.UsageError):
        return EXIT_USAGE, exc.format_message()
    if isinstance(exc, click.ClickException):
        return exc.exit_code, exc.format_message()
    if isinstance(exc, click.exceptions.Abort):
        return 130, "aborted"
    if isinstance(exc, HospfedError):
        return exc.exit_code, str(exc)
    return 1, str(exc)  # OSError: disk full, permission denied, ...


def fail(prog: str, message: str, code: int) -> int:
    """Print ``PROG: error: MESSAGE`` (one line) to stderr; return ``code``."""
    one_line = " ".join(message.split())
    print(f"{prog}: error: {one_line}", file=sys.stderr)
    return code
