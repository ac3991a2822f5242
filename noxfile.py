"""Every check in one place: ``nox`` runs lint, typecheck, each package's tests alone, engine, and e2e.

Each package's session installs only kaslite-core, that package and the test
tools, so a dependency a package forgot to declare fails its own session.

Environments are made with uv when it is installed beside nox (``pip install
'nox[uv]'``; else venv and pip): uv installs from its cache by linking, so
eight environments cost one download of torch, not eight. uv reads none of
pip's configuration, so the sources pip is configured with here (pip.conf,
``PIP_*`` variables: find-links, extra indexes, constraints) are handed to it
and it installs the same wheels pip would; on a machine whose pip finds a
local CPU build of torch, that build. A second ``nox`` reuses each session's
environment (``--reuse-venv=no`` starts afresh).
"""

import ast
import os
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|venv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "typecheck", "tests", "engine", "e2e"]

ROOT = Path(__file__).parent
# Every install path pins torch (see the README: which wheel that is depends on the machine's pip sources).
TORCH = "torch==2.13.0"
TEST_TOOLS = ["pytest>=8", "pytest-timeout", "pytest-xdist"]
# Lint and type-check tools pinned: a new release must not turn main red on its own.
LINT_TOOLS = ["ruff==0.17.6", "import-linter==2.17"]
TYPE_TOOLS = ["mypy==2.4.1", "types-PyYAML==6.0.12.20261122"]
# Tests run in one worker process per core (at most four): each test is single-threaded
# (OMP_NUM_THREADS=1), so two cores run the suite in about half the time.
PARALLEL = ["--numprocesses", "auto", "--maxprocesses", "4"]
# pip settings that say where packages come from, and the installer flag of each.
PIP_SOURCES = {
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "constraint": "--constraint",
}


def pip_sources() -> list[str]:
    """The package sources pip is configured with here, as installer flags (for uv, which reads no pip config).

    For each setting the value pip itself would use: a ``PIP_*`` variable over
    an ``[install]`` section over ``[global]``. With several indexes uv takes
    the best version from any of them, as pip does.
    """
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    ).stdout
    settings: dict[tuple[str, str], list[str]] = {}
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        section, _, name = key.rpartition(".")
        if name in PIP_SOURCES:
            settings[section, name] = shlex.split(ast.literal_eval(value))
    flags: list[str] = []
    for name, flag in PIP_SOURCES.items():
        values = next((settings[s, name] for s in (":env:", "install", "global") if (s, name) in settings), [])
        flags += [arg for value in values for arg in (flag, value)]
    return [*flags, "--index-strategy", "unsafe-best-match"] if flags else []


# tests/<key> -> package folder. Only packages that exist take part.
ALL_PACKAGES = {
    "core": "kaslite-core",
    "datasets": "kaslite-datasets",
    "tracking": "kaslite-tracking",
    "serve": "kaslite-serve",
    "monitor": "kaslite-monitor",
    "example": "plugins-example",
}
PACKAGES = {key: folder for key, folder in ALL_PACKAGES.items() if (ROOT / folder / "pyproject.toml").exists()}
# Packages a package's tests run against without the package importing them: kaslite-monitor's
# server metrics are tested on the real inference server.
TEST_COMPANIONS = {"monitor": ("kaslite-serve",)}


def with_test_extra(folder: str) -> str:
    """``folder[test]`` when the package declares test-only dependencies, else ``folder``."""
    pyproject = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())
    return f"{folder}[test]" if "test" in pyproject["project"].get("optional-dependencies", {}) else folder


def install(session: nox.Session, *folders: str, extras: tuple[str, ...] = ()) -> None:
    # Tiny networks train fastest on one thread, and tests start many processes on few cores.
    session.env["OMP_NUM_THREADS"] = "1"
    # pip reads its own configuration. uv's environments come without pip, which MLflow's model logging
    # asks for its version (and warns without): they get it, like the environments venv makes.
    sources = [*pip_sources(), "pip"] if session.venv_backend == "uv" else []
    folders = tuple(dict.fromkeys(("kaslite-core", *folders)))
    editable = [arg for folder in folders for arg in ("-e", with_test_extra(folder))]
    session.install(*sources, TORCH, *editable, *TEST_TOOLS, *extras)


