"""``kaslite datasets``: every dataset with its description and parameters (type, default, help)."""

import json
from typing import Any

import click

from kaslite.config.flagspace import describe_fields
from kaslite.hookspecs import DatasetSpec
from kaslite.plugins import DATASET, get_plugin_manager


def describe_parameters(spec: DatasetSpec) -> list[dict[str, Any]]:
    """Name, type, default (None when required), whether required, and help of each dataset parameter."""
    return describe_fields(spec.params_type)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def datasets(as_json: bool) -> None:
    """List the datasets every installed plugin provides, with their parameters."""
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
            help_text = f": {p['help']}" if p["help"] else ""
            click.echo(f"    --{p['name'].replace('_', '-')} ({p['type']}, {default}){help_text}")
