"""The plugin host: loads builtins and entry points, collects what they register.

Builtins are registered exactly like third-party plugins, so ``kaslite
plugins`` lists them and ``KASLITE_DISABLE_PLUGINS`` can switch them off.

One broken plugin never takes the host down. A plugin that fails to import,
raises in a hook (registration, extension or event: :meth:`PluginManager.call_extensions`
calls the last two), returns something that is not a record, or registers a
record the host cannot use is reported once (its name, distribution, version
and the error's first line; the traceback too with ``KASLITE_DEBUG=1`` or
``kaslite --debug``) and skipped. ``KASLITE_STRICT_PLUGINS=1`` makes any of
that fatal. A name two plugins both claim is a conflict: ``kaslite plugins``
shows it, and it is an error, naming both, only when the name is used.

Each hook is called once per manager (so once per process), through pluggy,
one plugin at a time: pluggy's tracing and monitoring see every call, and one
plugin's failure cannot hide another's records.
"""

import functools
import importlib
import importlib.metadata
import logging
import operator
import os
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs
import pluggy

from kaslite import hookspecs
from kaslite.errors import DuplicateNameError, PluginError, UnknownNameError, first_line, message_line

logger = logging.getLogger("kaslite.plugins")

ENTRY_POINT_GROUP = "kaslite"
STRICT_ENV = "KASLITE_STRICT_PLUGINS"
DISABLE_ENV = "KASLITE_DISABLE_PLUGINS"
DEBUG_ENV = "KASLITE_DEBUG"

# What a plugin declares beside its hookimpls: the plugin API versions it supports, as ">=1,<3".
API_ATTRIBUTE = "KASLITE_PLUGIN_API"
_API_CLAUSE = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(\d+)\s*$")
_COMPARE = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}


def check_plugin_api(plugin: object, distribution: str) -> None:
    """Refuse, in one line, a plugin that declares (``KASLITE_PLUGIN_API``) it does not support this kaslite's
    plugin API, or declares it in a form that cannot be read; a plugin that declares nothing is loaded."""
    declared = getattr(plugin, API_ATTRIBUTE, None)
    if declared is None:
        return
    clauses = [_API_CLAUSE.match(clause) for clause in declared.split(",")] if isinstance(declared, str) else [None]
    if not all(clauses):
        raise PluginError(
            f"{API_ATTRIBUTE} = {declared!r} is not a range of plugin API versions; write it as '>=1,<3' "
            f"(whole numbers; this kaslite's plugin API is {hookspecs.PLUGIN_API_VERSION})"
        )
    version = hookspecs.PLUGIN_API_VERSION
    if not all(_COMPARE[match.group(1)](version, int(match.group(2))) for match in clauses if match):
        raise PluginError(
            f"it supports kaslite plugin API {declared} and this kaslite-core ({_core_version()}) has plugin API "
            f"{version}: install a release of {distribution} made for API {version}, or a kaslite-core it supports"
        )


# kaslite's own commands (name -> where the click command lives, imported only when dispatched, so
# `kaslite --help` never pays for torch): a plugin cannot replace one. The plugin host keeps the list,
# so it never imports the CLI that uses it.
CORE_COMMANDS: dict[str, str] = {
    "plugins": "kaslite.cli.plugins_cmd:plugins",
    "datasets": "kaslite.cli.datasets_cmd:datasets",
    "data": "kaslite.cli.data_cmd:data",
    "run": "kaslite.cli.run_cmd:run",
    "sweep": "kaslite.cli.sweep_cmd:sweep",
    "plot": "kaslite.cli.plot_cmd:plot",
}

# Plugin name -> module. Each module holds only light hookimpls; torch is
# imported inside the factories they return.
BUILTIN_PLUGINS: dict[str, str] = {
    "kaslite.blueprints": "kaslite.builtins.blueprints",
    "kaslite.controllers": "kaslite.builtins.controllers",
    "kaslite.trackers": "kaslite.builtins.trackers",
    "kaslite.model_sources": "kaslite.builtins.model_sources",
}