@nox.session
@nox.parametrize("package", list(PACKAGES))
def tests(session: nox.Session, package: str) -> None:
    """One package's tests with only that package (and kaslite-core, and its test companions) installed."""
    companions = [folder for folder in TEST_COMPANIONS.get(package, ()) if folder in PACKAGES.values()]
    install(session, PACKAGES[package], *companions)
    session.run("pytest", *PARALLEL, f"tests/{package}", *session.posargs)


@nox.session(venv_backend="uv")
def floors(session: nox.Session) -> None:
    """kaslite-core's tests against the lowest version of each dependency it declares (uv's lowest-direct
    resolution). torch stays at the pinned wheel: no other one is installable here (see TORCH)."""
    session.env["OMP_NUM_THREADS"] = "1"
    session.install(*pip_sources(), "pip", TORCH, *TEST_TOOLS)
    session.install(*pip_sources(), "--resolution", "lowest-direct", TORCH, "-e", "kaslite-core[test]")
    session.run("python", "-c", "import attrs, cattrs, click, numpy, pluggy, rich, yaml; print(numpy.__version__)")
    session.run("pytest", *PARALLEL, "tests/core", *session.posargs)


@nox.session
def engine(session: nox.Session) -> None:
    """The engine under torch.compile and DDP (two gloo processes, so one test at a time): a session of its own."""
    install(session, "kaslite-core")
    session.run("pytest", "tests/engine", *session.posargs)


@nox.session
def e2e(session: nox.Session) -> None:
    """End-to-end tests with every package installed (and dvc for the pipeline test)."""
    install(session, *PACKAGES.values(), extras=("dvc>=3",))
    session.run("pytest", *PARALLEL, "tests/e2e", *session.posargs)


@nox.session
def tests_all(session: nox.Session) -> None:
    """Every test, every package installed in one environment."""
    install(session, *PACKAGES.values(), extras=("dvc>=3",))
    session.run("pytest", *PARALLEL, "tests", "--ignore=tests/engine", *session.posargs)
    session.run("pytest", "tests/engine", *session.posargs)  # DDP's processes: one test at a time


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check, and the import contracts of .importlinter."""
    session.install(*(pip_sources() if session.venv_backend == "uv" else []), *LINT_TOOLS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # import-linter reads the source; the packages need not be installed, only found.
    session.env["PYTHONPATH"] = os.pathsep.join(str(ROOT / folder / "src") for folder in PACKAGES.values())
    session.run("lint-imports", "--no-cache")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy (strict) on every package."""
    install(session, *PACKAGES.values(), extras=tuple(TYPE_TOOLS))
    session.run("mypy", *(f"{folder}/src" for folder in PACKAGES.values()))


@nox.session
def figure(session: nox.Session) -> None:
    """docs/default-run.png, the README's picture of the default run (`kaslite run --seed 0`, `kaslite plot`)."""
    import tempfile

    install(session, "kaslite-datasets", extras=("matplotlib",))
    with tempfile.TemporaryDirectory() as folder:
        run = ["--seed", "0", "--threads", "1", "--tracker", "json", "--output-dir", folder, "--run-name", "default"]
        session.run("kaslite", "run", *run, "--quiet")
        session.run("kaslite", "plot", str(Path(folder) / "default"), "-o", str(ROOT / "docs" / "default-run.png"))


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks (ratios against a baseline in the same process)."""
    install(session, *PACKAGES.values(), extras=("matplotlib", "mnist1d"))  # mnist1d: a growth bench task
    for script in sorted((ROOT / "bench").glob("*.py")):
        session.run("python", str(script), *session.posargs)
