#!/usr/bin/env python
"""The original entry point, kept for old commands: same as ``kaslite run ...``.

``--sweep_config FILE`` (or ``-s FILE``) runs a sweep instead, as ``kaslite sweep FILE ...``
with the remaining flags as the sweep's defaults.
"""

import sys

from kaslite.cli.main import cli

SWEEP_FLAGS = ("--sweep_config", "--sweep-config", "-s")


def command(argv: list[str]) -> list[str]:
    """``kaslite`` arguments for the script's arguments."""
    files: list[str] = []
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        flag, sep, value = arg.partition("=")
        if flag in SWEEP_FLAGS:
            file = value if sep else next(args, "")
            if not file:
                print(f"Error: {flag} needs a sweep file", file=sys.stderr)
                sys.exit(2)
            files.append(file)
        else:
            rest.append(arg)
    return ["sweep", *files, *rest] if files else ["run", *rest]


if __name__ == "__main__":
    cli(command(sys.argv[1:]), prog_name="run_morphogenetic_experiment.py")
