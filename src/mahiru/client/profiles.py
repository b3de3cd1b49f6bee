"""Profiles: named sets of URLs and credentials, so that commands need no connection options.

The profiles live in one TOML file, `~/.config/mahiru/config.toml` (or
`$XDG_CONFIG_HOME/mahiru/config.toml`; `MAHIRU_CONFIG` names another file):

    default = "alice"

    [profiles.alice]
    site = "https://site1.example.org:8443/internal"
    registry = "https://registry.example.org:8443"
    cert = "p1/users/alice.crt"          # user certificate, for the site
    key = "p1/users/alice.key"
    client_cert = "p1/party-client.crt"  # party-client certificate, for the registry
    client_key = "p1/party-client.key"
    ca = "pki/ca.crt"
    signing_key = "p1/party.key"         # the party's main key, for rules
    party_dir = "p1"                     # for `mahiru register`

Relative paths are relative to the file's folder. `--profile NAME` (or
`MAHIRU_PROFILE`) picks a profile, else `default` if set. A profile only
supplies defaults: options given on the command line or in the environment
still win. The site commands take the user certificate, the registry
commands the party-client certificate, so one profile serves both.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from mahiru.errors import InvalidInput

CONFIG_ENV = "MAHIRU_CONFIG"
PROFILE_ENV = "MAHIRU_PROFILE"


@dataclass(frozen=True)
class Profile:
    """Where a user's site and registry are, and the files to reach them with."""

    name: str
    site: str | None = None
    registry: str | None = None
    cert: str | None = None
    key: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    ca: str | None = None
    signing_key: str | None = None
    party_dir: str | None = None


#: Said when the profiles file is not one: the usual mix-up is a service's configuration.
_NOT_A_SERVICE = (
    f" ({CONFIG_ENV} names the command line's profiles file; a service's configuration"
    " goes to `mahiru serve --config`, or to MAHIRU_CONFIG_FILE for the service images)"
)

_PATH_FIELDS = ("cert", "key", "client_cert", "client_key", "ca", "signing_key", "party_dir")
_FIELDS = tuple(f.name for f in fields(Profile) if f.name != "name")


def config_path(environ: dict[str, str] | None = None) -> Path:
    """The profiles file: MAHIRU_CONFIG, else the XDG configuration folder's mahiru/config.toml."""
    env = os.environ if environ is None else environ
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "mahiru" / "config.toml"


def load_profile(name: str | None, path: Path) -> Profile | None:
    """The profile `name` (or the file's default) from `path`; None if none is asked for.

    Asking for a profile that is not there, or a malformed file, is InvalidInput.
    """
    if name is None and not path.is_file():
        return None
    if not path.is_file():
        raise InvalidInput(
            f"no profile {name!r}: {path} does not exist (set {CONFIG_ENV} to another file)"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise InvalidInput(f"{path}: not a readable TOML file: {error}{_NOT_A_SERVICE}") from None
    unknown = set(data) - {"default", "profiles"}
    if unknown:
        raise InvalidInput(
            f"{path}: unknown key(s) {', '.join(sorted(unknown))}: a profiles file holds"
            f" `default` and [profiles.NAME] tables{_NOT_A_SERVICE}"
        )
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        raise InvalidInput(f"{path}: 'profiles' must be a table of profiles")
    if name is None:
        default = data.get("default")
        if default is None:
            return None
        if not isinstance(default, str):
            raise InvalidInput(f"{path}: 'default' must be the name of a profile")
        name = default
    entry = profiles.get(name)
    if not isinstance(entry, dict):
        known = ", ".join(sorted(profiles)) or "none"
        raise InvalidInput(f"{path}: no profile {name!r} (profiles: {known})")
    unknown = set(entry) - set(_FIELDS)
    if unknown:
        raise InvalidInput(
            f"{path}: profile {name!r}: unknown key(s) {', '.join(sorted(unknown))}"
            f" (known: {', '.join(_FIELDS)})"
        )
    values: dict[str, str] = {}
    for key, value in entry.items():
        if not isinstance(value, str):
            raise InvalidInput(f"{path}: profile {name!r}: {key} must be a string")
        if key in _PATH_FIELDS:
            value = str((path.parent / Path(value).expanduser()).resolve())
        values[key] = value
    return Profile(name, **values)


def write_profiles(path: Path, profiles: list[Profile], *, default: str | None = None) -> None:
    """Write `profiles` as a profiles file (absolute paths), replacing `path`."""
    lines = [f"default = {_toml_string(default)}", ""] if default else []
    for profile in profiles:
        lines.append(f"[profiles.{_toml_string(profile.name)}]")
        for key in _FIELDS:
            value = getattr(profile, key)
            if value is not None:
                lines.append(f"{key} = {_toml_string(value)}")
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")


def _toml_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
