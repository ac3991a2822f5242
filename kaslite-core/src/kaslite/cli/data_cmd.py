"""``kaslite data generate PROBLEM``: write a dataset to an ``.npz`` file.

Each dataset becomes a subcommand whose options are its parameter fields, so
``kaslite data generate spirals --help`` lists exactly what spirals accepts.
"""

import json
from pathlib import Path
from typing import Any

import attrs
import click

from kaslite.config.structure import structure, unstructure
from kaslite.hookspecs import DatasetSpec
from kaslite.plugins import DATASET, get_plugin_manager

# Where generated files go unless --out says otherwise (git-ignored, and where dvc.yaml writes them).
DATA_DIR = Path("data")

_CLICK_TYPES: "dict[Any, click.ParamType[Any]]" = {
    int: click.INT,
    float: click.FLOAT,
    str: click.STRING,
    bool: click.BOOL,
}


def parameter_options(params_type: type) -> list[click.Option]:
    """One option per attrs field, dashed (``--n-samples``) and underscored (``--n_samples``)."""
    options = []
    for field in attrs.fields(params_type):
        dashed = "--" + field.name.replace("_", "-")
        names = [dashed] if "_" not in field.name else [dashed, "--" + field.name]
        required = field.default is attrs.NOTHING
        default = "" if required else f" [default: {field.default!r}]"
        help_text = f"{field.metadata.get('help') or field.name}{default}"
        if field.type is bool:  # a flag pair: --register / --no-register
            pair = f"{dashed}/--no-{dashed[2:]}"
            options.append(click.Option([pair, field.name], default=None, help=help_text))
            continue
        options.append(
            click.Option(
                [*names, field.name],
                type=_CLICK_TYPES.get(field.type, click.STRING),
                required=required,
                default=None,
                help=help_text,
            )
        )
    return options


def write_npz(path: Path, arrays: Any, metadata: dict[str, Any]) -> None:
    """Write X, y, num_classes and the generating parameters (as JSON) to ``path``.

    Byte for byte the same for the same data (``np.savez`` stamps the current
    time into the zip), so pipelines such as DVC see an unchanged file.
    """
    import io
    import zipfile

    import numpy as np

    members = {
        "X": np.asarray(arrays.X),
        "y": np.asarray(arrays.y),
        "num_classes": np.asarray(np.int64(arrays.num_classes)),
        "metadata": np.asarray(json.dumps(metadata, sort_keys=True)),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in members.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buffer.getvalue())
    tmp.replace(path)


def _generate_command(spec: DatasetSpec) -> click.Command:
    def callback(seed: int, out: Path | None, force: bool, **given: Any) -> None:
        out = out or DATA_DIR / f"{spec.name}.npz"
        if out.exists() and not force:  # it may be a pipeline's input: never replaced unasked
            raise click.UsageError(f"{out} exists; --force replaces it, --out writes elsewhere")
        values = {name: value for name, value in given.items() if value is not None}
        params: Any = structure(values, spec.params_type, path=spec.name)
        arrays = spec.generate(params, seed)
        metadata = {"problem": spec.name, "seed": seed, "params": unstructure(params)}
        write_npz(out, arrays, metadata)
        click.echo(f"wrote {out}: X {tuple(arrays.X.shape)}, {arrays.num_classes} classes")

    return click.Command(
        spec.name,
        callback=callback,
        help=spec.description,
        params=[
            click.Option(["--seed"], type=click.INT, default=0, show_default=True, help="Random seed."),
            click.Option(
                ["--out", "-o"],
                type=click.Path(dir_okay=False, path_type=Path),
                help=f"Output .npz [default: {DATA_DIR}/{spec.name}.npz].",
            ),
            click.Option(["--force"], is_flag=True, help="Replace the output file if it exists."),
            *parameter_options(spec.params_type),
        ],
    )


class DatasetCommands(click.Group):
    """A subcommand per registered dataset; an unknown one lists the available names."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(get_plugin_manager().registrations(DATASET))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return _generate_command(get_plugin_manager().lookup(DATASET, cmd_name))


@click.group()
def data() -> None:
    """Work with datasets."""


@data.group(cls=DatasetCommands)
def generate() -> None:
    """Generate PROBLEM's data and write arrays X, y to an .npz file."""
