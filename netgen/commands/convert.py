"""`netgen convert`: prototxt (+ caffemodel) -> ONNX, or ONNX -> deploy.prototxt + caffemodel."""

from __future__ import annotations

import json

import click

from netgen.caffe.targets import TARGET_HELP, TARGETS
from netgen.commands.options import input_shape_option
from netgen.errors import NetgenError
from netgen.jobs.convert import convert as run_convert
from netgen.jobs.convert import convert_like


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.argument("caffemodel", required=False, type=click.Path())
@click.option("--output", "-o", required=True, type=click.Path(),
              help="model.onnx for a prototxt input; deploy.prototxt for an ONNX input.")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset (13 to 21).")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of netgen's initialisation when no caffemodel is given.")
@click.option("--phase", type=click.Choice(["TRAIN", "TEST"], case_sensitive=False),
              default="TEST", show_default=True, help="Phase whose layers a train_val keeps.")
@input_shape_option
@click.option("--caffemodel-out", type=click.Path(), default=None,
              help="Where an ONNX input's weights go. [default: model.caffemodel beside "
                   "deploy.prototxt, else OUTPUT's name with .caffemodel]")
@click.option("--input-layer", is_flag=True,
              help="Declare the input with an Input layer instead of input/input_dim.")
@click.option("--external-data/--no-external-data", default=None,
              help="Store ONNX initializers in OUTPUT.data. [default: only over 1.8 GB]")
@click.option("--floor-pooling", type=click.Choice(["crop", "round-mode"]), default="crop",
              show_default=True,
              help="How an ONNX input's floor-rounded pooling (PyTorch's, ceil_mode=0) is "
                   "written: crop = Caffe's rounding-up Pooling, then a Crop to the floor size "
                   "(runs in BVLC Caffe and OpenCV); round-mode = one Pooling with "
                   "round_mode: FLOOR (BVLC Caffe master only; OpenCV refuses it).")
@click.option("--se-form", type=click.Choice(["stock", "axpy"]), default="stock",
              show_default=True,
              help="How an ONNX input's squeeze-and-excitation product and sum are written: "
                   "stock = Flatten, two-bottom Scale (axis 0) and Eltwise SUM (BVLC Caffe, "
                   "OpenCV); axpy = the single Axpy layer of SENet's Caffe fork.")
@click.option("--like", "like_name", metavar="NETWORK", default=None,
              help="Map INPUT's weights onto NETWORK: a name (resnet18-B, "
                   "resnet50-B-stride3x3-noconv1bias, ...: the network `netgen build` writes), "
                   "a build folder, a prototxt or an ONNX file (its network as netgen renders "
                   "it). OUTPUT is a folder that gets NETWORK's deploy.prototxt, "
                   "model.caffemodel and model.onnx. Exit 2 naming the first difference if "
                   "INPUT is not NETWORK's architecture.")
@click.option("--target", "caffe_target", type=click.Choice(TARGETS), default=None,
              help=TARGET_HELP + " Applies where Caffe files are written: an ONNX input, --like, "
                   "or a prototxt input converted to Caffe again (OUTPUT a .prototxt). "
                   "[default: bvlc]")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
def convert(input_path, caffemodel, output, opset, force, seed, phase, input_shape,
            caffemodel_out, input_layer, external_data, floor_pooling, se_form, like_name,
            caffe_target, as_json) -> int:
    """Convert a Caffe net to ONNX or an ONNX graph to Caffe, by the kind of INPUT.

    A prototxt (deploy or train_val), with its CAFFEMODEL or netgen's deterministic
    initialisation, becomes an ONNX model (a build folder: its deploy.prototxt and
    model.caffemodel); an ONNX model whose ops all have a Caffe
    equivalent becomes a deploy prototxt and a caffemodel beside it. With --target and an
    OUTPUT.prototxt, a prototxt input becomes Caffe files in that runtime's forms.
    """
    if seed < 0:
        raise NetgenError(f"--seed must be >= 0, got {seed}")
    if like_name is not None:
        given = [flag for flag, used in (("--caffemodel-out", caffemodel_out is not None),
                                         ("--floor-pooling", floor_pooling != "crop"),
                                         ("--se-form", se_form != "stock"))
                 if used]
        if given:
            raise NetgenError(f"{given[0]} does not apply with --like (the files are NETWORK's: "
                              "deploy.prototxt, model.caffemodel, model.onnx in OUTPUT)")
        report = convert_like(input_path, caffemodel, like_name, output, force=force,
                              opset=opset, external_data=external_data,
                              legacy_input=not input_layer, input_shape=input_shape,
                              caffe_target=caffe_target or "bvlc")
        _print(report, as_json)
        return 0
    report = run_convert(input_path, caffemodel, output, opset=opset, force=force, seed=seed,
                         phase=phase.upper(), input_shape=input_shape,
                         caffemodel_out=caffemodel_out, legacy_input=not input_layer,
                         external_data=external_data, floor_pool=floor_pooling,
                         se_form=se_form, caffe_target=caffe_target)
    _print(report, as_json)
    return 0


def _print(report, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for line in report.lines():
            click.echo(line)
