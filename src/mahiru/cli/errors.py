"""Mapping of Mahiru errors to exit codes and output: the one place the CLI does it."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

import click

from mahiru.errors import (
    InvalidInput,
    MahiruError,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_DENIED = 3
EXIT_UNAVAILABLE = 4

P = ParamSpec("P")
R = TypeVar("R")


def exit_code_for(error: MahiruError) -> int:
    """The exit code documented in STYLE.md for an error."""
    if isinstance(error, InvalidInput | NotFound):
        return EXIT_INVALID
    if isinstance(error, PermissionDenied | Unauthenticated):
        return EXIT_DENIED
    if isinstance(error, Unavailable):
        return EXIT_UNAVAILABLE
    return EXIT_FAILED


def report_error(error: MahiruError, *, as_json: bool) -> None:
    """Print an error for people (one line on stderr) or scripts (JSON on stdout)."""
    if as_json:
        click.echo(json.dumps(error.to_dict(), indent=2, default=str))
    else:
        click.echo(f"error: {error.message}", err=True)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Run a command, turning Mahiru errors into their exit code and message."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        as_json = bool(kwargs.get("as_json", False))
        try:
            return func(*args, **kwargs)
        except MahiruError as error:
            report_error(error, as_json=as_json)
            sys.exit(exit_code_for(error))

    return wrapper
