"""The datasets kaslite trains on: synthetic problems and a loader for your own files.

Registered through the ``kaslite`` entry point ``datasets`` (see
:mod:`kaslite_datasets.plugin`). Importing this package does not import numpy.
"""

__version__ = "0.1.0"
