"""``kaslite registry``: list, compare, promote, roll back and register kaslite models in MLflow.

Every command takes ``--tracking-uri`` (default: ``MLFLOW_TRACKING_URI``,
else ``sqlite:///mlflow.db`` in the working directory) and ``--model-name``
(default ``kaslite``). Errors (no such version, no production alias yet, an
unreachable store) end as one ``Error:`` line with exit code 2.
"""

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from kaslite_tracking.registry import ALIASES, VAL_ACC
from kaslite_tracking.store import check_store, mlflow_env, resolve_tracking_uri, store_errors

ALIAS = click.Choice(ALIASES, case_sensitive=False)  # the original spelled it "Production"


def store_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--tracking-uri`` and ``--model-name`` on a registry command."""
    command = click.option(
        "--model-name",
        "--model_name",
        default="kaslite",
        show_default=True,
        help="Registered model name.",
    )(command)
    return click.option(
        "--tracking-uri",
        "--tracking_uri",
        default="",
        help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db].",
    )(command)


@contextlib.contextmanager
def open_registry(tracking_uri: str, model_name: str, must_exist: bool = True) -> Iterator[Any]:
    """A :class:`~kaslite_tracking.registry.Registry` on a store (an existing one, unless ``must_exist`` is
    false), with its errors made one line."""
    from mlflow import MlflowClient

    from kaslite_tracking.registry import Registry

    uri = resolve_tracking_uri(tracking_uri)
    with mlflow_env(), store_errors(uri):
        check_store(uri, must_exist=must_exist)
        yield Registry(MlflowClient(tracking_uri=uri, registry_uri=uri), model_name, uri)


def _acc(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


@click.group("registry")
def registry() -> None:
    """MLflow model registry: versions, aliases (staging, production), promotion and rollback."""


@registry.command("list")
@store_options
def list_versions(tracking_uri: str, model_name: str) -> None:
    """Every version with its aliases, val_acc and creation time (UTC)."""
    with open_registry(tracking_uri, model_name) as reg:
        versions = reg.versions()
    click.echo(f"{'version':>7}  {'aliases':<20}  {'val_acc':>7}  created")
    for info in versions:
        aliases = ",".join(info.aliases) or "-"
        created = info.created.strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{info.version:>7}  {aliases:<20}  {_acc(info.val_acc):>7}  {created}")


@registry.command("best")
@store_options
@click.option("--metric", default=VAL_ACC, show_default=True, help="Version tag (or run metric final.NAME) to rank by.")
@click.option("--alias", type=ALIAS, help="Only versions that hold this alias or held it before.")
def best(tracking_uri: str, model_name: str, metric: str, alias: str | None) -> None:
    """The version with the highest METRIC (the newest on a tie)."""
    with open_registry(tracking_uri, model_name) as reg:
        info, value = reg.best(metric, alias.lower() if alias else None)
    aliases = f" [{', '.join(info.aliases)}]" if info.aliases else ""
    click.echo(f"version {info.version}{aliases}: {metric} {value:.4f} ({info.uri})")


@registry.command("promote")
@store_options
@click.argument("alias", type=ALIAS)
@click.option("--version", "version", type=click.IntRange(min=1), help="Version to promote [default: best val_acc].")
def promote(tracking_uri: str, model_name: str, alias: str, version: int | None) -> None:
    """Give ALIAS (staging or production) to a version; the previous holder is recorded."""
    alias = alias.lower()
    with open_registry(tracking_uri, model_name) as reg:
        info, previous = reg.promote(alias, version)
    if previous == info.version:
        click.echo(f"{alias}: version {info.version} of {model_name!r} holds it already")
        return
    was = f"version {previous}" if previous is not None else "no version"
    click.echo(f"{alias}: version {info.version} of {model_name!r} (val_acc {_acc(info.val_acc)}); before: {was}")


@registry.command("rollback")
@store_options
@click.argument("alias", type=ALIAS)
def rollback(tracking_uri: str, model_name: str, alias: str) -> None:
    """Hand ALIAS back to the version that held it before the latest promotion."""
    alias = alias.lower()
    with open_registry(tracking_uri, model_name) as reg:
        restored, replaced = reg.rollback(alias)
    click.echo(f"{alias}: version {restored} of {model_name!r} (rolled back from version {replaced})")


@registry.command("register")
@store_options
@click.argument("run_id")
@click.option("--val-acc", "--val_acc", type=click.FloatRange(0.0, 1.0), help="[default: the run's final.val_acc]")
def register(tracking_uri: str, model_name: str, run_id: str, val_acc: float | None) -> None:
    """Register the model logged by RUN_ID as a new version, whatever its val_acc (aliases stay)."""
    with open_registry(tracking_uri, model_name) as reg:
        info = reg.register_run(run_id, val_acc)
    click.echo(f"registered run {run_id} as version {info.version} of {model_name!r} (val_acc {_acc(info.val_acc)})")


@registry.command("add")
@store_options
@click.argument("model_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--val-acc", "--val_acc", type=click.FloatRange(0.0, 1.0), help="[default: the file's val_acc, if any]")
@click.option("--alias", type=ALIAS, help="Give this alias to the new version.")
@click.option("--experiment", default="kaslite", show_default=True, help="MLflow experiment of the logging run.")
def add(
    tracking_uri: str, model_name: str, model_file: Path, val_acc: float | None, alias: str | None, experiment: str
) -> None:
    """Register MODEL_FILE (written by kaslite.save_model, any module) as a new version; creates the store."""
    from kaslite_tracking.model_logging import servable

    loaded = servable(model_file)  # a file that cannot be served is refused before the store is touched
    with open_registry(tracking_uri, model_name, must_exist=False) as reg:
        info = reg.register_file(model_file, val_acc, experiment, loaded)
        if alias is not None:
            reg.move_alias(alias.lower(), info.version, "promote")
    held = f", alias {alias.lower()}" if alias else ""
    uri = f"models:/{model_name}/{info.version}"
    click.echo(f"registered {model_file} as version {info.version} of {model_name!r}{held}: {uri}")


@registry.command("production")
@store_options
def production(tracking_uri: str, model_name: str) -> None:
    """Print the production model's URI (for `kaslite serve --model`)."""
    with open_registry(tracking_uri, model_name) as reg:
        reg.require_holder("production")
    click.echo(f"models:/{model_name}@production")
