"""The ``kaslite`` click group: core commands, then whatever plugins add.

Errors a user can fix (a bad value, an unknown name, a usage mistake) end the
process with exit code 2 and a single ``Error: ...`` line, never a traceback.
"""

import sys
from typing import Any

import click

from kaslite import __version__
from kaslite.errors import ConfigError, KasliteError, PluginError, UnknownNameError
from kaslite.plugins import get_plugin_manager

# Core commands live in their own modules, imported only when dispatched, so
# ``kaslite --help`` never pays for torch.
CORE_COMMANDS: dict[str, str] = {
    "plugins": "kaslite.cli.plugins_cmd:plugins",
    "datasets": "kaslite.cli.datasets_cmd:datasets",
    "data": "kaslite.cli.data_cmd:data",
    "run": "kaslite.cli.run_cmd:run",
    "sweep": "kaslite.cli.sweep_cmd:sweep",
}


def fail(message: str, code: int = 2) -> None:
    """Print one ``Error:`` line on stderr and exit."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


class KasliteGroup(click.Group):
    """A group that loads core commands lazily and plugin commands on first use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owners: dict[str, str] = {}
        self._plugin_commands_added = False

    def _add_plugin_commands(self) -> None:
        if self._plugin_commands_added:
            return
        self._plugin_commands_added = True
        for plugin, commands in get_plugin_manager().commands().items():
            for name, command in commands.items():
                owner = self._owners.get(name, "kaslite-core" if name in CORE_COMMANDS else None)
                if owner is not None:
                    raise PluginError(f"command {name!r} is added by both {owner!r} and {plugin!r}")
                self._owners[name] = plugin
                self.add_command(command, name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands()
        return sorted(set(CORE_COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in CORE_COMMANDS:
            import importlib

            module, attr = CORE_COMMANDS[cmd_name].split(":")
            command: click.Command = getattr(importlib.import_module(module), attr)
            return command
        self._add_plugin_commands()
        return self.commands.get(cmd_name)

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
            fail(str(exc), 1)
        # In non-standalone mode click returns the exit code of --help/--version.
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=KasliteGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="kaslite")
def cli() -> None:
    """kaslite: grow neural networks while they train.

    Run an experiment with `kaslite run`; see what is installed with
    `kaslite plugins` and `kaslite datasets`.
    """


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="kaslite")
