"""``kaslite monitor export DIR``: the shipped rules, dashboards and configs, written out for a deployment."""

from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

ASSETS = "assets"


def asset_files() -> dict[str, bytes]:
    """Relative path -> content of every file shipped under ``kaslite_monitor/assets``."""
    root = files("kaslite_monitor").joinpath(ASSETS)
    return {path: node.read_bytes() for path, node in sorted(_walk(root, ""))}


def _walk(node: "Traversable", prefix: str) -> Iterator[tuple[str, "Traversable"]]:
    for child in node.iterdir():
        path = f"{prefix}{child.name}"
        if child.is_dir():
            if child.name != "__pycache__":
                yield from _walk(child, path + "/")
        else:
            yield path, child


def export(directory: Path, force: bool = False) -> list[Path]:
    """Write every asset under ``directory``; a different file already there is an error unless ``force``."""
    assets = asset_files()
    clashes = [
        rel
        for rel, content in assets.items()
        if (directory / rel).is_file() and (directory / rel).read_bytes() != content
    ]
    if clashes and not force:
        raise click.ClickException(
            f"{len(clashes)} file(s) in {str(directory)!r} differ from kaslite-monitor's "
            f"({', '.join(clashes)}); use --force to overwrite them"
        )
    written = []
    for rel, content in assets.items():
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        written.append(target)
    return written


@click.group()
def monitor() -> None:
    """Prometheus alert rules, Grafana dashboards and Alertmanager config for kaslite."""


@monitor.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite files that differ from the shipped ones.")
def export_command(directory: Path, force: bool) -> None:
    """Write the alert rules, Alertmanager config, Grafana provisioning and dashboards to DIRECTORY.

    \b
    DIRECTORY/prometheus/prometheus.yml       scrape config (training :8000, inference :8080)
    DIRECTORY/prometheus/rules/*.yml          alert rules (promtool check rules ...)
    DIRECTORY/alertmanager/alertmanager.yml   routing by severity, Slack receivers
    DIRECTORY/grafana/provisioning/           datasource (uid kaslite-prometheus) and dashboard provider
    DIRECTORY/grafana/dashboards/*.json       training and inference dashboards
    """
    for path in export(directory, force):
        click.echo(str(path))
