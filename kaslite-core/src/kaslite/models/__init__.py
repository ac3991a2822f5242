"""Self-describing model files: save a grown network, load it anywhere without unpickling code."""

from kaslite.models.files import FORMAT, LoadedModel, load_model, read_model_file, save_model

__all__ = ["FORMAT", "LoadedModel", "load_model", "read_model_file", "save_model"]
