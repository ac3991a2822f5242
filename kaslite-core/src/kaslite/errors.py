"""Exceptions a user can act on: each names what was wrong and what is allowed."""


class KasliteError(Exception):
    """Base class of every error kaslite raises on purpose."""


def message_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message; its type's name when the message is empty."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def first_line(exc: BaseException) -> str:
    """``exc`` in one line: ``Type: first line of the message`` (the type alone for an empty message)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


class ConfigError(KasliteError, ValueError):
    """A configuration value (from YAML, flags or Python) is not allowed."""


class InvalidValue(ConfigError):
    """One field holds a value outside what it allows."""

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"invalid {field} = {value!r}: {allowed}")

    def with_prefix(self, prefix: str) -> "InvalidValue":
        """The same error with the field named by its full path (``seed.blend_steps``)."""
        return InvalidValue(f"{prefix}.{self.field}" if prefix else self.field, self.value, self.allowed)


class UnknownNameError(KasliteError, LookupError):
    """A dataset, controller, blueprint, tracker or model source nobody registered."""

    def __init__(self, kind: str, name: str, available: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.available = sorted(available)
        listing = ", ".join(self.available) or "(none installed)"
        super().__init__(f"unknown {kind} {name!r}; available: {listing}")

    def __str__(self) -> str:  # LookupError would quote the message like a KeyError
        return str(self.args[0])


class RunStopped(KasliteError):
    """A run stopped before its end (a failing plugin, Ctrl-C); its checkpoint is kept for ``--resume``.

    ``exit_code`` is what the command line exits with: 1 on an error, 130 when interrupted.
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class PluginError(KasliteError):
    """A plugin failed to load or registered something that collides."""


class DuplicateNameError(PluginError):
    """Two plugins registered the same name for the same kind of thing.

    ``providers`` describe the plugins (``'name' (distribution version)``);
    ``choices`` are the qualified names that pick one (``plugin:name``).
    """

    def __init__(self, kind: str, name: str, providers: list[str], choices: list[str] | None = None) -> None:
        self.kind = kind
        self.name = name
        self.providers = providers
        self.choices = choices or []
        remedy = f"name one: {', '.join(self.choices)}" if self.choices else "disable one with KASLITE_DISABLE_PLUGINS"
        super().__init__(f"{kind} {name!r} is registered by both {' and '.join(providers)}; {remedy}")
