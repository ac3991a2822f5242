"""The run's figure for trackers: drawn once at the run's end, however many trackers log it.

Importing matplotlib takes longer than drawing (about 0.5 s against 0.3 s),
and importing it in a thread of the training process slows training as much,
since both hold the GIL. So :func:`prepare` (called by trackers at the run's
start) starts a helper process (:mod:`kaslite.plot.drawer`) that imports it
while the run trains. kaslite's trainer hands it the finished run
(:func:`start_drawing`) before saving and logging the model, so it draws
meanwhile; :func:`summary_png`, at ``on_run_end``, reads the picture (or,
for a run driven otherwise, hands the run over and waits for it).
"""

import json
import logging
import subprocess
import sys
import threading
from typing import Any

from kaslite.train.events import RunSummary

logger = logging.getLogger("kaslite.plot")
FIGURE_NAME = "growth.png"
HELPER = [sys.executable, "-m", "kaslite.plot.drawer"]
HELPER_TIMEOUT_S = 120
_lock = threading.Lock()
_helper: subprocess.Popen[bytes] | None = None  # started, not yet given a run
_drawing: tuple[RunSummary, subprocess.Popen[bytes]] | None = None  # given a run, not yet read
_drawn: tuple[RunSummary, bytes | None] | None = None


def prepare() -> None:
    """Start the helper that will draw this run's figure (once, however many trackers ask)."""
    global _helper
    with _lock:
        if _helper is None:
            _helper = subprocess.Popen(HELPER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def start_drawing(summary: RunSummary) -> None:
    """Hand the finished run to the helper, if a tracker started one; it draws while the run ends."""
    global _helper, _drawing
    with _lock:
        if _helper is None or not summary.history:
            return
        helper, _helper = _helper, None  # a helper draws one figure
        run: dict[str, Any] = {"name": summary.run_name, "history": summary.history, "events": summary.events}
        run["metrics"] = summary.metrics
        try:  # one line, which the helper reads at once (communicate() closes the pipe later)
            assert helper.stdin is not None
            helper.stdin.write(json.dumps(run, default=str).encode() + b"\n")
            helper.stdin.flush()
        except OSError:  # the helper is gone (it could not start): summary_png says why
            pass
        _drawing = (summary, helper)


def release() -> None:
    """Stop a helper that was never asked to draw (the run failed): trackers call it when they close."""
    global _helper
    with _lock:
        helper, _helper = _helper, None
    if helper is not None:
        helper.kill()
        helper.communicate()


def summary_png(summary: RunSummary) -> bytes | None:
    """The figure of the run that ``summary`` ends, as PNG; None (and a warning) when it cannot be drawn."""
    global _drawn
    if _drawn is not None and _drawn[0] is summary:
        return _drawn[1]
    start_drawing(summary)  # a run whose driver did not (a user's own loop)
    with _lock:
        _drawn = (summary, _read(summary) if summary.history else None)
        return _drawn[1]


def _read(summary: RunSummary) -> bytes | None:
    global _drawing
    drawing, _drawing = _drawing, None
    if drawing is None or drawing[0] is not summary:
        return _draw_here(summary)
    helper = drawing[1]
    try:
        png, errors = helper.communicate(timeout=HELPER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        helper.kill()
        helper.communicate()
        png, errors = b"", f"it took over {HELPER_TIMEOUT_S} s".encode()
    if helper.returncode == 0 and png:
        return png
    lines = errors.decode(errors="replace").strip().splitlines()
    logger.warning("kaslite: no run figure: %s", lines[-1] if lines else f"exit code {helper.returncode}")
    return None


def _draw_here(summary: RunSummary) -> bytes | None:
    try:
        from kaslite.plot.figure import png_bytes, run_figure
    except ImportError:
        logger.warning("kaslite: no run figure: matplotlib is missing (pip install 'kaslite-core[plot]')")
        return None
    from kaslite.plot.runs import record_of

    record = record_of(summary.run_name, summary.history, summary.events, summary.metrics)
    try:
        return png_bytes(run_figure([record]))
    except Exception as exc:  # a figure is not worth a tracker: the run's metrics and model still go out
        logger.warning("kaslite: no run figure: drawing it raised %s: %s", type(exc).__name__, exc)
        return None
