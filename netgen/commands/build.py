"""`netgen build`: every file of one network into generated/<name>/ (or --out)."""

from __future__ import annotations

from pathlib import Path

import click

from netgen.caffe import prototxt
from netgen.caffe.targets import TARGET_HELP, TARGETS
from netgen.commands.options import network_or_options, parse_float_list, spec_options
from netgen.errors import NetgenError
from netgen.jobs.build import write_build


@click.command()
@click.argument("network", metavar="[NAME]", required=False)
@spec_options
@click.option("--out", "-o", type=click.Path(), default=None,
              help="Output folder. [default: generated/<name>]")
@click.option("--force", is_flag=True, help="Overwrite netgen files in an existing folder.")
@click.option("--weights", is_flag=True, help="Also write model.caffemodel (He initialisation).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the initial weights.")
@click.option("--data", "data_kind", default="lmdb", show_default=True,
              help="train_val data layer: lmdb, imagedata, hdf5 or dummy.")
@click.option("--train-source", default=None, help="Training data source (LMDB folder, list file).")
@click.option("--val-source", default=None, help="Validation data source.")
@click.option("--batch-size", type=int, default=None,
              help="Training batch per iteration; the solver's iter_size makes up the paper's batch.")
@click.option("--mean-file", default=None, help="Mean .binaryproto for the data layer.")
@click.option("--mean-value", default=None, help="Per-channel means, e.g. 104,117,123.")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset (13 to 21).")
@click.option("--external-data/--no-external-data", default=None,
              help="Store ONNX initializers in model.onnx.data. [default: only over 1.8 GB]")
@click.option("--input-layer", is_flag=True,
              help="Declare the input with an Input layer instead of the published files' input_dim.")
@click.option("--se-form", type=click.Choice(["stock", "axpy"]), default="stock",
              show_default=True,
              help="How the prototxt writes an SE unit's product and sum: stock = Flatten, "
                   "two-bottom Scale (axis 0), Eltwise SUM (BVLC Caffe, OpenCV); axpy = the "
                   "Axpy layer of SENet's Caffe fork.")
@click.option("--target", "caffe_target", type=click.Choice(TARGETS), default="bvlc",
              show_default=True, help=TARGET_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def build(network, out, force, weights, seed, data_kind, train_source, val_source, batch_size,
          mean_file, mean_value, opset, external_data, input_layer, se_form, caffe_target,
          as_json, **spec_args) -> int:
    """Write deploy, train_val, solver, summary.json and model.onnx for one network: NAME
    (resnet50-B, cifar10-resnet110-A, resnext50-32x4d, ...: what `netgen list` prints) or the
    spec options (--depth 50 --shortcut B), which write the same files byte for byte."""
    spec = network_or_options(network, spec_args, files=False)
    if seed < 0:
        raise NetgenError(f"--seed must be >= 0, got {seed}")
    if not 13 <= opset <= 21:
        raise NetgenError(f"--opset must be between 13 and 21, got {opset}")
    means = parse_float_list(mean_value, "--mean-value") or ()
    data = prototxt.data_options(spec, data_kind, train_source, val_source, batch_size,
                                 mean_file, means)
    target = Path(out) if out else Path("generated") / spec.name
    files = write_build(spec, target, force=force, weights=weights, seed=seed, opset=opset,
                        external_data=external_data, legacy_input=not input_layer, data=data,
                        se_form=se_form, target=caffe_target)
    if as_json:
        click.echo(files["summary.json"].decode(), nl=False)
    else:
        listing = ", ".join(f"{name} ({len(payload):,} bytes)" for name, payload in files.items())
        click.echo(f"wrote {target}: {listing}")
    return 0