@attrs.frozen
class Kind:
    """One kind of registered thing: which hook returns it, its record class and what keys it."""

    label: str
    hook: str
    record: type
    key: str = "name"
    # Whether ``plugin:name`` names a record (model sources are URI schemes, commands click names: not them).
    qualifiable: bool = True


DATASET = Kind("dataset", "kaslite_datasets", hookspecs.DatasetSpec)
BLUEPRINT = Kind("blueprint", "kaslite_seed_blueprints", hookspecs.BlueprintSpec)
CONTROLLER = Kind("controller", "kaslite_controllers", hookspecs.ControllerSpec)
TRACKER = Kind("tracker", "kaslite_trackers", hookspecs.TrackerSpec)
MODEL_SOURCE = Kind("model source", "kaslite_model_sources", hookspecs.ModelSourceSpec, key="scheme", qualifiable=False)
KINDS = (DATASET, BLUEPRINT, CONTROLLER, TRACKER, MODEL_SOURCE)
# Commands are keyed by name like records; kaslite_commands extends a click group instead of returning them.
COMMAND = Kind("command", "kaslite_commands", object, qualifiable=False)
QUALIFIER = ":"  # plugin:name, as in --problem myplugin:digits


@attrs.frozen
class PluginInfo:
    """What ``kaslite plugins`` shows about one plugin."""

    name: str
    distribution: str
    version: str
    builtin: bool
    disabled: bool = False
    hooks: list[str] = attrs.field(factory=list)
    registered: dict[str, list[str]] = attrs.field(factory=dict)
    # Names this plugin registered that another plugin registered too (unusable until one is disabled).
    conflicts: list[str] = attrs.field(factory=list)
    error: str | None = None
    # Hook -> record name -> its parameters (tracker options): name, type, default, required, help.
    parameters: dict[str, dict[str, list[dict[str, Any]]]] = attrs.field(factory=dict)


@attrs.frozen
class _Origin:
    distribution: str
    version: str
    builtin: bool


@attrs.frozen
class Collected:
    """Everything plugins registered of one kind."""

    # Name -> record, for names exactly one plugin registered and the host accepted.
    records: dict[str, Any]
    # Name -> every plugin that registered it, in registration order (two or more: a conflict).
    providers: dict[str, list[str]]
    # Name -> why the host refused the record (its flags collide, its parameter class is unusable).
    refused: dict[str, str]
    # Name -> every record registered under it, for names two or more plugins registered.
    contenders: dict[str, list[Any]] = attrs.field(factory=dict)
    # "plugin:name" -> record, for every record the host accepted, claimed twice or not.
    qualified: dict[str, Any] = attrs.field(factory=dict)

    def conflicts(self) -> dict[str, list[str]]:
        return {name: plugins for name, plugins in self.providers.items() if len(plugins) > 1}


def env_flag(name: str) -> bool:
    """Whether environment variable ``name`` is set to a true value (1, true, yes, on)."""
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _short(value: Any) -> str:
    text = repr(value)
    return f"a {type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _core_version() -> str:
    from kaslite import __version__

    return __version__


