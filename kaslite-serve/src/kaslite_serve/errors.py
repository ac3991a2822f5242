"""Errors the server answers with a status code and a message that names the problem."""

from kaslite.errors import ConfigError, KasliteError

V2_PREFIX = "/v2"


def error_body(path: str, message: str) -> dict[str, str]:
    """``{"detail": ...}`` as FastAPI answers, ``{"error": ...}`` on Open Inference Protocol routes."""
    return {"error": message} if path.startswith(V2_PREFIX) else {"detail": message}


class ModelUnavailable(ConfigError):
    """``--model`` names a model that cannot be loaded at start-up (exit 2, one line)."""


class ServeError(KasliteError):
    """A request the server cannot answer; ``status`` is the HTTP status it gets."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InputError(ServeError):
    """The request's data does not fit the model (shape, finiteness, size)."""

    status = 422


class UnknownVersion(ServeError):
    """A ``model_version`` the model source does not list."""

    status = 404


class UnknownModel(ServeError):
    """A model name (Open Inference Protocol path) this server does not serve."""

    status = 404


class NotReady(ServeError):
    """No model is loaded, or a requested version could not be loaded."""

    status = 503


class ReloadFailed(ServeError):
    """A reload could not load the model; the previous one keeps serving."""

    status = 503


class Unauthorized(ServeError):
    """An admin route called without a bearer token."""

    status = 401


class Forbidden(ServeError):
    """An admin route called with a wrong token, or refused on this bind."""

    status = 403
