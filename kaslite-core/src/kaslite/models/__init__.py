"""Self-describing model files: save a grown network, load it anywhere without unpickling code.

Model sources and the server read model URIs with :func:`parse_model_uri`.
"""

from kaslite.models.files import FORMAT, LoadedModel, load_model, read_model_file, save_model, signature_of
from kaslite.models.signature import Signature, TensorSpec
from kaslite.models.uri import FILE_SCHEME, ModelUri, parse_model_uri, scheme_of

__all__ = [
    "FILE_SCHEME",
    "FORMAT",
    "LoadedModel",
    "ModelUri",
    "Signature",
    "TensorSpec",
    "load_model",
    "parse_model_uri",
    "read_model_file",
    "save_model",
    "scheme_of",
    "signature_of",
]
