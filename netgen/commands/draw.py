"""`netgen draw`: pictures in the paper's Figure 3 (networks) and Figure 5 (blocks) vocabulary."""

from __future__ import annotations

import click

from netgen.commands.options import input_shape_option
from netgen.errors import NetgenError
from netgen.jobs import draw as drawing


@click.command()
@click.argument("nets", nargs=-1)
@input_shape_option
@click.option("--out", "-o", type=click.Path(), required=True,
              help="The picture: FILE.svg, or FILE.png with the png extra "
                   f"({drawing.PNG_HINT}).")
@click.option("--blocks/--full", default=None,
              help="Draw each run of identical blocks once with its repeat count (x 22), or "
                   "every layer. [default: --blocks above 50 weighted layers]")
@click.option("--block", "block_kind", type=click.Choice(["basic", "bottleneck"]), default=None,
              help="Draw Figure 5 instead: one block with its widths, and the block that "
                   "downsamples.")
@click.option("--stride-in", type=click.Choice(["1x1", "3x3"]), default="1x1", show_default=True,
              help="With --block bottleneck: the /2 on the first 1x1 (the paper's Caffe "
                   "models) or on the 3x3 (torchvision).")
def draw(nets, out, blocks, block_kind, stride_in, input_shape) -> int:
    """Draw NETS side by side: names like resnet34-B, build folders, prototxt (deploy or
    train_val) or ONNX files.

    Boxes are labelled as in the paper (7x7 conv, 64, /2; pool, /2; fc 1000); identity
    shortcuts are solid arcs, projections dotted, option A's zero-padding marked 0-pad.
    """
    target = drawing.check_output(out)  # before any work: a bad -o costs nothing
    if block_kind is not None:
        if nets:
            raise NetgenError("--block draws one block, not networks: drop the network "
                              "arguments, or drop --block")
        if input_shape is not None:
            raise NetgenError("--input-shape goes with networks read from files, not --block")
        svg = drawing.block_svg(block_kind, stride_in)
    else:
        if stride_in != "1x1":
            raise NetgenError("--stride-in goes with --block bottleneck; a network's stride "
                              "placement is in its name (resnet50-B-stride3x3)")
        svg = drawing.draw(list(nets), blocks, input_shape)
    size = drawing.write_picture(svg, target)
    click.echo(f"wrote {target} ({size:,} bytes)")
    return 0
