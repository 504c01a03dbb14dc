"""`netgen validate`: the six checks of netgen.jobs.validate on a build folder, a tree of them, or
a network built on the fly from --depth and friends."""

from __future__ import annotations

import json
import sys

import click

from netgen.commands.options import spec_from, spec_options
from netgen.errors import NetgenError
from netgen.onnx.runtime import DEVICES, providers_for


@click.command()
@click.argument("path", required=False, type=click.Path())
@spec_options
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="Where ONNX Runtime runs the forward checks.")
@click.option("--batch", type=int, default=1, show_default=True,
              help="Batch size of the forward checks (3, 5, 6).")
@click.option("--all", "all_builds", is_flag=True,
              help="PATH is a folder of builds (e.g. generated): validate every one under it.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable report.")
def validate(path, device, batch, all_builds, as_json, **spec_args) -> int:
    """Check a build folder: prototxt parse, ONNX checker and shapes, ORT forward, parameter
    and multiply-add counts against the paper, Caffe->ONNX round trip, OpenCV's importer.

    Exit code 0 when every check passes (or is skipped with a reason), 1 when any fails.
    """
    from netgen.jobs import validate as logic

    # Any spec option given (not only --depth) means a network built on the fly.
    spec_given = spec_args["dataset"] != "imagenet" or any(
        value not in (None, False) for key, value in spec_args.items() if key != "dataset")
    if path is not None and spec_given:
        raise NetgenError("give a build folder PATH or a network (--depth, --groups, ...), "
                          "not both")
    if all_builds and path is None:
        raise NetgenError("--all needs the folder holding the builds: netgen validate --all DIR")
    if path is None and not spec_given:
        raise NetgenError("give a build folder PATH, --all DIR, or a network (--depth ...)")

    if all_builds:
        builds = logic.find_builds(path)
        providers_for(device)  # --device cuda without CUDA: one line, before any work
        reports = []
        with click.progressbar(builds, label="validating", file=sys.stderr,
                               item_show_func=lambda p: p.name if p else "") as bar:
            for folder in bar:
                reports.append(logic.validate_folder(folder, device, batch))
        ok = all(r.ok for r in reports)
        if as_json:
            click.echo(json.dumps({"ok": ok, "builds": [r.to_dict() for r in reports]}, indent=2))
        else:
            for report in reports:
                if not report.ok:
                    click.echo("\n".join(report.lines()))
            click.echo("\n".join(logic.summary_table(reports)))
        return 0 if ok else 1

    if path is not None:
        report = logic.validate_folder(path, device, batch)
    else:
        report = logic.validate_spec(spec_from(**spec_args), device, batch)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo("\n".join(report.lines()))
    return 0 if report.ok else 1
