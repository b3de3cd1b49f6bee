"""Exit codes of every `mahiru` command and script, and the error each stands for.

The table, for people, is in docs/reference.md ("Command line: exit codes").
"""

from __future__ import annotations

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
#: A wait that ended by its --timeout; what was waited for goes on.
EXIT_TIMEOUT = 5
#: Interrupted (Ctrl-C), as shells report SIGINT.
EXIT_INTERRUPTED = 130


class TimedOut(MahiruError):
    """A wait ended by its timeout; what was waited for goes on (exit 5)."""

    type_name = "TimedOut"


def exit_code_for(error: MahiruError) -> int:
    """The exit code of an error (the table is in docs/reference.md)."""
    if isinstance(error, TimedOut):
        return EXIT_TIMEOUT
    if isinstance(error, InvalidInput | NotFound):
        return EXIT_INVALID
    if isinstance(error, PermissionDenied | Unauthenticated):
        return EXIT_DENIED
    if isinstance(error, Unavailable):
        return EXIT_UNAVAILABLE
    return EXIT_FAILED
