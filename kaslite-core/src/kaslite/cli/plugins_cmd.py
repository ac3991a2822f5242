"""``kaslite plugins``: every plugin, builtins included, what it registered, its parameters and problems."""

import json
from typing import Any

import attrs
import click

from kaslite.plugins import get_plugin_manager


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def plugins(as_json: bool) -> None:
    """List plugins: version, hooks, what each registered with its parameters, errors and name conflicts."""
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
        for conflict in info.conflicts:
            click.echo(f"    conflict: {conflict}")
        for hook, names in info.registered.items():
            click.echo(f"    {hook}: {', '.join(names)}")
            for name, fields in info.parameters.get(hook, {}).items():
                click.echo(f"        {name}: " + "; ".join(parameter_line(field) for field in fields))


def parameter_line(field: dict[str, Any]) -> str:
    """``patience (int, default 3): epochs without improvement`` for one parameter."""
    default = "required" if field["required"] else f"default {field['default']!r}"
    text = f"{field['name']} ({field['type']}, {default})"
    return f"{text}: {field['help']}" if field["help"] else text
