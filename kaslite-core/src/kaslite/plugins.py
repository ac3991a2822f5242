"""The plugin host: loads builtins and entry points, collects what they register.

Builtins are registered exactly like third-party plugins, so ``kaslite
plugins`` lists them and ``KASLITE_DISABLE_PLUGINS`` can switch them off.
A plugin that fails to import is reported and skipped (fatal with
``KASLITE_STRICT_PLUGINS=1``): one broken plugin never takes the host down.
"""

import functools
import importlib
import importlib.metadata
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pluggy

from kaslite import hookspecs
from kaslite.errors import DuplicateNameError, PluginError, UnknownNameError

logger = logging.getLogger("kaslite.plugins")

ENTRY_POINT_GROUP = "kaslite"
STRICT_ENV = "KASLITE_STRICT_PLUGINS"
DISABLE_ENV = "KASLITE_DISABLE_PLUGINS"

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
    """One kind of registered thing: which hook returns it and what keys it."""

    label: str
    hook: str
    key: str = "name"


DATASET = Kind("dataset", "kaslite_datasets")
BLUEPRINT = Kind("blueprint", "kaslite_seed_blueprints")
CONTROLLER = Kind("controller", "kaslite_controllers")
TRACKER = Kind("tracker", "kaslite_trackers")
MODEL_SOURCE = Kind("model source", "kaslite_model_sources", key="scheme")
KINDS = (DATASET, BLUEPRINT, CONTROLLER, TRACKER, MODEL_SOURCE)


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
    error: str | None = None


@attrs.frozen
class _Origin:
    distribution: str
    version: str
    builtin: bool


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _core_version() -> str:
    from kaslite import __version__

    return __version__