class PluginManager(pluggy.PluginManager):
    """A pluggy manager that knows where each plugin came from and owns names and collisions."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.origins: dict[str, _Origin] = {}
        self.failures: dict[str, tuple[_Origin, str]] = {}  # plugins that failed to load
        self.disabled: dict[str, _Origin] = {}
        # Hook -> plugin -> what went wrong in that hook's call or records (loaded plugins only).
        self.hook_errors: dict[str, dict[str, list[str]]] = {}
        self.strict = env_flag(STRICT_ENV)
        self.debug = env_flag(DEBUG_ENV)
        self._collected: dict[str, Collected] = {}
        self._reported: set[str] = set()
        for name in os.environ.get(DISABLE_ENV, "").split(","):
            if name.strip():
                self.set_blocked(name.strip())

    # -- registering ------------------------------------------------------------

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        registered = super().register(plugin, name)
        if registered is not None:
            self._forget(plugin)
        return registered

    def unregister(self, plugin: Any | None = None, name: str | None = None) -> Any | None:
        plugin = plugin if plugin is not None else self.get_plugin(name or "")
        if plugin is not None:
            self._forget(plugin)
        return super().unregister(plugin, name)

    def _forget(self, plugin: Any) -> None:
        """Collect again, when next asked, the hooks ``plugin`` implements: their results change with it."""
        hooks = {caller.name for caller in self.get_hookcallers(plugin) or ()}
        if DATASET.hook in hooks:  # trackers' flags are checked against datasets' (see _refusal)
            hooks.add(TRACKER.hook)
        for hook in hooks:
            self._collected.pop(hook, None)
            self.hook_errors.pop(hook, None)

    def errors_of(self, plugin: str) -> list[str]:
        """What went wrong in this plugin's hooks and records."""
        return [error for by_plugin in self.hook_errors.values() for error in by_plugin.get(plugin, [])]

    def load_builtins(self) -> None:
        """Register kaslite-core's own plugins through the public mechanism."""
        origin = _Origin("kaslite-core", _core_version(), builtin=True)
        for name, module in BUILTIN_PLUGINS.items():
            self._load(name, origin, functools.partial(importlib.import_module, module))

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Load every installed plugin of ``group``, each in its own try/except.

        Entry-point names are one namespace across distributions: when two
        distributions use the same name, the clash is reported naming both and
        each is loaded as ``DISTRIBUTION:NAME``, so neither displaces the other.
        """
        by_name: dict[str, dict[str, importlib.metadata.EntryPoint]] = {}
        for ep in importlib.metadata.entry_points(group=group):
            dist = ep.dist.name if ep.dist else "?"
            by_name.setdefault(ep.name, {}).setdefault(dist, ep)  # one distribution seen twice on sys.path
        for name, eps in by_name.items():
            origins = {dist: self._origin_of(ep) for dist, ep in sorted(eps.items())}
            if len(eps) > 1:
                claimants = " and ".join(f"{o.distribution} {o.version}" for o in origins.values())
                loaded_as = ", ".join(f"{dist}:{name}" for dist in origins)
                self._warn(
                    f"kaslite: entry point {name!r} (group {group}) is claimed by both {claimants}; "
                    f"each is loaded under its distribution's name ({loaded_as})",
                    None,
                )
            for dist, ep in eps.items():
                self._load(f"{dist}:{name}" if len(eps) > 1 else name, origins[dist], ep.load, also_named=name)

    @staticmethod
    def _origin_of(ep: importlib.metadata.EntryPoint) -> _Origin:
        dist = ep.dist
        return _Origin(dist.name if dist else "?", dist.version if dist else "?", builtin=False)

    def _load(self, name: str, origin: _Origin, load: Callable[[], object], also_named: str | None = None) -> None:
        if self.is_blocked(name) or (also_named is not None and self.is_blocked(also_named)):
            self.disabled[name] = origin
            return
        if self.has_plugin(name) or name in self.failures:
            taken = f"plugin {self.describe(name)}" if self.has_plugin(name) else "a plugin that failed to load"
            self._fail(name, origin, PluginError(f"the name {name!r} is already taken by {taken}"))
            return
        try:
            plugin = load()
            check_plugin_api(plugin, origin.distribution)
            self.register(plugin, name=name)
            self.check_pending()
        except Exception as exc:
            if self.has_plugin(name):
                self.unregister(name=name)
            self._fail(name, origin, exc)
            return
        self.origins[name] = origin

    def _fail(self, name: str, origin: _Origin, exc: BaseException) -> None:
        # The host's own refusals speak for themselves; a plugin's exceptions carry their type.
        reason = message_line(exc) if isinstance(exc, PluginError) else first_line(exc)
        label = f"plugin {name!r} ({origin.distribution} {origin.version})"
        if self.strict:
            raise PluginError(f"{label} failed to load: {reason}") from exc
        self.failures[name] = (origin, reason)
        self._warn(f"kaslite: {label} failed to load and was skipped: {reason}", exc)

    # -- reporting ----------------------------------------------------------------

    def describe(self, plugin: str) -> str:
        """``'name' (distribution version)``, or just ``'name'`` for a plugin registered as an object."""
        origin = self.origins.get(plugin)
        return f"{plugin!r} ({origin.distribution} {origin.version})" if origin else repr(plugin)

    def _warn(self, message: str, exc: BaseException | None) -> None:
        if message in self._reported:  # once per process, however often the cause is met
            return
        self._reported.add(message)
        logger.warning("%s", message, exc_info=exc if (self.debug and exc is not None) else None)

    def _plugin_failed(
        self, plugin: str, hook: str, what: str, skipped: str, reason: str, exc: BaseException | None
    ) -> None:
        """A loaded plugin went wrong in a hook or a record: reported once, then that part is skipped."""
        label = f"plugin {self.describe(plugin)} {what}"
        if self.strict:
            raise PluginError(f"{label}: {reason}") from exc
        self.hook_errors.setdefault(hook, {}).setdefault(plugin, []).append(f"{what}: {reason}")
        self._warn(f"kaslite: {label} and {skipped} skipped: {reason}", exc)

    # -- calling hooks ---------------------------------------------------------------

    def _call_each(
        self, hook: str, skipped: str = "what it registers was", **argument_factories: Callable[[], Any]
    ) -> Iterator[tuple[str, Any, dict[str, Any]]]:
        """Call ``hook`` through pluggy one plugin at a time.

        Yields (plugin name, its result, the arguments it got) for each plugin
        that did not raise; each gets fresh arguments from ``argument_factories``.
        One that raises is reported (``skipped`` says what is lost) and the next is called.
        """
        impls = getattr(self.hook, hook).get_hookimpls()  # registration order: builtins first
        for impl in impls:
            others = [other.plugin for other in impls if other.plugin is not impl.plugin]
            arguments = {name: make() for name, make in argument_factories.items()}
            try:
                results = self.subset_hook_caller(hook, others)(**arguments)
            except Exception as exc:
                self._plugin_failed(impl.plugin_name, hook, f"failed in {hook}", skipped, first_line(exc), exc)
                continue
            yield impl.plugin_name, (results[0] if results else None), arguments

    def call_extensions(self, hook: str, **arguments: Any) -> list[str]:
        """Call an extension or event hook (``kaslite_server_app``, ``kaslite_sweep_end``) with ``arguments``,
        through pluggy, one plugin at a time, under the host's one policy: a plugin that raises is reported
        (named, once; with its traceback under ``--debug``) and skipped, and the others still run; with
        ``KASLITE_STRICT_PLUGINS=1`` it is fatal. Returns the plugins that ran to the end."""
        called = self._call_each(
            hook, "the rest of its extension was", **{name: (lambda v=value: v) for name, value in arguments.items()}
        )
        return [plugin for plugin, _, _ in called]

    def _records(self, plugin: str, kind: Kind, result: Any) -> list[Any]:
        """The records in one plugin's result, or none when it is not an iterable of ``kind.record``."""
        problem, exc = None, None
        items: list[Any] = []
        if result is None:
            return []
        if isinstance(result, (str, bytes)) or not isinstance(result, Iterable):
            problem = f"returned {_short(result)}, not a list of {kind.record.__name__}"
        else:
            try:
                items = list(result)
            except Exception as error:
                problem, exc = first_line(error), error
            wrong = [item for item in items if not isinstance(item, kind.record)]
            if problem is None and wrong:
                problem = f"returned {_short(wrong[0])} where a {kind.record.__name__} was expected"
        if problem is not None:
            self._plugin_failed(plugin, kind.hook, f"failed in {kind.hook}", "what it registers was", problem, exc)
            return []
        return items

    # -- what plugins registered --------------------------------------------------------

    def collected(self, kind: Kind) -> Collected:
        """Everything registered of ``kind`` (each hook is called once; the result is kept)."""
        if kind.hook not in self._collected:
            self._collected[kind.hook] = self._collect_commands() if kind is COMMAND else self._collect(kind)
        return self._collected[kind.hook]

    def _collect(self, kind: Kind) -> Collected:
        claims: dict[str, list[tuple[str, Any]]] = {}
        for plugin, result, _ in self._call_each(kind.hook):
            for record in self._records(plugin, kind, result):
                claims.setdefault(getattr(record, kind.key), []).append((plugin, record))
        providers = {name: [plugin for plugin, _ in found] for name, found in claims.items()}
        records = {name: found[0][1] for name, found in claims.items() if len(found) == 1}
        refused: dict[str, str] = {}
        taken = self._flags_taken_before(kind)
        for name, record in list(records.items()):
            reason = self._refusal(kind, record, taken)
            if reason is not None:
                plugin = providers[name][0]
                refused[name] = f"{kind.label} {name!r} of plugin {self.describe(plugin)} was refused: {reason}"
                del records[name]
                self._plugin_failed(plugin, kind.hook, f"registered {kind.label} {name!r}", "it was", reason, None)
        contenders = {name: [record for _, record in found] for name, found in claims.items() if len(found) > 1}
        qualified = {f"{providers[name][0]}{QUALIFIER}{name}": record for name, record in records.items()}
        for name, found in claims.items():
            for plugin, record in found if len(found) > 1 else ():
                # Its flags are never made (the name is not unique), so only its parameter class must be usable.
                reason = self._refusal(kind, record, {})
                if reason is None:
                    qualified[f"{plugin}{QUALIFIER}{name}"] = record
                else:
                    self._plugin_failed(plugin, kind.hook, f"registered {kind.label} {name!r}", "it was", reason, None)
        return Collected(records, providers, refused, contenders, qualified)

    def _flags_taken_before(self, kind: Kind) -> dict[str, str]:
        """Flag -> what holds it, for the flags a ``kind`` record may not take."""
        from kaslite.config import flagspace

        if kind not in (DATASET, TRACKER):
            return {}
        taken = flagspace.reserved_flags()
        taken = {flag: f"kaslite's own flag for {what}" for flag, what in taken.items()}
        if kind is TRACKER:  # dataset parameters are flags of kaslite run too (see cli/run_cmd.py)
            for name, record in self.collected(DATASET).records.items():
                for flag, field in flagspace.plugin_field_flags(record.params_type).items():
                    taken.setdefault(flag, f"parameter {field} of dataset {name!r}")
        return taken

    def _refusal(self, kind: Kind, record: Any, taken: dict[str, str]) -> str | None:
        """Why the host cannot use ``record``, or None; an accepted tracker's flags join ``taken``.

        A dataset's parameters and a tracker's options become ``kaslite run``
        flags, so one whose flag kaslite or another plugin already holds is
        refused here rather than silently shadowed.
        """
        from kaslite.config import flagspace

        attribute = "options_type" if kind is TRACKER else "params_type"
        params_type = getattr(record, attribute, None)
        if params_type is None and kind is not DATASET:
            return None
        if not (isinstance(params_type, type) and attrs.has(params_type)):
            return f"its {attribute} {params_type!r} is not an attrs class"
        if kind not in (DATASET, TRACKER):
            return None
        what = "parameter" if kind is DATASET else "option"
        flags = flagspace.plugin_field_flags(params_type)
        for flag, field in flags.items():
            if flag in taken:
                return f"its {what} {field} would be the flag {flag}, which is already {taken[flag]}; rename the {what}"
        if kind is TRACKER:  # datasets share their flags (only one dataset is used); trackers cannot
            taken.update({flag: f"option {field} of tracker {record.name!r}" for flag, field in flags.items()})
        return None

    def registrations(self, kind: Kind) -> dict[str, Any]:
        """Every usable record of ``kind`` by name: conflicting and refused names are left out."""
        return self.collected(kind).records

    def lookup(self, kind: Kind, name: str) -> Any:
        """The record named ``name``, or ``plugin:name`` (the plugin's name or its distribution's); an error
        naming every provider and the qualified names to choose from, the refusal, or what is available."""
        collected = self.collected(kind)
        if name in collected.records:
            return collected.records[name]
        if kind.qualifiable and QUALIFIER in name:
            return collected.qualified[self._qualified(kind, name)]
        plugins = sorted(collected.providers.get(name, []))
        if len(plugins) > 1:
            choices = [f"{plugin}{QUALIFIER}{name}" for plugin in plugins] if kind.qualifiable else None
            raise DuplicateNameError(kind.label, name, [self.describe(plugin) for plugin in plugins], choices)
        if name in collected.refused:
            raise PluginError(collected.refused[name])
        raise UnknownNameError(kind.label, name, list(collected.records))

    def _qualified(self, kind: Kind, name: str) -> str:
        """``plugin:name`` as :attr:`Collected.qualified` keys it, from a plugin or a distribution name."""
        collected = self.collected(kind)
        qualifier, _, short = name.rpartition(QUALIFIER)  # a plugin name may hold one itself (DIST:NAME)
        plugins = [qualifier] if self.get_plugin(qualifier) is not None else []
        plugins += [plugin for plugin, origin in self.origins.items() if origin.distribution == qualifier]
        for plugin in plugins:
            if f"{plugin}{QUALIFIER}{short}" in collected.qualified:
                return f"{plugin}{QUALIFIER}{short}"
        raise UnknownNameError(kind.label, name, list(collected.records) + list(collected.qualified))

    def provider(self, kind: Kind, name: str) -> str:
        """The distribution that registered ``name`` or ``plugin:name`` (``kaslite-core`` for builtins)."""
        if kind.qualifiable and QUALIFIER in name and name not in self.collected(kind).records:
            plugin = self._qualified(kind, name).rpartition(QUALIFIER)[0]
        else:
            plugin = self.collected(kind).providers[name][0]
        origin = self.origins.get(plugin)
        return origin.distribution if origin else plugin

    def validate_params(self, kind: Kind, name: str, values: dict[str, Any]) -> Any:
        """``values`` structured by the record's ``params_type``; errors name the plugin and parameter."""
        from kaslite.config.structure import structure
        from kaslite.errors import ConfigError, InvalidValue

        params_type = getattr(self.lookup(kind, name), "params_type", None)
        if params_type is None:
            return values
        where = f"{kind.label} {name!r} (plugin {self.provider(kind, name)})"
        try:
            return structure(values, params_type, path=f"{where} parameters")
        except InvalidValue as exc:
            field = exc.field.rsplit(".", 1)[-1]
            raise ConfigError(f"invalid {where} parameter {field} = {exc.value!r}: {exc.allowed}") from None

    # -- commands ------------------------------------------------------------------------

    def _collect_commands(self) -> Collected:
        """Each plugin's ``kaslite_commands`` extends a group of its own, so the host knows who added what.

        A command named like one of kaslite's own is refused (kaslite's wins);
        one two plugins both add is a conflict.
        """
        import click

        claims: dict[str, list[tuple[str, Any]]] = {}
        commands = self._call_each(COMMAND.hook, "its commands were", cli=lambda: click.Group(name="kaslite"))
        for plugin, _, arguments in commands:
            for name, command in arguments["cli"].commands.items():
                claims.setdefault(name, []).append((plugin, command))
        providers = {name: [plugin for plugin, _ in found] for name, found in claims.items()}
        records = {name: found[0][1] for name, found in claims.items() if len(found) == 1}
        refused: dict[str, str] = {}
        for name in [name for name in records if name in CORE_COMMANDS]:
            plugin = providers[name][0]
            reason = f"kaslite-core has a command {name!r} of its own"
            refused[name] = f"command {name!r} of plugin {self.describe(plugin)} was refused: {reason}"
            del records[name]
            self._plugin_failed(plugin, COMMAND.hook, f"adds command {name!r}", "it was", reason, None)
        return Collected(records, providers, refused)

    # -- listing -------------------------------------------------------------------------

    def registered_by(self, plugin_name: str) -> dict[str, list[str]]:
        """Hook name -> names that one plugin registered (records and commands), conflicts included."""
        out: dict[str, list[str]] = {}
        for kind in (*KINDS, COMMAND):
            names = [name for name, plugins in self.collected(kind).providers.items() if plugin_name in plugins]
            if names:
                out[kind.hook] = sorted(names) if kind is COMMAND else names
        return out

    def parameters_of(self, plugin_name: str) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """Hook -> record name -> the parameters of each record this plugin registered that has any."""
        from kaslite.config.flagspace import describe_fields

        out: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for kind in KINDS:
            collected = self.collected(kind)
            for name, record in collected.records.items():
                params_type = getattr(record, "options_type" if kind is TRACKER else "params_type", None)
                if params_type is not None and collected.providers[name] == [plugin_name]:
                    out.setdefault(kind.hook, {})[name] = describe_fields(params_type)
        return out

    def conflicts_of(self, plugin_name: str) -> list[str]:
        """One line per name this plugin registered that another plugin registered too, with the qualified
        names that pick one."""
        lines = []
        for kind in (*KINDS, COMMAND):
            for name, plugins in self.collected(kind).conflicts().items():
                if plugin_name in plugins:
                    others = " and ".join(self.describe(p) for p in plugins if p != plugin_name)
                    line = f"{kind.label} {name!r} is also registered by {others}"
                    if kind.qualifiable:
                        line += "; choose with " + " or ".join(f"{p}{QUALIFIER}{name}" for p in sorted(plugins))
                    lines.append(line)
        return lines

    def plugin_infos(self) -> list[PluginInfo]:
        """Everything ``kaslite plugins`` shows: loaded, failed and disabled plugins, and name conflicts."""
        for kind in (*KINDS, COMMAND):  # collect first, so hook errors are known below
            self.collected(kind)
        infos = []
        for name in self.origins:
            origin = self.origins[name]
            hooks = sorted(caller.name for caller in self.get_hookcallers(self.get_plugin(name)) or ())
            errors = self.errors_of(name)
            infos.append(
                PluginInfo(
                    name,
                    origin.distribution,
                    origin.version,
                    origin.builtin,
                    False,
                    hooks,
                    self.registered_by(name),
                    self.conflicts_of(name),
                    "; ".join(errors) if errors else None,
                    self.parameters_of(name),
                )
            )
        for name, (origin, reason) in self.failures.items():
            infos.append(PluginInfo(name, origin.distribution, origin.version, origin.builtin, error=reason))
        for name, origin in self.disabled.items():
            infos.append(PluginInfo(name, origin.distribution, origin.version, origin.builtin, disabled=True))
        return infos


