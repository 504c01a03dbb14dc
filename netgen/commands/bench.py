"""`netgen bench`: images/s and ms per batch of a build's model.onnx in ONNX Runtime."""

from __future__ import annotations

import json

import click

from netgen.commands.options import input_shape_option, parse_int_list
from netgen.onnx.runtime import DEVICES


@click.command()
@click.argument("path", metavar="NETWORK", type=click.Path())
@input_shape_option
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="Where ONNX Runtime runs.")
@click.option("--batch", "batches", default="1,8,32", show_default=True,
              help="Comma-separated batch sizes.")
@click.option("--repeat", type=int, default=10, show_default=True,
              help="Timed runs per batch size (after 2 warm-up runs); the median is reported.")
@click.option("--threads", type=int, default=None,
              help="ORT intra-op threads. [default: the usable cores]")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench(path, device, batches, repeat, threads, as_json, input_shape) -> int:
    """Time a build folder's model.onnx or an ONNX file (a prototxt or a name: emitted to
    ONNX with seed-0 weights first): ms per batch and images/s for each batch size, plus the
    time `netgen build` takes to write the network's files."""
    from netgen.jobs.benchmarks import bench_lines, bench_path

    sizes = parse_int_list(batches, "--batch")
    result = bench_path(path, device, sizes, repeat, threads=threads, input_shape=input_shape)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo("\n".join(bench_lines(result)))
    return 0
