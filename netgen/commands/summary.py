"""`netgen summary`: a Table-1-style table of one network."""

from __future__ import annotations

import json

import click

from netgen.arch.builder import build
from netgen.arch.spec import BASE_WIDTH, STEM_POOL_TEXT, ArchSpec
from netgen.commands.options import spec_from, spec_options
from netgen.jobs.build import summary as summarize


def _size(output_size: list[int]) -> str:
    if len(output_size) == 3:
        return "x".join(str(d) for d in output_size[1:])
    return f"{output_size[0]}-d"


def _blocks(spec: ArchSpec) -> str:
    """bottleneck blocks; pre-activation bottleneck blocks, 32 groups x 4 wide (inner 128 ...)."""
    text = f"{spec.block_kind.replace('preact-', 'pre-activation ')} blocks"
    if spec.groups != 1 or spec.width_per_group != BASE_WIDTH:
        inner = "/".join(str(w) for w in spec.inner_widths)
        text += f" ({spec.groups} groups x {spec.width_per_group} wide, inner widths {inner})"
    if spec.se_reduction:
        reduced = "/".join(str(w) for w in spec.se_widths)
        text += (f", SE units of reduction {spec.se_reduction} ({spec.se_width} widths "
                 f"{reduced})")
    if spec.deep_stem:
        text += ", ResNet-C stem (3x3 convolutions 32, 32, 64)"
    if spec.avg_down:
        text += ", ResNet-D projections (2x2 average pooling, then the 1x1 of stride 1)"
    return text


@click.command()
@spec_options
@click.option("--json", "as_json", is_flag=True, help="Print summary.json's content instead.")
def summary(as_json: bool, **spec_args) -> int:
    """Stage, output size, blocks, parameters and multiply-adds, as in Table 1."""
    spec = spec_from(**spec_args)
    info = summarize(spec, build(spec))
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return 0
    click.echo(f"{spec.name}: {spec.depth} layers, {_blocks(spec)}, "
               f"shortcut {spec.shortcut or 'none (plain)'}, input {spec.input_size}x{spec.input_size}"
               + (f", {STEM_POOL_TEXT[spec.stem_pool]}" if spec.stem_pool else ""))
    click.echo(f"{'stage':<9} {'output':>9} {'channels':>8} {'blocks':>6} {'parameters':>12} {'mult-adds':>15}")
    for stage in info["stages"]:
        click.echo(f"{stage['stage']:<9} {_size(stage['output_size']):>9} "
                   f"{stage['output_size'][0]:>8} {stage['blocks']:>6} {stage['parameters']:>12,} "
                   f"{stage['multiply_adds']:>15,}")
    click.echo(f"{'total':<9} {'':>9} {'':>8} {'':>6} {info['parameters']:>12,} "
               f"{info['multiply_adds']:>15,}  ({info['multiply_adds'] / 1e9:.2f} x 10^9)")
    return 0
