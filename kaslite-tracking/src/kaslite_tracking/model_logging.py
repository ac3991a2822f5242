"""Log a kaslite model file to an MLflow run as a pyfunc model (code + ``model.pt``, no pickle).

``mlflow.pyfunc.log_model`` logs it, as "models from code": MLflow runs
:mod:`kaslite_tracking.pyfunc_model` to load it, and nothing is pickled. The
signature and input example come from the file's own (``save_model(...,
example_input=...)``), so any module logs the same way: rows, images, sequences.
"""

import shutil
import tempfile
from pathlib import Path
from typing import Any

from kaslite.errors import ConfigError

PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
MODEL_NAME = "model"


def pip_requirements() -> list[str]:
    """What serving the model needs, pinned to what trained it; explicit, so MLflow does not infer them."""
    import mlflow
    import torch

    import kaslite

    torch_version = torch.__version__.split("+")[0]  # "2.13.0+cpu" is not a pip requirement
    return [f"kaslite-core=={kaslite.__version__}", f"torch=={torch_version}", f"mlflow=={mlflow.__version__}"]


def servable(path: Path) -> tuple[Any, Any]:
    """The network in a model file and its signature; a one-line error when the file does not say what the
    network takes (nothing can be logged or served without that)."""
    from kaslite.models import load_model, signature_of

    net = load_model(path)
    recorded = signature_of(net)
    if recorded is None:
        raise ConfigError(
            f"{path} does not say what {type(net).__name__} takes: save it with "
            "kaslite.save_model(model, path, example_input=batch), a batch of real inputs"
        )
    return net, recorded


def log_kaslite_model(
    client: Any, tracking_uri: str, experiment_id: str, run_id: str, model_path: Path, loaded: Any = None
) -> Any:
    """Log ``model_path`` to ``run_id`` with a signature and the file's example rows; returns MLflow's ModelInfo.

    ``loaded``: what :func:`servable` returned for the file, when the caller has read it already."""
    import mlflow.pyfunc
    import torch
    from mlflow.entities import LoggedModelOutput
    from mlflow.models import infer_signature

    from kaslite_tracking.store import fluent_tracking_uri

    net, recorded = loaded if loaded is not None else servable(model_path)
    batch = recorded.example_batch()
    with torch.no_grad():
        predictions = net(batch).argmax(dim=-1).numpy()
    example = batch.float().numpy()
    signature = infer_signature(example, predictions)
    # Created here, with the client: the logged model belongs to the run's experiment and names the run as its
    # source, whatever run or experiment MLflow's fluent API happens to have active in this process.
    logged = client.create_logged_model(experiment_id, name=MODEL_NAME, source_run_id=run_id, model_type="kaslite")
    with fluent_tracking_uri(tracking_uri), tempfile.TemporaryDirectory(prefix="kaslite-log-") as tmp:
        # The artifact keeps the file's name: the models:/ source reads artifacts/model.pt, whatever it was called.
        artifact = Path(tmp) / "model.pt"
        shutil.copyfile(model_path, artifact)
        info = mlflow.pyfunc.log_model(
            name=MODEL_NAME,
            python_model=str(PYFUNC_CODE),
            artifacts={"model": str(artifact)},
            signature=signature,
            input_example=example,
            pip_requirements=pip_requirements(),
            model_id=logged.model_id,
        )
    # The run lists the model among its outputs (what log_model does for the run it finds active).
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    return info