class PluginManager(pluggy.PluginManager):
    """A pluggy manager that also knows where each plugin came from."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.origins: dict[str, _Origin] = {}
        self.failures: dict[str, tuple[_Origin, str]] = {}
        self.disabled: dict[str, _Origin] = {}
        self.strict = _truthy(os.environ.get(STRICT_ENV))
        for name in os.environ.get(DISABLE_ENV, "").split(","):
            if name.strip():
                self.set_blocked(name.strip())

    # -- loading -------------------------------------------------------------

    def load_builtins(self) -> None:
        """Register kaslite-core's own plugins through the public mechanism."""
        origin = _Origin("kaslite-core", _core_version(), builtin=True)
        for name, module in BUILTIN_PLUGINS.items():
            self._load(name, origin, functools.partial(importlib.import_module, module))

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Load every installed plugin of ``group``, each in its own try/except."""
        seen: set[tuple[str, str]] = set()
        for ep in importlib.metadata.entry_points(group=group):
            if (ep.name, ep.value) in seen:  # one distribution visible twice on sys.path
                continue
            seen.add((ep.name, ep.value))
            dist = ep.dist
            origin = _Origin(dist.name if dist else "?", dist.version if dist else "?", builtin=False)
            self._load(ep.name, origin, ep.load)

    def _load(self, name: str, origin: _Origin, load: Callable[[], object]) -> None:
        if self.is_blocked(name):
            self.disabled[name] = origin
            return
        if self.has_plugin(name) or name in self.failures:
            self._fail(name, origin, PluginError(f"a plugin named {name!r} is already loaded"))
            return
        try:
            plugin = load()
            self.register(plugin, name=name)
            self.check_pending()
        except Exception as exc:
            if self.has_plugin(name):
                self.unregister(name=name)
            self._fail(name, origin, exc)
            return
        self.origins[name] = origin

    def _fail(self, name: str, origin: _Origin, exc: BaseException) -> None:
        reason = _first_line(exc)
        if self.strict:
            raise PluginError(
                f"plugin {name!r} ({origin.distribution} {origin.version}) failed to load: {reason}"
            ) from exc
        self.failures[name] = (origin, reason)
        logger.warning(
            "kaslite: plugin %r (%s %s) failed to load and was skipped: %s",
            name,
            origin.distribution,
            origin.version,
            reason,
        )

    # -- what plugins registered --------------------------------------------

    def _impl_results(self, hook: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        """Call each implementation of ``hook`` alone, yielding (plugin name, result)."""
        caller = getattr(self.hook, hook)
        for impl in caller.get_hookimpls():  # registration order: builtins first
            args = [kwargs[arg] for arg in impl.argnames]
            try:
                result = impl.function(*args)
            except Exception as exc:
                raise PluginError(f"plugin {impl.plugin_name!r} failed in {hook}: {_first_line(exc)}") from exc
            yield impl.plugin_name, result

    def _collect(self, kind: Kind) -> tuple[dict[str, Any], dict[str, str]]:
        records: dict[str, Any] = {}
        providers: dict[str, str] = {}
        for plugin, result in self._impl_results(kind.hook):
            for record in result or ():
                key = getattr(record, kind.key)
                if key in records:
                    raise DuplicateNameError(kind.label, key, [providers[key], plugin])
                records[key] = record
                providers[key] = plugin
        return records, providers

    def registrations(self, kind: Kind) -> dict[str, Any]:
        """Every record of ``kind``, by name; a name claimed twice is an error."""
        return self._collect(kind)[0]

    def provider(self, kind: Kind, name: str) -> str:
        """The distribution that registered ``name`` (``kaslite-core`` for builtins)."""
        plugin = self._collect(kind)[1][name]
        origin = self.origins.get(plugin)
        return origin.distribution if origin else plugin

    def validate_params(self, kind: Kind, name: str, values: dict[str, Any]) -> Any:
        """``values`` structured by the record's ``params_type``; errors name the plugin and parameter."""
        from kaslite.errors import ConfigError, InvalidValue
        from kaslite.structure import structure

        params_type = getattr(self.lookup(kind, name), "params_type", None)
        if params_type is None:
            return values
        where = f"{kind.label} {name!r} (plugin {self.provider(kind, name)})"
        try:
            return structure(values, params_type, path=f"{where} parameters")
        except InvalidValue as exc:
            field = exc.field.rsplit(".", 1)[-1]
            raise ConfigError(f"invalid {where} parameter {field} = {exc.value!r}: {exc.allowed}") from None

    def lookup(self, kind: Kind, name: str) -> Any:
        """The record named ``name``, or an error listing what is available."""
        records = self.registrations(kind)
        if name not in records:
            raise UnknownNameError(kind.label, name, list(records))
        return records[name]

    def registered_by(self, plugin_name: str) -> dict[str, list[str]]:
        """Hook name -> names that one plugin registered (records and commands)."""
        plugin = self.get_plugin(plugin_name)
        out: dict[str, list[str]] = {}
        for kind in KINDS:
            for impl in getattr(self.hook, kind.hook).get_hookimpls():
                if impl.plugin is plugin:
                    out[kind.hook] = [getattr(r, kind.key) for r in impl.function() or ()]
        commands = self.commands(only=plugin_name).get(plugin_name)
        if commands:
            out["kaslite_commands"] = sorted(commands)
        return out

    def commands(self, only: str | None = None) -> dict[str, dict[str, Any]]:
        """Plugin name -> the click commands its ``kaslite_commands`` adds.

        Each implementation extends a group of its own, so the host knows who
        added what and can refuse a command name two providers both claim.
        """
        import click

        out: dict[str, dict[str, Any]] = {}
        for impl in self.hook.kaslite_commands.get_hookimpls():
            if only is not None and impl.plugin_name != only:
                continue
            staging = click.Group(name="kaslite")
            try:
                impl.function(*[staging for _ in impl.argnames])
            except Exception as exc:
                raise PluginError(
                    f"plugin {impl.plugin_name!r} failed in kaslite_commands: {_first_line(exc)}"
                ) from exc
            out[impl.plugin_name] = dict(staging.commands)
        return out

    def plugin_infos(self) -> list[PluginInfo]:
        """Everything ``kaslite plugins`` shows: loaded, failed and disabled plugins."""
        infos = []
        for name, origin in self.origins.items():
            plugin = self.get_plugin(name)
            hooks = sorted(caller.name for caller in self.get_hookcallers(plugin) or ())
            try:
                registered, error = self.registered_by(name), None
            except PluginError as exc:
                registered, error = {}, str(exc)
            infos.append(
                PluginInfo(name, origin.distribution, origin.version, origin.builtin, False, hooks, registered, error)
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
