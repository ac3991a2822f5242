"""Where a sweep's study lives: a database URL, or a plain path meaning an Optuna journal file.

A journal file is the storage for several processes on one machine (it locks
the file); PostgreSQL (or MySQL) for several machines. SQLite is accepted for
one worker only: its single database lock makes concurrent writers deadlock.
Optuna is imported here, inside functions, so ``kaslite --help`` never pays for it.
"""

import math
import re
import time
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from kaslite.errors import ConfigError, message_line

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

INSTALL_HINT = "pip install 'kaslite-core[sweep]'"


def require_optuna() -> ModuleType:
    """The ``optuna`` module, quietened, or a one-line error saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise ConfigError(f"kaslite sweep needs Optuna, which is not installed; {INSTALL_HINT}") from None
    import warnings

    # Optuna logs every trial at INFO; the sweep prints its own progress and summary.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def is_url(target: str) -> bool:
    """``postgresql://...``, ``sqlite:///...``: a database; anything else is a journal file path."""
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", target) is not None


def redact(target: str) -> str:
    """``target`` with any password in it replaced by ``***``, for messages and summaries."""
    return re.sub(r"(://[^/:@]+:)[^@/]*@", r"\1***@", target)


def check_workers(target: str, workers: int) -> None:
    """Refuse SQLite for more than one worker, saying why and what to use instead."""
    if workers > 1 and target.lower().startswith("sqlite"):
        raise ConfigError(
            f"SQLite storage cannot serve {workers} workers: concurrent writers deadlock on its single "
            "database lock; use a journal file (--storage study.journal) on one machine, or PostgreSQL "
            "(--storage postgresql://...) across machines"
        )


def with_driver(url: str) -> str:
    """A plain ``postgresql://`` URL pinned to whichever PostgreSQL driver is installed.

    SQLAlchemy's default driver for the plain scheme changed (psycopg2 up to 2.0,
    psycopg 3 from 2.1); naming the installed one makes either work.
    """
    scheme, sep, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres"):
        return url
    import importlib.util

    for module, dialect in (("psycopg", "postgresql+psycopg"), ("psycopg2", "postgresql+psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return f"{dialect}{sep}{rest}"
    return url


def retry_callback(max_attempts: int) -> Any:
    """Optuna's callback that queues a trial whose worker stopped again, while it has attempts left.

    It copies the trial's values, attributes and grid point, and records the
    trials it retries (``RetryHeartbeatStaleTrialCallback.retry_history``).
    """
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    return RetryHeartbeatStaleTrialCallback(max_retry=max_attempts - 1)


def open_storage(
    target: str, heartbeat_s: float = 10.0, grace_s: float = 60.0, max_attempts: int = 3, attempts: int = 3
) -> "BaseStorage":
    """An Optuna storage for a database URL or a journal file path.

    A database storage gets Optuna's heartbeat: ``heartbeat_s`` and
    ``grace_s`` (whole seconds for Optuna, at least one) and a callback that
    queues a stale trial again while it has ``max_attempts`` left. A journal
    file has no heartbeat in Optuna; the sweep's worker keeps one for it.
    """
    optuna = require_optuna()
    if not is_url(target):
        from optuna.storages.journal import JournalFileBackend

        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        storage: BaseStorage = optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        return storage
    url = with_driver(target)
    for attempt in range(1, attempts + 1):
        try:
            interval = max(1, math.ceil(heartbeat_s))
            database: BaseStorage = optuna.storages.RDBStorage(
                url,
                # pool_pre_ping: a worker that trained for an hour finds its pooled connection still usable.
                engine_kwargs={"pool_pre_ping": True},
                heartbeat_interval=interval,
                grace_period=max(interval + 1, math.ceil(grace_s)),
                heartbeat_stale_trial_callback=retry_callback(max_attempts),
            )
            return database
        except ImportError as exc:
            hint = " pip install 'kaslite-core[postgres]'" if url.startswith("postgres") else ""
            raise ConfigError(f"storage {redact(target)!r} needs its database driver:{hint} ({exc})") from None
        except Exception as exc:
            # Two workers starting together can race to create Optuna's tables; the loser retries.
            if attempt == attempts:
                raise ConfigError(f"cannot open sweep storage {redact(target)!r}: {message_line(exc)}") from None
            time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")
