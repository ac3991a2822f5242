#!/usr/bin/env python
"""The original entry point, kept for old commands: same as ``kaslite run ...``."""

import sys

from kaslite.cli.main import cli

if __name__ == "__main__":
    cli(["run", *sys.argv[1:]], prog_name="run_morphogenetic_experiment.py")
