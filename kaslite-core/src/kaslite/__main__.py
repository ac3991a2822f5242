"""``python -m kaslite`` runs the command line."""

from kaslite.cli.main import main

main()
