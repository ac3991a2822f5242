"""The kaslite inference server: a FastAPI app around a served model, and ``kaslite serve``.

Importing this package is cheap: fastapi, uvicorn and torch load only when an
app is built (``create_app``) or served. Embed the server in your own code with::

    from kaslite_serve import ServerSettings, create_app

    app = create_app(ServerSettings(model_uri="results/run/model.pt"))
"""

from typing import TYPE_CHECKING, Any

from kaslite_serve.settings import ServerSettings

if TYPE_CHECKING:
    from kaslite_serve.app import create_app

__version__ = "0.1.0"
__all__ = ["ServerSettings", "__version__", "create_app"]


def __getattr__(name: str) -> Any:
    # create_app lives with fastapi; import it on first use only.
    if name == "create_app":
        from kaslite_serve.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
