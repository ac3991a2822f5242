"""The ``kaslite`` click group: core commands, then whatever plugins add.

Errors a user can fix (a bad value, an unknown name, a usage mistake) end the
process with exit code 2 and a single ``Error: ...`` line, never a traceback
(``--debug``, ``KASLITE_DEBUG=1`` or ``KASLITE_STRICT_PLUGINS=1`` add the
traceback of a failing plugin).
"""

import os
import sys
import traceback
from typing import Any

import click

from kaslite import __version__
from kaslite.errors import ConfigError, KasliteError, UnknownNameError
from kaslite.plugins import (
    COMMAND,
    CORE_COMMANDS,
    DEBUG_ENV,
    STRICT_ENV,
    env_flag,
    get_plugin_manager,
    reset_plugin_manager,
)


def fail(message: str, code: int = 2) -> None:
    """Print one ``Error:`` line on stderr and exit."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def _debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        # The environment carries it to sweep workers; the manager is rebuilt to read it.
        os.environ[DEBUG_ENV] = "1"
        reset_plugin_manager()


class KasliteGroup(click.Group):
    """A group that loads core commands lazily and plugin commands on first use.

    Every command line meets plugin commands the same way: a plugin command
    named like a core one is reported and skipped whether the user asked for
    ``--help``, ``run`` or the plugin's own command.
    """

    def _plugin_commands(self) -> dict[str, click.Command]:
        commands: dict[str, click.Command] = get_plugin_manager().collected(COMMAND).records
        return commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(CORE_COMMANDS) | set(self._plugin_commands()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        plugin_commands = self._plugin_commands()
        if cmd_name in CORE_COMMANDS:
            import importlib

            module, attr = CORE_COMMANDS[cmd_name].split(":")
            command: click.Command = getattr(importlib.import_module(module), attr)
            return command
        if cmd_name in plugin_commands:
            return plugin_commands[cmd_name]
        if cmd_name in get_plugin_manager().collected(COMMAND).providers:
            get_plugin_manager().lookup(COMMAND, cmd_name)  # raises, naming both providers
        return None

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            fail(f"{exc.format_message()}{hint}", exc.exit_code)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except click.exceptions.Abort:
            fail("aborted", 1)
        except (ConfigError, UnknownNameError) as exc:
            fail(str(exc), 2)
        except KasliteError as exc:
            if exc.__cause__ is not None and (env_flag(DEBUG_ENV) or env_flag(STRICT_ENV)):
                traceback.print_exception(exc.__cause__, file=sys.stderr)
            fail(str(exc), getattr(exc, "exit_code", 1))
        # In non-standalone mode click returns the exit code of --help/--version.
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=KasliteGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="kaslite")
@click.option(
    "--debug",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=_debug,
    help="Show the traceback of a failing plugin (same as KASLITE_DEBUG=1).",
)
def cli() -> None:
    """kaslite: grow neural networks while they train.

    Run an experiment with `kaslite run`; see what is installed with
    `kaslite plugins` and `kaslite datasets`.
    """


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="kaslite")