_manager: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide manager: specs, builtins, then installed plugins (cached)."""
    global _manager
    if _manager is None:
        manager = PluginManager()
        manager.load_builtins()
        manager.load_entry_points()
        _manager = manager
    return _manager


def reset_plugin_manager() -> None:
    """Forget the cached manager (tests, or after installing a plugin)."""
    global _manager
    _manager = None


def get_dataset(name: str) -> hookspecs.DatasetSpec:
    """The dataset registered as ``name``."""
    return get_plugin_manager().lookup(DATASET, name)  # type: ignore[no-any-return]


def get_blueprint(name: str) -> hookspecs.BlueprintSpec:
    """The seed blueprint registered as ``name``."""
    return get_plugin_manager().lookup(BLUEPRINT, name)  # type: ignore[no-any-return]


def get_controller(name: str) -> hookspecs.ControllerSpec:
    """The controller registered as ``name``."""
    return get_plugin_manager().lookup(CONTROLLER, name)  # type: ignore[no-any-return]


def get_tracker(name: str) -> hookspecs.TrackerSpec:
    """The tracker registered as ``name``."""
    return get_plugin_manager().lookup(TRACKER, name)  # type: ignore[no-any-return]


def get_model_source(scheme: str) -> hookspecs.ModelSourceSpec:
    """The model source serving URIs of ``scheme``."""
    return get_plugin_manager().lookup(MODEL_SOURCE, scheme)  # type: ignore[no-any-return]
