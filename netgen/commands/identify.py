"""`netgen identify FILE`: the netgen name of the architecture in an ONNX file, a prototxt
or a build folder."""

from __future__ import annotations

import json

import click

from netgen.commands.options import input_shape_option
from netgen.jobs.identify import identify as run_identify


@click.command()
@click.argument("file")
@click.option("--caffemodel", type=click.Path(), default=None,
              help="Weights of a prototxt FILE (a bias of zeros then reads as none).")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"name": ..., "build": [...], "notes": [...], ...} as JSON.')
@input_shape_option
def identify(file: str, caffemodel: str | None, as_json: bool, input_shape) -> int:
    """Name the architecture in FILE (ONNX, prototxt or build folder): the netgen name, the
    `netgen build` command that makes it and the representation notes diff would give.

    Exit 0 when FILE is a netgen network (diff would call the two EQUIVALENT); exit 1 with
    the closest name and the differences diff lists against it; exit 2 on bad input.
    """
    found = run_identify(file, caffemodel, input_shape)
    if as_json:
        click.echo(json.dumps(found.to_json(), indent=2))
    else:
        click.echo("\n".join(found.lines()))
    return 0 if found.equivalent else 1
