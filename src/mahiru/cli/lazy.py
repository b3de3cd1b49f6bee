"""A command group that imports each sub-command's module only when that command is used.

The test suite starts `mahiru` hundreds of times, and the server commands'
modules pull in the database, web and container libraries: importing them all
to run one client command, or to list the commands, cost seconds each time.
A `LazyGroup` knows each command by name, where it lives and its one-line
summary (`LazyCommand`), so `mahiru --help` and shell completion of command
names import nothing, and running or asking for the help of one command
imports that command's module alone.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click
from click.exceptions import NoSuchCommand

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem


@dataclass(frozen=True, slots=True)
class LazyCommand:
    """A command known before its module is imported.

    `target` is "module:attribute"; `summary` is the command's short help as
    `mahiru --help` lists it (its help text's first sentence).
    """

    name: str
    target: str
    summary: str

    def load(self) -> click.Command:
        """Import the command's module and return the command it names."""
        module_name, _, attribute = self.target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.target} is not a click command")
        return command

    def stand_in(self) -> click.Command:
        """A command with only this one's name and summary, to list it without importing it."""
        return click.Command(self.name, help=self.summary)


class LazyGroup(click.Group):
    """A click group whose commands, given as `LazyCommand`s, are imported on first use.

    `prepare` is called once with each command's name and the command as it is
    loaded (to finish its help text, say). Commands added with `add_command` are used as they are.
    """

    def __init__(
        self,
        *args: Any,
        lazy_commands: Iterable[LazyCommand] = (),
        prepare: Callable[[str, click.Command], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = {entry.name: entry for entry in lazy_commands}
        self._prepare = prepare

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command's name, loaded or not, in order."""
        return sorted({*self.commands, *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command named `cmd_name`, importing its module the first time it is asked for."""
        command = self.commands.get(cmd_name)
        entry = self.lazy_commands.get(cmd_name)
        if command is None and entry is not None:
            command = entry.load()
            if self._prepare is not None:
                self._prepare(cmd_name, command)
            self.add_command(command, cmd_name)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """As click's, but a mistyped name is compared with every command, loaded or not."""
        try:
            return super().resolve_command(ctx, args)
        except NoSuchCommand as error:
            raise NoSuchCommand(
                error.command_name, possibilities=self.list_commands(ctx), ctx=ctx
            ) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List every command with its summary, importing none that is not loaded yet."""
        listed = [(name, self._listed(name)) for name in self.list_commands(ctx)]
        rows = [(name, command) for name, command in listed if not command.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl([(name, summary(cmd)) for name, cmd in rows])

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """Complete command names from the table and options as click does, importing nothing."""
        from click.shell_completion import CompletionItem

        results = [
            CompletionItem(name, help=summary(command))
            for name in self.list_commands(ctx)
            if name.startswith(incomplete)
            for command in [self._listed(name)]
            if not command.hidden
        ]
        # The options of the group itself: what click.Group adds after its commands.
        results.extend(click.Command.shell_complete(self, ctx, incomplete))
        return results

    def _listed(self, name: str) -> click.Command:
        """The loaded command `name`, else a stand-in that only lists it."""
        command = self.commands.get(name)
        return command if command is not None else self.lazy_commands[name].stand_in()


#: Longer than any summary: a command's summary is listed whole, wrapped, never cut.
_WHOLE = 10_000


def summary(command: click.Command) -> str:
    """The summary of `command` as a group lists it: the first sentence of its help, whole."""
    return command.get_short_help_str(_WHOLE)


def list_summaries_whole(group: click.Group) -> None:
    """Make `group` and the groups under it list each command's summary whole.

    Click cuts a summary at the width left beside the command's name ("...");
    a command's own `short_help`, when set, is listed whole and wrapped.
    """
    for command in group.commands.values():
        if command.short_help is None:
            command.short_help = summary(command)
        if isinstance(command, click.Group):
            list_summaries_whole(command)
