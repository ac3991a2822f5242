"""The ``kaslite`` command line."""
