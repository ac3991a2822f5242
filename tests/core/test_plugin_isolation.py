"""A misbehaving plugin is reported once and skipped, at every hook call, on every command line.

Plugins come from fake distributions on ``sys.path`` (real entry-point
loading) and the command line runs in this process (``kaslite.testing.invoke``).
"""

import json
import logging
from collections import Counter

import pytest

import kaslite
from kaslite.hookspecs import DatasetSpec
from kaslite.plugins import DATASET, KINDS, PluginManager
from kaslite.testing import fake_distribution, invoke

TINY_RUN = [
    "--problem", "xor", "--n-samples", "64", "--hidden-dim", "4", "--warm-up-epochs", "1",
    "--adaptation-epochs", "1", "--batch-size", "32", "--tracker", "json", "-q",
]  # fmt: skip

RAISING = """
    import kaslite

    @kaslite.hookimpl
    def kaslite_datasets():
        raise RuntimeError("no data today\\nsecond line")
"""

RING = """
    import attrs
    import kaslite
    from kaslite.hookspecs import DatasetSpec

    @attrs.frozen
    class RingParams:
        n_samples: int = attrs.field(default=1000, metadata={{"help": "points on the ring"}})

    @kaslite.hookimpl
    def kaslite_datasets():
        return [DatasetSpec(name, RingParams, lambda params, seed: None, "a ring") for name in {names!r}]
"""

COMMANDS = """
    import click
    import kaslite

    @kaslite.hookimpl
    def kaslite_commands(cli):
        for name in {names!r}:
            cli.add_command(click.Command(name, callback=lambda: click.echo("plugin {dist}"), help="from {dist}"))
"""


@pytest.fixture
def install(tmp_path, monkeypatch):
    """``install(dist, **modules)``: a distribution whose entry point ``dist`` is module ``<dist>_plugin``.

    The xor test dataset is installed too, as the entry point ``tiny``.
    """
    site = tmp_path / "site"
    fake_distribution(site / "tiny", name="tiny-data", entry_points={"tiny": "kaslite.testing:tiny_datasets"})
    monkeypatch.syspath_prepend(str(site / "tiny"))

    def add(dist: str, source: str, version: str = "1.0", entry_point: str | None = None) -> None:
        module = f"{dist.replace('-', '_')}_plugin_{abs(hash(str(tmp_path))) % 10**8}"
        folder = fake_distribution(
            site / dist,
            name=dist,
            version=version,
            entry_points={entry_point or dist: module},
            modules={module: source},
        )
        monkeypatch.syspath_prepend(str(folder))
        kaslite.reset_plugin_manager()

    return add


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "kaslite.plugins" and r.levelno == logging.WARNING]


def test_a_registration_hook_that_raises_is_reported_once_and_skipped(install, caplog, tmp_path):
    install("broken-data", RAISING, version="0.3", entry_point="broken")
    listing = invoke("plugins")
    assert listing.exit_code == 0, listing.output
    assert "broken (broken-data 0.3)\n    error: failed in kaslite_datasets: RuntimeError: no data today\n" in (
        listing.stdout
    )
    assert invoke("datasets").exit_code == 0
    run = invoke("run", *TINY_RUN, "--output-dir", str(tmp_path / "out"))
    assert run.exit_code == 0, run.output
    assert (tmp_path / "out").is_dir()
    assert warnings_of(caplog) == [
        "kaslite: plugin 'broken' (broken-data 0.3) failed in kaslite_datasets and what it registers was skipped: "
        "RuntimeError: no data today"
    ]  # once, though three commands met it
    assert caplog.records[0].exc_info is None  # no traceback unless asked for


def test_debug_flag_and_strict_mode_show_the_traceback(install, caplog):
    install("broken-data", RAISING, version="0.3", entry_point="broken")
    debug = invoke("--debug", "plugins")
    assert debug.exit_code == 0
    (record,) = [r for r in caplog.records if r.name == "kaslite.plugins"]
    assert record.exc_info is not None and str(record.exc_info[1]) == "no data today\nsecond line"

    kaslite.reset_plugin_manager()
    strict = invoke("plugins", env={"KASLITE_STRICT_PLUGINS": "1", "KASLITE_DEBUG": ""})
    assert strict.exit_code == 1
    lines = strict.stderr.strip().splitlines()
    assert lines[0] == "Traceback (most recent call last):" and "RuntimeError: no data today" in lines
    assert lines[-1] == (
        "Error: plugin 'broken' (broken-data 0.3) failed in kaslite_datasets: RuntimeError: no data today"
    )


