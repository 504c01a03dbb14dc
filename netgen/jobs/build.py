"""One build: every file of a network, rendered in memory first, then written atomically.

A new folder is assembled under a temporary sibling name and renamed into place, so a build
that fails or is killed leaves no folder at all; an existing folder (with --force) gets its
files staged, journaled and renamed (netgen.storage.commit), so it always holds either the old
build or the new one, complete. Leftovers of a killed build are cleaned by the next one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from netgen.analysis.network import Side
from netgen.analysis.topology import analyse, layer_stages
from netgen.arch import ir
from netgen.arch.builder import build
from netgen.arch.counting import count
from netgen.arch.spec import ArchSpec
from netgen.arch.weights import Weights, initial_weights
from netgen.caffe import caffemodel, prototxt, targets
from netgen.errors import NetgenError
from netgen.jobs.draw import graph_svg
from netgen.storage import commit

# Every file a build may write; with --force the ones a new build does not write are removed
# so that a folder never mixes two builds (stale weights beside a new deploy net, say).
BUILD_FILES = ("deploy.prototxt", "train_val.prototxt", "solver.prototxt",
               "solver_warmup.prototxt", "summary.json", "model.onnx", "model.onnx.data",
               "model.caffemodel", "net.svg")


@dataclass(frozen=True)
class BuildOptions:
    weights: bool = False
    onnx: bool = True
    seed: int = 0
    opset: int = 17
    external_data: bool | None = None
    legacy_input: bool = True
    data: prototxt.DataOptions | None = None
    se_form: str = "stock"  # prototxt.SE_FORMS
    target: str = "bvlc"  # caffe.targets.TARGETS: the runtime the Caffe files are for


def summary(spec: ArchSpec | None, graph: ir.Graph,
            blocks: dict[str, int] | None = None) -> dict:
    """What summary.json holds: exact integers, per stage and in total."""
    counts = count(graph, blocks)
    return {
        "name": graph.name,
        "spec": spec.to_dict() if spec else None,
        "input": {blob.name: list(blob.shape) for blob in graph.inputs},
        "outputs": list(graph.outputs),
        "layers": len(graph.layers),
        "layer_types": counts.layer_types,
        "parameters": counts.params,
        "multiply_adds": counts.macs,
        "stages": [
            {"stage": s.stage, "output_size": list(s.output_size), "blocks": s.blocks,
             "parameters": s.params, "multiply_adds": s.macs}
            for s in counts.stages
        ],
    }


def file_summary(graph: ir.Graph) -> dict:
    """summary() of a file's network, its stages and blocks told by its topology: an
    export's or Keras's layer names do not say which stage a layer is in, and names that do
    (MSRA's res3a, PyTorch's layer2) still do not count blocks. A network without residual
    blocks (plain) keeps the stages its names tell."""
    stages, blocks = layer_stages(analyse(Side(graph.name, "file", graph, "none")))
    if not blocks:
        return summary(None, graph)
    graph = replace(graph, layers=[replace(layer, stage=stages[layer.name])
                                   for layer in graph.layers])
    return summary(None, graph, blocks)


def check_forms(se_form: str, target: str) -> None:
    """--se-form and --target together: SENet's Axpy is a layer of its Caffe fork, which
    no deployment runtime's converter knows."""
    prototxt.check_se_form(se_form)
    targets.check_target(target)
    if se_form != "stock" and target != "bvlc":
        raise NetgenError(f"--se-form {se_form} writes SENet's own Caffe layer, which "
                          f"--target {target} cannot run; give one or the other")


def render_files(spec: ArchSpec, options: BuildOptions) -> dict[str, bytes]:
    """File name -> contents, all made before anything touches the disk. The Caffe files
    are in the forms of options.target (caffe.targets); model.onnx, summary.json and
    net.svg are of the network itself."""
    check_forms(options.se_form, options.target)
    graph = build(spec)
    caffe_graph, _ = targets.realize(graph, None, options.target)
    data = options.data or prototxt.data_options(spec)
    files: dict[str, bytes] = {
        "deploy.prototxt": prototxt.render_deploy(caffe_graph, options.legacy_input,
                                                  se_form=options.se_form).encode(),
        "train_val.prototxt": prototxt.render_train_val(caffe_graph, data,
                                                        options.se_form).encode(),
    }
    for name, solver in prototxt.solver_options(spec, data.batch_size["TRAIN"], options.seed):
        files[name] = prototxt.render_solver(solver, name).encode()
    files["summary.json"] = (json.dumps(summary(spec, graph), indent=2) + "\n").encode()
    files["net.svg"] = graph_svg(graph).encode()  # the network as Figure 3 draws it
    if options.weights:
        caffemodel.check_size(graph)  # before hours of weights Caffe could not read
    weights: Weights | None = None
    if options.weights or options.onnx:
        weights = initial_weights(graph, options.seed)
    if options.weights:
        files["model.caffemodel"] = caffemodel.caffemodel_bytes(
            *targets.realize(graph, weights, options.target))
    if options.onnx:
        from netgen.onnx import export as onnx_export
        from netgen.onnx import files as onnx_files  # only ONNX builds pay for importing onnx

        model = onnx_export.to_onnx(graph, weights, opset=options.opset)
        files.update(onnx_files.model_files(model, "model.onnx", options.external_data))
    return files


def _check_target(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise NetgenError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise NetgenError(f"output folder {out} already exists and is not empty; "
                          "use --force to overwrite its netgen files")
    parent = out.parent if not out.exists() else out
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise NetgenError(f"cannot create {out}: {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise NetgenError(f"cannot write to {probe}: permission denied")


def write_build(spec: ArchSpec, out_dir: str | os.PathLike, force: bool = False,
                weights: bool = False, seed: int = 0, **options: object) -> dict[str, bytes]:
    """Render, then write the build into out_dir. Returns what was written.

    Keyword options are the fields of BuildOptions (onnx, opset, external_data, ...).
    """
    options = BuildOptions(weights=weights, seed=seed, **options)  # type: ignore[arg-type]
    out = Path(out_dir)
    _check_target(out, force)
    files = render_files(spec, options)
    commit.write_folder(out, files, BUILD_FILES)
    return files

