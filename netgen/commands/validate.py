"""`netgen validate`: the six checks of netgen.jobs.validate on a build folder, a tree of them, a
single prototxt or ONNX file, or a network built on the fly from its name or --depth and
friends."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from netgen.commands.options import (input_shape_option, network_or_options, spec_given,
                                     spec_options)
from netgen.errors import NetgenError
from netgen.onnx.runtime import DEVICES, providers_for


@click.command()
@click.argument("path", metavar="[NETWORK]", required=False)
@spec_options
@input_shape_option
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="Where ONNX Runtime runs the forward checks.")
@click.option("--batch", type=int, default=1, show_default=True,
              help="Batch size of the forward checks (3, 5, 6).")
@click.option("--all", "all_builds", is_flag=True,
              help="NETWORK is a folder of builds (e.g. generated): validate every one under it.")
@click.option("--target", "targets", multiple=True, type=click.Choice(["mnn", "openvino"]),
              help="Also check in a runtime people deploy to (repeatable): mnn = MNN's Caffe "
                   "converter and CPU runtime on the Caffe files (a name or an ONNX file is "
                   "then made with build/convert --target mnn); openvino = OpenVINO's CPU "
                   "device on model.onnx. Each within 1e-4 of ONNX Runtime; skipped, with the "
                   "extra to install, where the runtime is missing.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable report.")
def validate(path, device, batch, all_builds, targets, as_json, input_shape,
             **spec_args) -> int:
    """Check a network: prototxt parse, ONNX checker and shapes, ORT forward, parameter
    and multiply-add counts against the paper, Caffe->ONNX round trip, OpenCV's importer;
    with --target, MNN and OpenVINO too.

    NETWORK is a build folder; a name (resnet50-B, ...: built with seed-0 weights in a
    temporary folder, as the spec options are); or a single prototxt or ONNX file, checked
    as a build made from it in a temporary folder (a deploy as it is, a train_val beside
    the deploy netgen renders from it, seed-0 weights; an ONNX file as model.onnx beside the
    Caffe files rendered from it): the paper's figures then do not apply.

    Exit code 0 when every check passes (or is skipped with a reason), 1 when any fails.
    """
    from netgen.jobs import validate as logic

    if all_builds and path is None:
        raise NetgenError("--all needs the folder holding the builds: netgen validate --all DIR")
    if path is None and not spec_given(spec_args):
        raise NetgenError("give a build folder, a name, a prototxt or ONNX file, --all DIR, or "
                          "a network (--depth ...)")
    if all_builds and spec_given(spec_args):
        raise NetgenError("--all validates the builds under a folder; drop the network options")

    if all_builds:
        builds = logic.find_builds(path)
        providers_for(device)  # --device cuda without CUDA: one line, before any work
        reports = []
        with click.progressbar(builds, label="validating", file=sys.stderr,
                               item_show_func=lambda p: p.name if p else "") as bar:
            for folder in bar:
                reports.append(logic.validate_folder(folder, device, batch, targets=targets))
        ok = all(r.ok for r in reports)
        if as_json:
            click.echo(json.dumps({"ok": ok, "builds": [r.to_dict() for r in reports]}, indent=2))
        else:
            for report in reports:
                if not report.ok:
                    click.echo("\n".join(report.lines()))
            click.echo("\n".join(logic.summary_table(reports)))
        return 0 if ok else 1

    spec = network_or_options(path, spec_args)
    if spec is not None:
        if input_shape is not None:
            raise NetgenError("--input-shape is for a prototxt whose data layer does not tell "
                              "the input size; a name's size is --input-size (or -inputN)")
        report = logic.validate_spec(spec, device, batch, targets)
    elif Path(path).is_dir():
        report = logic.validate_folder(path, device, batch, targets=targets)
    else:
        report = logic.validate_file(path, device, batch, input_shape, targets)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo("\n".join(report.lines()))
    return 0 if report.ok else 1
