"""kaslite-tracking: MLflow and TensorBoard trackers, model logging and the model registry.

Importing this package is cheap: mlflow, tensorboard and torch are imported
inside the functions that use them, so ``kaslite --help`` stays fast.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kaslite-tracking")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

__all__ = ["__version__"]