class Returns:
    def __init__(self, value):
        self.value = value

    @kaslite.hookimpl
    def kaslite_datasets(self):
        return self.value


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (
            [("ring", None, None)],
            "returned a tuple ('ring', None, None) where a DatasetSpec was expected",
        ),
        (
            DatasetSpec("ring", dict, lambda params, seed: None),
            "returned a DatasetSpec DatasetSpec(name='ring', params_type=<class 'dict'>, gene..., "
            "not a list of DatasetSpec",
        ),
        ("ring", "returned a str 'ring', not a list of DatasetSpec"),
    ],
)
def test_a_hook_returning_something_else_than_records_is_reported_and_skipped(value, problem, caplog):
    good = Returns([DatasetSpec("grid", dict, lambda params, seed: None)])
    pm = PluginManager()
    pm.register(Returns(value), name="odd")
    pm.register(good, name="good")
    assert list(pm.registrations(DATASET)) == []  # grid is refused too: dict is not an attrs class
    assert pm.errors_of("odd") == [f"failed in kaslite_datasets: {problem}"]
    assert pm.errors_of("good") == ["registered dataset 'grid': its params_type <class 'dict'> is not an attrs class"]
    assert warnings_of(caplog)[0] == (
        f"kaslite: plugin 'odd' failed in kaslite_datasets and what it registers was skipped: {problem}"
    )


def test_a_name_claimed_twice_is_listed_and_fails_only_when_used(install, tmp_path):
    install("ring-a", RING.format(names=["ring", "arc"]))
    install("ring-b", RING.format(names=["ring"]), version="2.0")
    table = invoke("plugins").stdout
    choose = "; choose with ring-a:ring or ring-b:ring"
    conflict = f"conflict: dataset 'ring' is also registered by 'ring-b' (ring-b 2.0){choose}"
    assert f"ring-a (ring-a 1.0)\n    {conflict}\n" in table
    entries = {e["name"]: e for e in json.loads(invoke("plugins", "--json").stdout)}
    assert entries["ring-b"]["conflicts"] == [f"dataset 'ring' is also registered by 'ring-a' (ring-a 1.0){choose}"]
    assert entries["ring-b"]["registered"] == {"kaslite_datasets": ["ring"]}

    unrelated = invoke("run", *TINY_RUN, "--output-dir", str(tmp_path / "ok"))
    assert unrelated.exit_code == 0, unrelated.output
    used = invoke("run", *TINY_RUN, "--problem", "ring", "--output-dir", str(tmp_path / "ring"))
    assert used.exit_code == 1
    assert used.stderr == (
        "Error: dataset 'ring' is registered by both 'ring-a' (ring-a 1.0) and 'ring-b' (ring-b 2.0); "
        "name one: ring-a:ring, ring-b:ring\n"
    )
    assert not (tmp_path / "ring").exists()


BAD_TRACKER = """
    import kaslite
    from kaslite.hookspecs import TrackerSpec

    @kaslite.hookimpl
    def kaslite_trackers():
        return [TrackerSpec("odd", lambda run: None, "options that are no attrs class", options_type=dict)]
"""


def test_run_and_sweep_help_survive_bad_plugins(install):
    install("broken-data", RAISING, entry_point="broken")
    install("odd-tracker", BAD_TRACKER)
    for command in ("run", "sweep"):
        result = invoke(command, "--help")
        assert result.exit_code == 0, result.output
        assert "--n-samples" in result.stdout and "--tracker" in result.stdout
    assert "error: registered tracker 'odd': its options_type <class 'dict'> is not an attrs class" in (
        invoke("plugins").stdout
    )


