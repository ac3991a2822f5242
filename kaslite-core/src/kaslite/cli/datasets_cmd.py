"""``kaslite datasets``: every dataset with its description and parameters."""

import json
from typing import Any

import attrs
import click

from kaslite.hookspecs import DatasetSpec
from kaslite.plugins import DATASET, get_plugin_manager


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def describe_parameters(spec: DatasetSpec) -> list[dict[str, Any]]:
    """Name, type, default (None when required) of each dataset parameter."""
    rows = []
    for field in attrs.fields(spec.params_type):
        required = field.default is attrs.NOTHING
        rows.append(
            {
                "name": field.name,
                "type": _type_name(field.type),
                "default": None if required else field.default,
                "required": required,
            }
        )
    return rows


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def datasets(as_json: bool) -> None:
    """List the datasets every installed plugin provides."""
    specs = get_plugin_manager().registrations(DATASET)
    entries = [
        {"name": name, "description": spec.description, "parameters": describe_parameters(spec)}
        for name, spec in sorted(specs.items())
    ]
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    for entry in entries:
        click.echo(f"{entry['name']}: {entry['description']}")
        for p in entry["parameters"]:
            default = "required" if p["required"] else f"default {p['default']!r}"
            click.echo(f"    --{p['name'].replace('_', '-')} ({p['type']}, {default})")
