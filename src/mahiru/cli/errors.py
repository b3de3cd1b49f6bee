"""Mapping of Mahiru errors to exit codes and output: the one place the CLI does it."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

import click

from mahiru.errors import InvalidInput, MahiruError, PermissionDenied
from mahiru.exit_codes import (
    EXIT_DENIED,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_UNAVAILABLE,
    TimedOut,
    exit_code_for,
)

__all__ = [
    "EXIT_DENIED",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_UNAVAILABLE",
    "TimedOut",
    "detail_lines",
    "exit_code_for",
    "explanation_lines",
    "handle_errors",
    "report_error",
]

P = ParamSpec("P")
R = TypeVar("R")


#: Lines of a denial's explanation printed for people (--json gives all).
MAX_DETAIL_LINES = 40


def report_error(error: MahiruError, *, as_json: bool) -> None:
    """Print an error for people (on stderr) or scripts (JSON on stdout).

    A policy denial is followed by its explanation, indented (as `mahiru
    plan` prints it), up to MAX_DETAIL_LINES lines.
    """
    if as_json:
        click.echo(json.dumps(error.to_dict(), indent=2, default=str))
        return
    click.echo(f"error: {error.message}", err=True)
    if isinstance(error, PermissionDenied):
        lines = explanation_lines(error.details)
        for line in lines[:MAX_DETAIL_LINES]:
            click.echo(f"  {line}", err=True)
        if len(lines) > MAX_DETAIL_LINES:
            more = len(lines) - MAX_DETAIL_LINES
            click.echo(f"  ... and {more} more lines (--json shows them all)", err=True)


def explanation_lines(details: object) -> list[str]:
    """The explanation of a denial, from its details, as lines for people.

    A planner's denial ({"steps": ..., "outputs": ...}) is shown whole, site by
    site; a policy decision by the explanations of its unmet parts.
    """
    if isinstance(details, dict) and "steps" in details:
        return detail_lines(details)
    lines: list[str] = []

    def unmet(node: object) -> None:
        if not isinstance(node, dict):
            return
        failed = node.get("allowed") is False or node.get("met") is False
        explanation = node.get("explanation")
        children = [*_list(node.get("parts")), *_list(node.get("requirements"))]
        explained_below = any(isinstance(c, dict) and c.get("allowed") is False for c in children)
        if (
            failed
            and isinstance(explanation, str)
            and explanation not in lines
            and not explained_below
        ):
            lines.append(explanation)
        for child in children:
            unmet(child)

    unmet(details)
    return lines


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def detail_lines(details: object) -> list[str]:
    """Flatten denial details (nested mappings and lists of lines) into indented lines."""
    lines: list[str] = []
    if isinstance(details, dict):
        for key, value in details.items():
            inner = detail_lines(value)
            if inner:
                lines.append(f"{key}:")
                lines.extend(f"  {line}" for line in inner)
    elif isinstance(details, list):
        for value in details:
            lines.extend(detail_lines(value))
    elif details is not None:
        lines.append(str(details))
    return lines


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
        except OSError as error:
            # A file that cannot be read or written: the user's to fix, in one line.
            report_error(InvalidInput(describe_os_error(error)), as_json=as_json)
            sys.exit(EXIT_INVALID)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper


def describe_os_error(error: OSError) -> str:
    """One line for a file-system error: what failed, on which path."""
    reason = error.strerror or str(error) or type(error).__name__
    paths = [str(p) for p in (error.filename, error.filename2) if p is not None]
    if not paths:
        return reason
    return f"{' -> '.join(paths)}: {reason}"
