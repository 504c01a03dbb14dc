"""`netgen diff A B`: structural (and with --numeric, numerical) comparison of two networks."""

from __future__ import annotations

import json

import click

from netgen.commands.options import input_shape_option
from netgen.errors import NetgenError
from netgen.jobs.diff import diff as run_diff
from netgen.jobs.diff import format_text
from netgen.jobs.diff import html as diff_html


@click.command()
@click.argument("a")
@click.argument("b")
@input_shape_option
@click.option("--numeric", is_flag=True,
              help="Also run both through ONNX Runtime on the same batch and report the "
                   "largest absolute difference of the outputs.")
@click.option("--strict", is_flag=True,
              help="Compare the files as written, layer by layer: BatchNorm folded or not, "
                   "conv biases, a trailing Softmax, Flatten/Reshape and the pooling spelling "
                   "count as differences (by default they are representation, reported as "
                   "notes).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--caffemodel-a", type=click.Path(), default=None, help="Weights of A (a prototxt).")
@click.option("--caffemodel-b", type=click.Path(), default=None, help="Weights of B (a prototxt).")
@click.option("--weights", type=click.Choice(["a", "own"]), default="a", show_default=True,
              help="--numeric: run B with A's weights matched by the alignment (a), or each "
                   "side with its own (own).")
@click.option("--batch", type=int, default=2, show_default=True, help="--numeric batch size.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the batch and of netgen's initialisation.")
@click.option("--device", default="cpu", show_default=True, help="--numeric: cpu, cuda or auto.")
@click.option("--html", "html", type=click.Path(), default=None,
              help="Also write one self-contained HTML file: both networks drawn side by "
                   "side, the differences in colour, the text report below.")
def diff(a: str, b: str, as_json: bool, html: str | None, **options) -> int:
    """Compare A and B, each a name like resnet50-B, a build folder, a prototxt (deploy or
    train_val) or an ONNX file, in any mix. --input-shape goes to either side whose data
    layer does not tell its input size.

    The graphs are aligned by topology, not by layer names, and compared as architectures:
    how a file writes BatchNorm, biases, Softmax, flattening and pooling is representation
    (see the README), unless --strict. Differences are grouped (stride placement, blocks per
    stage, groups and widths, shortcuts). Exit code 0 when they are equivalent, 1 when they
    differ, 2 on error.
    """
    # The options are passed on by name (netgen.jobs.diff.diff's keywords), so that a new
    # option is one decorator and, if it is no job's keyword, one pop here.
    if options["batch"] < 1:
        raise NetgenError(f"--batch must be at least 1, got {options['batch']}")
    if options["seed"] < 0:
        raise NetgenError(f"--seed must be >= 0, got {options['seed']}")
    if html is not None:
        diff_html.check_target(html)
    result = run_diff(a, b, **options)
    text = format_text(result) if html is not None or not as_json else ""
    if html is not None:
        diff_html.write_html(result, text, html)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        click.echo(text, nl=False)
    return 0 if result.equivalent else 1
