"""``kaslite plot``: one picture of a run, of several runs overlaid, or of a sweep."""

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import click

from kaslite.errors import ConfigError

if TYPE_CHECKING:
    from kaslite.plot.runs import RunRecord

FORMATS = (".png", ".svg", ".pdf")
RUN_FIGURE = "growth.png"
SWEEP_FIGURE = "sweep.png"
COMPARISON_FIGURE = "comparison.png"


def load_runs(folders: Sequence[Path]) -> list["RunRecord"]:
    """The runs in ``folders``, named by their folder, or parent/folder where two folders share a name."""
    from kaslite.plot import load_run

    runs = [load_run(folder) for folder in folders]
    names = [run.name for run in runs]
    if len(set(names)) == len(names):
        return runs
    return [
        attrs.evolve(run, name=f"{folder.resolve().parent.name}/{run.name}")
        for run, folder in zip(runs, folders, strict=True)
    ]


@click.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help=f"Figure file; its suffix picks the format ({', '.join(FORMATS)}). Default: {RUN_FIGURE} in the run "
    f"folder, {SWEEP_FIGURE} in the sweep folder, or {COMPARISON_FIGURE} here for several runs.",
)
@click.option("--colour-by", "--color-by", "colour_by", help="Sweeps: the swept parameter that colours the trials.")
def plot(folders: tuple[Path, ...], output: Path | None, colour_by: str | None) -> None:
    """Draw how a run grew (RUN_DIR), runs overlaid (RUN_DIR RUN_DIR ...), or a sweep's trials (SWEEP_DIR)."""
    if output is not None and output.suffix.lower() not in FORMATS:
        raise ConfigError(f"--output {output}: unknown suffix {output.suffix!r}; allowed: {', '.join(FORMATS)}")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("kaslite plot needs matplotlib: pip install 'kaslite-core[plot]'") from None
    from kaslite.plot import is_sweep_dir, load_sweep, run_figure, sweep_figure

    sweeps = [folder for folder in folders if is_sweep_dir(folder)]
    if sweeps and len(folders) > 1:
        raise ConfigError(f"{sweeps[0]} is a sweep: draw one sweep at a time, without run folders")
    if sweeps:
        figure = sweep_figure(load_sweep(sweeps[0]), colour_by, title=sweeps[0].name)
        default = sweeps[0] / SWEEP_FIGURE
    else:
        if colour_by is not None:
            raise ConfigError("--colour-by applies to a sweep folder only")
        figure = run_figure(load_runs(folders))
        default = folders[0] / RUN_FIGURE if len(folders) == 1 else Path(COMPARISON_FIGURE)
    path = output or default
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    click.echo(f"wrote {path}")
