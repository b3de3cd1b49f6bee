"""Profiles on the command line: `--profile NAME` fills in the connection options.

The profiles file and its format are described in `mahiru.client.profiles`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from mahiru.client.profiles import Profile


def profile_defaults(commands: Mapping[str, click.Command], profile: Profile) -> dict[str, Any]:
    """Click's `default_map` for `commands` (by name) and those under them, from `profile`.

    Commands with a `--site` get the user credentials; those with a
    `--registry` get the party-client credentials.
    """
    defaults: dict[str, Any] = {}
    for name, command in commands.items():
        if isinstance(command, click.Group):
            inner = profile_defaults(command.commands, profile)
            if inner:
                defaults[name] = inner
            continue
        params = {param.name for param in command.params}
        values: dict[str, str | None] = {}
        if "site_url" in params:
            values.update(
                site_url=profile.site, cert=profile.cert, tls_key=profile.key, ca=profile.ca
            )
        elif "registry_url" in params:
            values.update(
                registry_url=profile.registry,
                cert=profile.client_cert,
                key=profile.client_key,
                ca=profile.ca,
            )
        if "party_key" in params:
            values["party_key"] = profile.signing_key
        if "party_dir" in params:
            values["party_dir"] = profile.party_dir
        kept = {key: value for key, value in values.items() if value is not None}
        if kept:
            defaults[name] = kept
    return defaults
