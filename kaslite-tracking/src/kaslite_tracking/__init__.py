"""kaslite-tracking: MLflow and TensorBoard trackers, model logging and the model registry.

Importing this package is cheap: mlflow, tensorboard and torch are imported
inside the functions that use them, so ``kaslite --help`` stays fast.

MLflow's usage telemetry is off unless the user turns it on: MLflow reads
``MLFLOW_DISABLE_TELEMETRY`` when it is first imported, and without it sends
usage events to its telemetry host and writes an installation id to
``~/.config/mlflow/telemetry.json``. Every kaslite path to MLflow imports this
package first, so it is set here, only when the user has not set it
(``MLFLOW_DISABLE_TELEMETRY=false`` turns telemetry on).
"""

import os
from importlib.metadata import PackageNotFoundError, version

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

try:
    __version__ = version("kaslite-tracking")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

__all__ = ["__version__"]
