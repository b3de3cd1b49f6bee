"""The URLs the CLI connects to: which API a command talks to, and the shape its URL must have.

Checked before connecting, so a mistyped URL is named with the URL to use
instead (exit 2), never reported as an outage.
"""

from __future__ import annotations

from enum import Enum
from urllib.parse import SplitResult, urlsplit, urlunsplit

from mahiru.errors import InvalidInput
from mahiru.suggestions import closest

#: The last segment of the URL of each API of a site.
_SITE_APIS = ("internal", "external")


class Api(Enum):
    """Which API a command talks to, and so which certificate it takes."""

    SITE = "the site's internal API"
    REGISTRY = "the registry"


def check_url(url: str, api: Api) -> None:
    """InvalidInput, with the fix, for a URL that cannot be `api`'s."""
    if "://" not in url:
        raise InvalidInput(f"{url!r} has no scheme: Mahiru's APIs speak HTTPS, use https://{url}")
    parts = urlsplit(url)
    if parts.scheme == "http":
        fixed = "https://" + url.split("://", 1)[1]
        raise InvalidInput(f"{url} uses http://: Mahiru's APIs speak only HTTPS, use {fixed}")
    if parts.scheme != "https":
        raise InvalidInput(f"{url}: the scheme must be https, not {parts.scheme!r}")
    try:
        parts.port  # noqa: B018 (parsing it is the check)
    except ValueError:
        raise InvalidInput(f"{url}: the port is not a number between 0 and 65535") from None
    if not parts.hostname:
        raise InvalidInput(f"{url} names no host")
    path = parts.path.rstrip("/")
    if api is Api.SITE and not path.endswith("/internal"):
        _check_site_path(url, parts, path)
    if api is Api.REGISTRY and path.endswith(("/internal", "/external")):
        raise InvalidInput(
            f"{url} is a site's API; the registry has its own URL (without /internal)"
        )


def _check_site_path(url: str, parts: SplitResult, path: str) -> None:
    """InvalidInput for a site URL whose path does not end in /internal, with the fixed URL.

    A last segment that is a site API's name mistyped (`/interal`, `/external`)
    is replaced; any other path is taken as a prefix and kept (a proxy may serve
    the site under one).
    """
    head, _, last = path.rpartition("/")
    if last == "external":
        raise InvalidInput(
            f"{url} is a site's external API (for other sites); you use its internal API:"
            f" {_with_path(parts, head + '/internal')}"
        )
    if last and closest(last, _SITE_APIS) is not None:
        raise InvalidInput(
            f"{url} is not a site's internal API, whose URL ends in /internal:"
            f" did you mean {_with_path(parts, head + '/internal')}?"
        )
    raise InvalidInput(
        f"{url} is not a site's internal API, whose URL ends in /internal:"
        f" try {_with_path(parts, path + '/internal')} (`mahiru register show` lists the"
        " sites' URLs)"
    )


def _with_path(parts: SplitResult, path: str) -> str:
    return urlunsplit(parts._replace(path=path))
