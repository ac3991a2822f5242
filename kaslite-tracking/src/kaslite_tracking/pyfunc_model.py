"""A kaslite network as an MLflow pyfunc model, logged as code ("models from code"), never pickled.

MLflow executes this file when it loads the model, so it imports only what a
serving environment with kaslite-core has: mlflow, numpy, torch and kaslite.
The weights come from kaslite's own ``model.pt``, read with
``torch.load(weights_only=True)``.
"""

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel  # type: ignore[attr-defined]


class KaslitePyfunc(PythonModel):
    """Predicts class indices (the argmax over the network's last output axis) for a batch of samples:
    rows of features, images, sequences, whatever shape the model was saved with."""

    def load_context(self, context):  # type: ignore[no-untyped-def]
        import kaslite

        # Predict with the grown network fused into plain layers: the same outputs, none of the seeds.
        self.net = kaslite.fuse(kaslite.load_model(context.artifacts["model"]))

    # The ndarray hint tells MLflow to validate inputs against the logged
    # signature instead of inferring a schema from the hint.
    def predict(self, context, model_input: np.ndarray, params=None):  # type: ignore[no-untyped-def]
        import torch

        # A fresh float32 copy: DataFrames, lists and read-only arrays alike.
        features = np.array(model_input, dtype=np.float32)
        with torch.no_grad():
            return self.net(torch.from_numpy(features)).argmax(dim=-1).numpy()


mlflow.models.set_model(KaslitePyfunc())
