"""Every check in one place: ``nox`` runs lint, typecheck, each package's tests alone, and e2e.

Each package's session installs only kaslite-core, that package and the test
tools, so a dependency a package forgot to declare fails its own session.
"""

import os
import tomllib
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "typecheck", "tests", "engine", "e2e"]

ROOT = Path(__file__).parent
# The CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
TORCH = "torch==2.13.0"
TEST_TOOLS = ["pytest>=8", "pytest-timeout"]

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
    session.install(TORCH)
    folders = tuple(dict.fromkeys(("kaslite-core", *folders)))
    editable = [arg for folder in folders for arg in ("-e", with_test_extra(folder))]
    session.install(*editable, *TEST_TOOLS, *extras)


@nox.session
@nox.parametrize("package", list(PACKAGES))
def tests(session: nox.Session, package: str) -> None:
    """One package's tests with only that package (and kaslite-core, and its test companions) installed."""
    companions = [folder for folder in TEST_COMPANIONS.get(package, ()) if folder in PACKAGES.values()]
    install(session, PACKAGES[package], *companions)
    session.run("pytest", f"tests/{package}", *session.posargs)


@nox.session
def engine(session: nox.Session) -> None:
    """The engine under torch.compile and DDP (two gloo processes): slower, so a session of its own."""
    install(session, "kaslite-core")
    session.run("pytest", "tests/engine", *session.posargs)


@nox.session
def e2e(session: nox.Session) -> None:
    """End-to-end tests with every package installed (and dvc for the pipeline test)."""
    install(session, *PACKAGES.values(), extras=("dvc>=3",))
    session.run("pytest", "tests/e2e", *session.posargs)


@nox.session
def tests_all(session: nox.Session) -> None:
    """Every test, every package installed in one environment."""
    install(session, *PACKAGES.values(), extras=("dvc>=3",))
    session.run("pytest", "tests", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check, and the import contracts of .importlinter."""
    session.install("ruff", "import-linter")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # import-linter reads the source; the packages need not be installed, only found.
    session.env["PYTHONPATH"] = os.pathsep.join(str(ROOT / folder / "src") for folder in PACKAGES.values())
    session.run("lint-imports", "--no-cache")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy (strict) on every package."""
    install(session, *PACKAGES.values(), extras=("mypy", "types-PyYAML"))
    session.run("mypy", *(f"{folder}/src" for folder in PACKAGES.values()))


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks (ratios against a baseline in the same process)."""
    install(session, *PACKAGES.values(), extras=("matplotlib",))
    for script in sorted((ROOT / "bench").glob("*.py")):
        session.run("python", str(script), *session.posargs)
