"""Connection options that a profile (`--profile`) or the environment may give instead.

Such an option is required only when nothing gives it: its help says
`[required]` only then, and when it is missing the error says every way
to give it, `--profile` included.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import click
from click.types import OptionHelpExtra

from mahiru.client.profiles import CONFIG_ENV, PROFILE_ENV

#: The variable the service images read their configuration file from (mahiru.asgi),
#: easily taken for the profiles file's.
SERVICE_CONFIG_ENV = "MAHIRU_CONFIG_FILE"


class ProfileOption(click.Option):
    """A required option whose value may come from the command line, its variable or a profile."""

    def get_help_extra(self, ctx: click.Context) -> OptionHelpExtra:
        """Click's extras for the help line, without `required` when something gives a value."""
        if self.required and self.provided(ctx):
            shown = copy.copy(self)
            shown.required = False
            return click.Option.get_help_extra(shown, ctx)
        return super().get_help_extra(ctx)

    def provided(self, ctx: click.Context) -> bool:
        """Whether the environment or the chosen profile gives this option a value."""
        if self.resolve_envvar_value(ctx) is not None:
            return True
        return self.name is not None and ctx.lookup_default(self.name, call=False) is not None

    def process_value(self, ctx: click.Context, value: Any) -> Any:
        """Click's processing, with a missing value named with every way to give it."""
        try:
            return super().process_value(ctx, value)
        except click.MissingParameter as error:
            if error.param is not self:
                raise
            variable = "set its variable, " if self.envvar else ""
            mixed_up = ""
            if os.environ.get(SERVICE_CONFIG_ENV) and not os.environ.get(CONFIG_ENV):
                mixed_up = (
                    f". {SERVICE_CONFIG_ENV} is set, but it names a service's configuration"
                    f" file; the profiles file is named by {CONFIG_ENV}"
                )
            raise click.MissingParameter(
                f"Give it, {variable}or pick a profile that has it with --profile NAME"
                f" (or {PROFILE_ENV}=NAME; the profiles are in ${CONFIG_ENV}, else in"
                f" ~/.config/mahiru/config.toml){mixed_up}",
                ctx=ctx,
                param=self,
            ) from None
