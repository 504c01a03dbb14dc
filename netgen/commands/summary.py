"""`netgen summary`: a Table-1-style table of one network, named or read from files."""

from __future__ import annotations

import json

import click

from netgen.arch.builder import build
from netgen.arch.spec import BASE_WIDTH, STEM_POOL_TEXT, ArchSpec
from netgen.commands.options import input_shape_option, network_or_options, spec_options
from netgen.errors import NetgenError
from netgen.jobs.build import file_summary, summary as summarize


def _size(output_size: list[int]) -> str:
    if len(output_size) == 3:
        return "x".join(str(d) for d in output_size[1:])
    return f"{output_size[0]}-d"


def _blocks(spec: ArchSpec) -> str:
    """bottleneck blocks; pre-activation bottleneck blocks, 32 groups x 4 wide (inner 128 ...)."""
    if spec.iresnet:
        return ("improved basic blocks (BN, 3x3 conv, BN, PReLU, 3x3 conv, BN; nothing after "
                "the sum), 3x3 stem with BN and PReLU, embedding head (BN, fc "
                f"{spec.output_width}, BN)")
    text = f"{spec.block_kind.replace('preact-', 'pre-activation ')} blocks"
    if spec.groups != 1 or spec.width_per_group != BASE_WIDTH:
        inner = "/".join(str(w) for w in spec.inner_widths)
        text += f" ({spec.groups} groups x {spec.width_per_group} wide, inner widths {inner})"
    if spec.se_reduction:
        reduced = "/".join(str(w) for w in spec.se_widths)
        text += (f", SE units of reduction {spec.se_reduction} ({spec.se_width} widths "
                 f"{reduced})")
    if spec.res2net_scale:
        widths = "/".join(str(w) for w in spec.res2net_widths)
        text += (f" ({spec.res2net_scale} splits of {spec.res2net_width}w: widths {widths} per "
                 "split)")
    if spec.eca:
        kernels = "/".join(str(k) for k in spec.eca_kernels)
        text += f", ECA units (kernels {kernels})"
    if spec.tiered_stem:
        text += ", timm's tiered stem (3x3 convolutions 24, 32, 64)"
    elif spec.deep_stem:
        text += ", ResNet-C stem (3x3 convolutions 32, 32, 64)"
    if spec.avg_down:
        text += ", ResNet-D projections (2x2 average pooling, then the 1x1 of stride 1)"
    return text


def _file_header(arg: str, info: dict) -> str:
    """What a file says of itself: its name, weighted layers, input; whether the stages
    could be told (its residual blocks tell them, or in a plain net MSRA-style or
    PyTorch layer names)."""
    types = info["layer_types"]
    weighted = types.get("Convolution", 0) + types.get("InnerProduct", 0)
    inputs = ", ".join("x".join(str(d) for d in shape[1:]) for shape in info["input"].values())
    stages = [row["stage"] for row in info["stages"]]
    note = "" if stages != ["unassigned"] else \
        ("; it has no residual blocks and its layer names do not tell the stages (MSRA's "
         "res2a..., PyTorch's layer1...)")
    return (f"{arg} ({info['name']}): {weighted} weighted layers (convolutions and fully "
            f"connected), {info['layers']} layers, input {inputs}{note}")


@click.command()
@click.argument("network", metavar="[NETWORK]", required=False)
@spec_options
@input_shape_option
@click.option("--json", "as_json", is_flag=True, help="Print summary.json's content instead.")
def summary(network: str | None, as_json: bool, input_shape, **spec_args) -> int:
    """Stage, output size, blocks, parameters and multiply-adds, as in Table 1.

    NETWORK is a name (resnet50-B, ...), a build folder, a prototxt (deploy or train_val) or
    an ONNX file; without it, the network of the spec options (--depth 152 ...). A file's
    figures are counted from its IR, the stages told by its layer names.
    """
    spec = network_or_options(network, spec_args)
    if spec is None:
        from netgen.jobs.network import load_network

        info = file_summary(load_network(network, input_shape=input_shape).graph)
        if as_json:
            click.echo(json.dumps(info, indent=2))
            return 0
        click.echo(_file_header(network, info))
    else:
        if input_shape is not None:
            raise NetgenError("--input-shape is for a prototxt whose data layer does not tell "
                              "the input size; a name's size is --input-size (or -inputN)")
        info = summarize(spec, build(spec))
        if as_json:
            click.echo(json.dumps(info, indent=2))
            return 0
        click.echo(f"{spec.name}: {spec.depth} layers, {_blocks(spec)}, "
                   f"shortcut {spec.shortcut or 'none (plain)'}, input {spec.input_size}x{spec.input_size}"
                   + (f", {STEM_POOL_TEXT[spec.stem_pool]}" if spec.stem_pool else "")
                   + (", conv1 3x3 stride 1 and no pool1 before Table 1's stages"
                      if spec.imagenet_stages else ""))
    _table(info)
    return 0


def _table(info: dict) -> None:
    w = max([9] + [len(stage["stage"]) for stage in info["stages"]])
    click.echo(f"{'stage':<{w}} {'output':>9} {'channels':>8} {'blocks':>6} {'parameters':>12} "
               f"{'mult-adds':>15}")
    for stage in info["stages"]:
        click.echo(f"{stage['stage']:<{w}} {_size(stage['output_size']):>9} "
                   f"{stage['output_size'][0]:>8} {stage['blocks']:>6} {stage['parameters']:>12,} "
                   f"{stage['multiply_adds']:>15,}")
    click.echo(f"{'total':<{w}} {'':>9} {'':>8} {'':>6} {info['parameters']:>12,} "
               f"{info['multiply_adds']:>15,}  ({info['multiply_adds'] / 1e9:.2f} x 10^9)")
