"""The ``serve`` plugin: adds ``kaslite serve``.

Loaded by every ``kaslite`` command, so it imports only click and kaslite:
fastapi, uvicorn and torch load inside the command, when serving.
"""

import click

import kaslite
from kaslite.errors import InvalidValue


@click.command()
@click.option(
    "--model",
    "model_uri",
    required=True,
    metavar="URI",
    help="A model file, or a URI a model source serves (models:/kaslite@production).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, type=int, show_default=True, help="TCP port.")
@click.option("--max-batch-rows", default=10_000, type=int, show_default=True, help="Most rows per request.")
@click.option(
    "--max-body-bytes",
    default=16 * 1024 * 1024,
    type=int,
    show_default=True,
    help="Largest request body (413 above it).",
)
@click.option(
    "--version-cache-size", default=4, type=int, show_default=True, help="Requested versions kept loaded (LRU)."
)
@click.option("--torch-threads", default=1, type=int, show_default=True, help="torch intra-op threads.")
@click.option("--model-name", default=None, help="Name clients use in /v2/models/NAME [default: from the URI].")
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Allow this origin by CORS (repeatable); CORS is off without it.",
)
@click.option("--access-log/--no-access-log", default=False, show_default=True, help="Log every request.")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
def serve(log_level: str, **options: object) -> None:
    """Serve a model over HTTP: /predict, /models, /health, /reload-model, /v2 (Open Inference Protocol).

    /reload-model needs `Authorization: Bearer $KASLITE_ADMIN_TOKEN` when that
    variable is set, and is refused on a non-loopback --host without it.
    """
    from kaslite_serve.server import serve as run_server
    from kaslite_serve.settings import ServerSettings

    try:
        settings = ServerSettings(**options)  # type: ignore[arg-type]
    except InvalidValue as exc:  # name the flag the user typed, not the attribute
        raise InvalidValue("--" + exc.field.replace("_", "-"), exc.value, exc.allowed) from None
    run_server(settings, log_level)


@kaslite.hookimpl
def kaslite_commands(cli: click.Group) -> None:
    cli.add_command(serve)
