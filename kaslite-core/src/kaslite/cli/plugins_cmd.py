"""``kaslite plugins``: every plugin, builtins included, and what it registered."""

import json

import attrs
import click

from kaslite.plugins import get_plugin_manager


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def plugins(as_json: bool) -> None:
    """List plugins: version, hooks, what each registered, and load errors."""
    infos = get_plugin_manager().plugin_infos()
    if as_json:
        click.echo(json.dumps([attrs.asdict(info) for info in infos], indent=2))
        return
    for info in infos:
        tags = ["builtin"] if info.builtin else []
        if info.disabled:
            tags.append("disabled")
        suffix = f" [{', '.join(tags)}]" if tags else ""
        click.echo(f"{info.name} ({info.distribution} {info.version}){suffix}")
        if info.error:
            click.echo(f"    error: {info.error}")
        for hook, names in info.registered.items():
            click.echo(f"    {hook}: {', '.join(names)}")
