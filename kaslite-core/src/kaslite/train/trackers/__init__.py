"""Builtin trackers: ``console`` (a live dashboard or plain lines) and ``json`` (run-dir files)."""