def test_one_entry_point_name_in_two_distributions_loads_both_and_names_both(install, caplog):
    install("genuine-data", RING.format(names=["ring"]), entry_point="shapes")
    install("newcomer-data", RING.format(names=["arc"]), version="9.9", entry_point="shapes")
    listing = invoke("datasets", "--json")
    assert listing.exit_code == 0
    assert {"ring", "arc"} <= {entry["name"] for entry in json.loads(listing.stdout)}
    clash = [message for message in warnings_of(caplog) if "entry point" in message]
    assert clash == [
        "kaslite: entry point 'shapes' (group kaslite) is claimed by both genuine-data 1.0 and "
        "newcomer-data 9.9; each is loaded under its distribution's name "
        "(genuine-data:shapes, newcomer-data:shapes)"
    ]
    names = {e["name"]: e["distribution"] for e in json.loads(invoke("plugins", "--json").stdout)}
    assert names["genuine-data:shapes"] == "genuine-data" and names["newcomer-data:shapes"] == "newcomer-data"


def test_a_plugin_command_named_like_a_core_one_is_refused_the_same_way_everywhere(install, caplog):
    install("clash", COMMANDS.format(names=["run", "hello"], dist="clash"))
    refusal = (
        "kaslite: plugin 'clash' (clash 1.0) adds command 'run' and it was skipped: "
        "kaslite-core has a command 'run' of its own"
    )
    top = invoke("--help")
    assert top.exit_code == 0 and "hello" in top.stdout
    assert warnings_of(caplog) == [refusal]
    for args in (["run", "--help"], ["hello"]):
        caplog.clear()
        kaslite.reset_plugin_manager()
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        assert warnings_of(caplog) == [refusal]
    assert "Train a morphogenetic network" in invoke("run", "--help").stdout
    assert invoke("hello").stdout == "plugin clash\n"
    assert "error: adds command 'run': kaslite-core has a command 'run' of its own" in invoke("plugins").stdout


def test_a_command_two_plugins_add_fails_only_when_invoked(install):
    install("first", COMMANDS.format(names=["hello", "mine"], dist="first"))
    install("second", COMMANDS.format(names=["hello"], dist="second"))
    assert invoke("--help").exit_code == 0
    assert invoke("mine").stdout == "plugin first\n"
    result = invoke("hello")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: command 'hello' is registered by both 'first' (first 1.0) and 'second' (second 1.0); "
        "disable one with KASLITE_DISABLE_PLUGINS\n"
    )


COUNTING = """
    import attrs
    import kaslite
    from kaslite.hookspecs import BlueprintSpec, ControllerSpec, DatasetSpec, ModelSourceSpec, TrackerSpec

    CALLS = []

    @attrs.frozen
    class NoParams:
        pass

    @kaslite.hookimpl
    def kaslite_datasets():
        CALLS.append("kaslite_datasets")
        return [DatasetSpec("counted", NoParams, lambda params, seed: None)]

    @kaslite.hookimpl
    def kaslite_seed_blueprints():
        CALLS.append("kaslite_seed_blueprints")
        return []

    @kaslite.hookimpl
    def kaslite_controllers():
        CALLS.append("kaslite_controllers")
        return []

    @kaslite.hookimpl
    def kaslite_trackers():
        CALLS.append("kaslite_trackers")
        return [TrackerSpec("counted", lambda run: None)]

    @kaslite.hookimpl
    def kaslite_model_sources():
        CALLS.append("kaslite_model_sources")
        return []

    @kaslite.hookimpl
    def kaslite_commands(cli):
        CALLS.append("kaslite_commands")
"""


def test_each_hook_is_called_once_per_process_through_pluggy(install, tmp_path):
    install("counting", COUNTING)
    manager = kaslite.get_plugin_manager()
    monitored: list[str] = []
    manager.add_hookcall_monitoring(lambda hook, impls, kwargs: monitored.append(hook), lambda *args: None)
    result = invoke("run", *TINY_RUN, "--output-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert invoke("plugins").exit_code == 0  # a second look reuses what was registered

    hooks = [kind.hook for kind in KINDS] + ["kaslite_commands"]
    assert Counter(manager.get_plugin("counting").CALLS) == dict.fromkeys(hooks, 1)
    # Every implementation was called through pluggy's hook caller, once each, so monitoring saw each call.
    implementations = Counter(
        caller.name for _, plugin in manager.list_name_plugin() for caller in manager.get_hookcallers(plugin) or ()
    )
    assert Counter(monitored) == {hook: implementations[hook] for hook in hooks}
