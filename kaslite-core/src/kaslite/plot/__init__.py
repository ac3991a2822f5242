"""Pictures of runs and sweeps (``kaslite plot``); needs matplotlib: ``pip install 'kaslite-core[plot]'``.

from kaslite.plot import load_run, run_figure
run_figure([load_run("runs/a"), load_run("runs/b")]).savefig("a-vs-b.png")
"""

from kaslite.plot.figure import png_bytes, run_figure
from kaslite.plot.runs import RunRecord, load_run, record_of
from kaslite.plot.sweep import is_sweep_dir, load_sweep, sweep_figure

INSTALL_HINT = "pip install 'kaslite-core[plot]'"

__all__ = [
    "INSTALL_HINT",
    "RunRecord",
    "is_sweep_dir",
    "load_run",
    "load_sweep",
    "png_bytes",
    "record_of",
    "run_figure",
    "sweep_figure",
]
