"""Several ``kaslite sweep`` commands sharing one study: a journal file, PostgreSQL, a worker killed mid-trial."""

import contextlib
import glob
import importlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from kaslite.testing import fake_distribution

CI = bool(os.environ.get("CI"))

try:
    optuna = importlib.import_module("optuna")
except ImportError:  # CI installs kaslite-core[sweep]; there a missing Optuna is a failure, not a skip
    if CI:
        raise
    pytest.skip("Optuna is not installed (pip install 'kaslite-core[sweep]')", allow_module_level=True)

from optuna.trial import TrialState  # noqa: E402

from kaslite.sweep.study import attempt  # noqa: E402

TINY = [
    "--problem", "xor", "--n-samples", "128", "--hidden-dim", "4", "--blueprint-hidden", "8",
    "--warm-up-epochs", "2", "--adaptation-epochs", "3", "--controller", "periodic", "--period", "1",
    "--blend-steps", "2", "--progress-thresh", "0", "--batch-size", "16", "--tracker", "json",
]  # fmt: skip
GRID6 = "num_layers: [1, 2, 3]\nlr: [0.01, 0.03]\n"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    site = fake_distribution(
        tmp_path_factory.mktemp("site"), name="tiny-data", entry_points={"tiny": "kaslite.testing:tiny_datasets"}
    )
    return {**os.environ, "PYTHONPATH": str(site), "PYTHONUNBUFFERED": "1"}


def start(env, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "kaslite", "sweep", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def finish(process: subprocess.Popen) -> str:
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    return stdout


def slot_trials(storage: str, study: str) -> list:
    """The study's trials that stand for a slot (not the ones a worker discarded)."""
    loaded = optuna.load_study(study_name=study, storage=_storage(storage))
    return [t for t in loaded.trials if "kaslite.slot" in t.user_attrs and not t.user_attrs.get("kaslite.surplus")]


def _storage(target: str):
    from kaslite.sweep.storage import open_storage

    return open_storage(target)


def run_dirs(*sweep_dirs: Path) -> list[str]:
    return sorted(p.name for d in sweep_dirs for p in d.iterdir() if p.is_dir())


def assert_two_workers_shared_the_grid(env, tmp_path: Path, storage: str, study: str) -> None:
    grid = tmp_path / "grid6.yaml"
    grid.write_text(GRID6)
    common = [str(grid), *TINY, "--storage", storage, "--study", study]
    first = start(env, *common, "--output-dir", str(tmp_path / "w1"))
    second = start(env, *common, "--output-dir", str(tmp_path / "w2"))
    outputs = [finish(first), finish(second)]

    trials = slot_trials(storage, study)
    assert sorted(t.user_attrs["kaslite.slot"] for t in trials) == [0, 1, 2, 3, 4, 5]  # none missing, none twice
    assert {t.state for t in trials} == {TrialState.COMPLETE}
    assert len({t.user_attrs["kaslite.worker"] for t in trials}) == 2  # both workers took trials
    dirs = run_dirs(tmp_path / "w1", tmp_path / "w2")
    assert [name[:7] for name in dirs] == [f"run_00{n}" for n in range(1, 7)]
    for output in outputs:  # each worker waited for the other's last trials, so both summaries are whole
        assert output.strip().splitlines()[-1].split("; ")[1].startswith("6 trials: 6 completed -> ")


def test_two_workers_share_a_journal_file(env, tmp_path):
    assert_two_workers_shared_the_grid(env, tmp_path, str(tmp_path / "shared.journal"), "grid6")


def _pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _unavailable(reason: str) -> None:
    # Under CI the PostgreSQL test must run: a missing server or driver is a failure there.
    if CI:
        pytest.fail(f"{reason} (CI must install it: see .ci/run)")
    pytest.skip(reason)


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL cluster on a free loopback port (or KASLITE_TEST_POSTGRES_URL when set)."""
    if os.environ.get("KASLITE_TEST_POSTGRES_URL"):
        yield os.environ["KASLITE_TEST_POSTGRES_URL"]
        return
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        _unavailable("PostgreSQL server binaries (initdb, pg_ctl) are not installed: apt-get install postgresql")
    if not any(importlib.util.find_spec(driver) for driver in ("psycopg", "psycopg2")):
        _unavailable("no PostgreSQL driver (psycopg) is installed: pip install 'kaslite-core[postgres]'")
    root = Path(tempfile.mkdtemp(prefix="kaslite-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(root, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()
    subprocess.run([*as_postgres, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run([*as_postgres, pg_ctl, "-D", str(data), "-l", str(root / "log"), "-o", options, "-w", "start"],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_postgres, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_a_postgresql_study(env, tmp_path, postgres_url):
    assert_two_workers_shared_the_grid(env, tmp_path, postgres_url, f"grid6-{os.getpid()}-{time.time_ns()}")


@pytest.mark.parametrize(
    ("storage", "beat"),
    [
        ("shared.journal", ["--heartbeat", "0.2", "--grace", "1.5"]),  # kaslite's heartbeat: journals have none
        ("sqlite:///{tmp}/shared.db", ["--heartbeat", "1", "--grace", "2"]),  # Optuna's (whole seconds)
    ],
    ids=["journal", "database"],
)
def test_a_trial_whose_worker_died_is_run_again(env, tmp_path, storage, beat):
    grid = tmp_path / "pair.yaml"
    grid.write_text("lr: [0.01, 0.03]\n")
    journal = storage.format(tmp=tmp_path) if "://" in storage else str(tmp_path / storage)
    slow = [*TINY, "--n-samples", "320", "--adaptation-epochs", "4"]
    common = [str(grid), *slow, "--storage", journal, "--study", "pair", *beat]
    doomed = start(env, *common, "--output-dir", str(tmp_path / "doomed"))
    deadline = time.monotonic() + 120
    history = None
    while time.monotonic() < deadline and doomed.poll() is None and history is None:
        found = list((tmp_path / "doomed").glob("run_001_*/history.csv"))
        if found and len(found[0].read_text().splitlines()) >= 2:  # the first trial is one epoch in
            history = found[0]
        time.sleep(0.02)
    assert doomed.poll() is None, "the first worker finished before it could be killed"
    doomed.send_signal(signal.SIGKILL)
    doomed.communicate()

    rescue = start(env, *common, "--output-dir", str(tmp_path / "rescue"))
    closing = finish(rescue).strip().splitlines()[-1]
    assert "2 trials: 2 completed" in closing
    trials = sorted(slot_trials(journal, "pair"), key=lambda t: t.number)
    attempts = [(t.user_attrs["kaslite.slot"], attempt(t), t.state) for t in trials]
    assert sorted(attempts) == [(0, 1, TrialState.FAIL), (0, 2, TrialState.COMPLETE), (1, 1, TrialState.COMPLETE)]
    assert "kaslite.error" not in trials[0].user_attrs  # lost, not failed: that is why it was retried
    rescued = run_dirs(tmp_path / "rescue")  # the killed trial ran again in full, under the same name
    assert [name[:7] for name in rescued] == ["run_001", "run_002"] and rescued[0] == history.parent.name
