"""The MLflow tracking store: which URI, bounded waits, and errors a user can act on.

Every function here imports mlflow (and requests, sqlalchemy) only when called.
"""

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from kaslite.errors import ConfigError, message_line

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
# The embedded store: a SQLite file in the working directory, no server needed.
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
# MLflow retries a dead HTTP server 7 times with exponential backoff and waits
# 120 s per request: about four minutes, during which training would stand
# still. A tracker gives up much sooner; a user's own settings always win.
BOUNDED_WAITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
PROBE_TIMEOUT_S = 5.0


class StoreError(ConfigError):
    """The MLflow store is unreachable, or holds no such run, model, version or alias."""


def resolve_tracking_uri(given: str = "") -> str:
    """``given``, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the working directory."""
    return given or os.environ.get(TRACKING_URI_ENV) or DEFAULT_TRACKING_URI


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working directory), else None."""
    parsed = urlparse(uri)
    if parsed.scheme.split("+")[0] != "sqlite" or parsed.path in ("", "/", "/:memory:"):
        return None
    return Path(parsed.path[1:])  # sqlite:///rel.db -> "rel.db"; sqlite:////abs.db -> "/abs.db"


def _reason(exc: BaseException) -> str:
    """The useful part of a connection error (``[Errno 111] Connection refused``), else its first line."""
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    if found:
        return found.group(0).strip()
    return message_line(exc)


def check_store(uri: str, must_exist: bool = False) -> None:
    """Fail fast, with one clear line, when the store behind ``uri`` cannot be used.

    An HTTP(S) server gets one quick request (no retries); a SQLite file must
    sit in an existing folder, and must exist already when ``must_exist``
    (reading a registry should not create an empty store).
    """
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        import requests

        try:
            requests.get(uri.rstrip("/") + "/health", timeout=PROBE_TIMEOUT_S)
        except requests.RequestException as exc:
            raise StoreError(f"cannot reach the MLflow tracking store {uri!r}: {_reason(exc)}") from None
        return
    path = sqlite_path(uri)
    if path is None:
        return
    if must_exist and not path.is_file():
        raise StoreError(
            f"no MLflow store at {uri!r} ({str(path)!r} does not exist); "
            "train with `kaslite run` first or pass --tracking-uri / set MLFLOW_TRACKING_URI"
        )
    if not path.parent.is_dir():
        raise StoreError(f"cannot open the MLflow tracking store {uri!r}: folder {str(path.parent)!r} does not exist")


@contextlib.contextmanager
def first_use_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock on a SQLite store's path while this process first opens the store.

    MLflow creates and migrates a new database's schema on first use; two
    processes doing it at once race, and the loser fails with "Online migration
    expected to match one row ... 'alembic_version'". The lock file sits in the
    temp folder, named after the database's absolute path, so nothing is left
    beside the store. No lock for other stores, nor where ``fcntl`` is missing.
    """
    path = sqlite_path(uri)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; concurrent first use is left to chance there
        fcntl = None  # type: ignore[assignment]
    if path is None or fcntl is None:
        yield
        return
    import hashlib
    import tempfile

    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"kaslite-mlflow-{digest}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def mlflow_env() -> Iterator[None]:
    """Bounded HTTP waits, no progress bars and no INFO chatter from MLflow, for the duration."""
    import mlflow  # noqa: F401  (first: importing it configures its loggers, which would undo the level below)

    saved = {key: os.environ.get(key) for key in BOUNDED_WAITS}
    for key, value in BOUNDED_WAITS.items():
        os.environ.setdefault(key, value)
    mlflow_logger = logging.getLogger("mlflow")
    level = mlflow_logger.level
    mlflow_logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        mlflow_logger.setLevel(level)
        _restore(saved)


@contextlib.contextmanager
def fluent_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's process-wide tracking URI set to ``uri`` for the duration, then put back.

    ``mlflow.pyfunc.log_model`` (MLflow's fluent API) reads no other. A URI
    someone set with ``mlflow.set_tracking_uri`` is set again afterwards; one
    that came from ``MLFLOW_TRACKING_URI`` (which ``set_tracking_uri`` also
    writes) or from MLflow's default is left to them again.
    """
    import mlflow

    environment = os.environ.get(TRACKING_URI_ENV)
    pinned = mlflow.is_tracking_uri_set() and mlflow.get_tracking_uri() != environment  # type: ignore[no-untyped-call]
    previous = mlflow.get_tracking_uri() if pinned else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        # None unsets it, as MLflow itself does when it puts a URI back.
        mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]
        _restore({TRACKING_URI_ENV: environment})


def _restore(saved: dict[str, str | None]) -> None:
    for key, before in saved.items():
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def _is_connection_failure(exc: BaseException) -> bool:
    text = str(exc)
    return "API request to" in text and "failed with exception" in text


@contextlib.contextmanager
def store_errors(uri: str) -> Iterator[None]:
    """Turn MLflow, HTTP and database failures into one :class:`StoreError` line naming the store."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except StoreError:
        raise
    except MlflowException as exc:
        if _is_connection_failure(exc):
            raise StoreError(f"cannot reach the MLflow tracking store {uri!r}: {_reason(exc)}") from exc
        raise StoreError(f"the MLflow tracking store {uri!r} failed: {_reason(exc)}") from exc
    except Exception as exc:
        if _from_library(exc, ("requests", "urllib3", "sqlalchemy", "sqlite3")):
            raise StoreError(f"cannot use the MLflow tracking store {uri!r}: {_reason(exc)}") from exc
        raise


def _from_library(exc: BaseException, roots: tuple[str, ...]) -> bool:
    return type(exc).__module__.split(".")[0] in roots
