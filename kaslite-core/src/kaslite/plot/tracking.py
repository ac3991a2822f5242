"""The run's figure for trackers: drawn once at the run's end, however many trackers log it.

Importing matplotlib takes longer than drawing (about 0.5 s against 0.3 s),
and importing it in a thread of the training process slows training as much,
since both hold the GIL. So :func:`prepare` (called by trackers at the run's
start) starts a helper process (:mod:`kaslite.plot.drawer`) that imports it
while the run trains; at the run's end :func:`summary_png` hands it the run
and the run waits only for the drawing.
"""

import json
import logging
import subprocess
import sys
import threading

from kaslite.train.events import RunSummary

logger = logging.getLogger("kaslite.plot")
FIGURE_NAME = "growth.png"
HELPER = [sys.executable, "-m", "kaslite.plot.drawer"]
HELPER_TIMEOUT_S = 120
_lock = threading.Lock()
_helper: subprocess.Popen[bytes] | None = None
_drawn: tuple[RunSummary, bytes | None] | None = None


def prepare() -> None:
    """Start the helper that will draw this run's figure (once, however many trackers ask)."""
    global _helper
    with _lock:
        if _helper is None:
            _helper = subprocess.Popen(HELPER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


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
    with _lock:
        if _drawn is None or _drawn[0] is not summary:
            _drawn = (summary, _draw(summary) if summary.history else None)
        return _drawn[1]


def _draw(summary: RunSummary) -> bytes | None:
    global _helper
    helper, _helper = _helper, None  # a helper draws one figure
    if helper is None:
        return _draw_here(summary)
    run = {"name": summary.run_name, "history": summary.history, "events": summary.events, "metrics": summary.metrics}
    try:
        png, errors = helper.communicate(json.dumps(run, default=str).encode() + b"\n", timeout=HELPER_TIMEOUT_S)
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
