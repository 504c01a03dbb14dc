"""`netgen convert`: Caffe prototxt (+ caffemodel) -> ONNX, and ONNX -> deploy.prototxt +
model.caffemodel, both through the graph IR.

Every output is rendered in memory first and then written atomically, so a failed
conversion leaves no file behind and an existing file is either the old or the new one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from netgen.errors import NetgenError
from netgen.jobs.network import is_onnx_file
from netgen.storage.atomic import write_atomic


@dataclass
class ConvertReport:
    direction: str  # "caffe->onnx" or "onnx->caffe"
    source: str
    written: list[str]
    graph_name: str
    layers: int
    input_note: str
    weights: str
    dropped: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"direction": self.direction, "source": self.source, "written": self.written,
                "name": self.graph_name, "layers": self.layers, "input": self.input_note,
                "weights": self.weights, "dropped": list(self.dropped), **self.extra}

    def lines(self) -> list[str]:
        out = [f"read {self.source}: {self.layers} layers; {self.input_note}",
               f"weights: {self.weights}"]
        if self.extra.get("input_layout") == "NHWC":
            out.append("the file's input is channels-last (NHWC); the Caffe net takes the same "
                       "image channels-first (NCHW): transpose it (0, 3, 1, 2) before the net")
        if self.dropped:
            shown = ", ".join(self.dropped[:8]) + (" ..." if len(self.dropped) > 8 else "")
            out.append(f"left out for this phase: {shown}")
        if self.extra.get("target") not in (None, "bvlc"):
            out.append(f"Caffe files in the {self.extra['target']} forms (netgen validate "
                       f"--target {self.extra['target']} checks them there)")
        out.append("wrote " + ", ".join(self.written))
        return out


def default_caffemodel_path(output: Path) -> Path:
    """model.caffemodel beside deploy.prototxt (netgen's build layout), else <stem>.caffemodel."""
    stem = "model" if output.stem == "deploy" else output.stem
    return output.with_name(stem + ".caffemodel")


def _check_target(path: Path, force: bool) -> None:
    """Refuse before anything is computed; a missing folder is made only at write time."""
    if path.is_dir():
        raise NetgenError(f"{path} is a folder; give the output file's path")
    if path.exists() and not force:
        raise NetgenError(f"{path} already exists; use --force to overwrite it")
    for folder in (path.parent, *path.parent.parents):
        if folder.exists():
            if not folder.is_dir():
                raise NetgenError(f"{folder} is a file, not a folder; cannot write {path}")
            break


def make_folder(path: Path) -> None:
    """The output's folder, made as `build --out` makes its own (after every check passed)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NetgenError(f"{path.parent}: cannot create the folder: {exc.strerror or exc}") from None


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise NetgenError(f"--input-shape must be comma-separated integers like 1,3,224,224, "
                          f"got {text!r}") from None
    if len(shape) != 4 or min(shape) <= 0:
        raise NetgenError(f"--input-shape needs four positive values N,C,H,W, got {text!r}")
    return shape


def caffe_to_onnx(prototxt: str | os.PathLike, caffemodel: str | os.PathLike | None,
                  output: str | os.PathLike, opset: int = 17, force: bool = False, seed: int = 0,
                  phase: str = "TEST", input_shape: tuple[int, ...] | None = None,
                  external_data: bool | None = None) -> ConvertReport:
    from netgen.caffe.reader import weights_for
    from netgen.jobs.network import read_prototxt
    from netgen.onnx.export import check_opset, save_onnx, to_onnx

    check_opset(opset)
    target = Path(output)
    if target.suffix.lower() in (".prototxt", ".caffemodel"):
        raise NetgenError(f"{target}: converting a prototxt gives an ONNX model; name the "
                          "output .onnx")
    _check_target(target, force)
    reading = read_prototxt(prototxt, phase, input_shape)
    graph, weights = weights_for(reading.graph, caffemodel, seed, reading.constants)
    model = to_onnx(graph, weights, opset)
    make_folder(target)
    save_onnx(model, target, external_data)
    written = [str(target)]
    if (target.parent / (target.name + ".data")).is_file():
        written.append(str(target) + ".data")
    source = f"{caffemodel}" if caffemodel else f"netgen's deterministic initialisation (seed {seed})"
    return ConvertReport("caffe->onnx", reading.source, written, graph.name, len(graph.layers),
                         reading.input_source, source, reading.dropped,
                         {"opset": opset, "nodes": len(model.graph.node)})


def _caffe_outputs(output: str | os.PathLike, caffemodel_out: str | os.PathLike | None,
                   force: bool, source_kind: str) -> tuple[Path, Path]:
    """deploy.prototxt and caffemodel paths of a conversion to Caffe, checked."""
    target = Path(output)
    if target.suffix.lower() in (".onnx", ".caffemodel"):
        raise NetgenError(f"{target}: converting {source_kind} to Caffe gives a deploy prototxt "
                          "(and a .caffemodel beside it); name the output .prototxt")
    weights_path = Path(caffemodel_out) if caffemodel_out else default_caffemodel_path(target)
    if weights_path.resolve() == target.resolve():
        raise NetgenError(f"{target}: the prototxt and the caffemodel need different names")
    _check_target(target, force)
    _check_target(weights_path, force)
    return target, weights_path


def _write_caffe(graph, weights, target: Path, weights_path: Path, legacy_input: bool,
                 floor_pool: str, se_form: str, caffe_target: str) -> None:
    """The deploy and caffemodel of `graph` in `caffe_target`'s forms, rendered in memory,
    then written (the caffemodel first: a deploy never stands beside missing weights)."""
    from netgen.caffe.caffemodel import caffemodel_bytes
    from netgen.caffe.prototxt import render_deploy
    from netgen.caffe.targets import realize

    graph, weights = realize(graph, weights, caffe_target)
    text = render_deploy(graph, legacy_input=legacy_input, floor_pool=floor_pool,
                         se_form=se_form)
    payload = caffemodel_bytes(graph, weights)
    make_folder(weights_path)
    make_folder(target)
    write_atomic(weights_path, payload)
    write_atomic(target, text)


def caffe_to_caffe(prototxt: str | os.PathLike, caffemodel: str | os.PathLike | None,
                   output: str | os.PathLike, caffe_target: str, force: bool = False,
                   seed: int = 0, phase: str = "TEST", input_shape: tuple[int, ...] | None = None,
                   caffemodel_out: str | os.PathLike | None = None,
                   legacy_input: bool = True) -> ConvertReport:
    """A Caffe net and its weights rewritten in the forms of another runtime (--target):
    a stock SE-ResNet's files made into files MNN converts, say."""
    from netgen.caffe.reader import weights_for
    from netgen.jobs.network import read_prototxt

    target, weights_path = _caffe_outputs(output, caffemodel_out, force, "a prototxt")
    reading = read_prototxt(prototxt, phase, input_shape)
    graph, weights = weights_for(reading.graph, caffemodel, seed, reading.constants)
    _write_caffe(graph, weights, target, weights_path, legacy_input, "crop", "stock",
                 caffe_target)
    source = f"{caffemodel}" if caffemodel else f"netgen's deterministic initialisation (seed {seed})"
    return ConvertReport("caffe->caffe", reading.source, [str(target), str(weights_path)],
                         graph.name, len(graph.layers), reading.input_source, source,
                         reading.dropped, {"target": caffe_target})


def onnx_to_caffe(onnx_path: str | os.PathLike, output: str | os.PathLike, force: bool = False,
                  caffemodel_out: str | os.PathLike | None = None,
                  legacy_input: bool = True, floor_pool: str = "crop",
                  se_form: str = "stock", caffe_target: str = "bvlc") -> ConvertReport:
    from netgen.onnx.reader import read_onnx_with_layout

    target, weights_path = _caffe_outputs(output, caffemodel_out, force, "an ONNX model")
    graph, weights, layout = read_onnx_with_layout(onnx_path)
    _write_caffe(graph, weights, target, weights_path, legacy_input, floor_pool, se_form,
                 caffe_target)
    inputs = ", ".join(f"{b.name!r} {list(b.shape)}" for b in graph.inputs)
    return ConvertReport("onnx->caffe", str(onnx_path), [str(target), str(weights_path)],
                         graph.name, len(graph.layers), f"input {inputs} from the graph's inputs",
                         "the ONNX initializers",
                         extra={"input_layout": layout, "target": caffe_target})


def convert(input_path: str | os.PathLike, caffemodel: str | os.PathLike | None,
            output: str | os.PathLike, opset: int = 17, force: bool = False, seed: int = 0,
            phase: str = "TEST", input_shape: tuple[int, ...] | None = None,
            caffemodel_out: str | os.PathLike | None = None, legacy_input: bool = True,
            external_data: bool | None = None, floor_pool: str = "crop",
            se_form: str = "stock", caffe_target: str | None = None) -> ConvertReport:
    """Convert by the input's kind: a prototxt (+ caffemodel) to ONNX, or ONNX to Caffe; a
    build folder is its deploy.prototxt with its model.caffemodel (if it has one). With a
    caffe_target (caffe.targets.TARGETS) a prototxt input may go to Caffe again, in that
    target's forms (OUTPUT a .prototxt)."""
    from netgen.caffe.prototxt import check_floor_pool_form
    from netgen.jobs.build import check_forms

    check_floor_pool_form(floor_pool)
    check_forms(se_form, caffe_target or "bvlc")
    source = Path(input_path)
    if source.is_dir():  # a build folder: its deploy.prototxt and model.caffemodel
        from netgen.jobs.network import resolve

        ref = resolve(source)
        source, caffemodel = ref.path, caffemodel if caffemodel is not None else ref.caffemodel
    if not source.is_file():
        raise NetgenError(f"{source}: no such file")
    if is_onnx_file(source):
        if caffemodel is not None:
            raise NetgenError(f"{caffemodel}: a caffemodel goes with a prototxt input; an ONNX "
                              "input carries its own weights")
        if input_shape is not None:
            raise NetgenError("--input-shape applies to prototxt inputs only")
        return onnx_to_caffe(source, output, force, caffemodel_out, legacy_input, floor_pool,
                             se_form, caffe_target or "bvlc")
    if caffemodel is not None and not Path(caffemodel).is_file():
        raise NetgenError(f"{caffemodel}: no such file")
    if Path(output).suffix.lower() == ".prototxt" and caffe_target is not None:
        if se_form != "stock":
            raise NetgenError("--se-form applies to ONNX inputs only")
        return caffe_to_caffe(source, caffemodel, output, caffe_target, force, seed, phase,
                              input_shape, caffemodel_out, legacy_input)
    if caffe_target is not None:
        raise NetgenError("--target is how Caffe files are written: it applies to an ONNX input, "
                          "or to a prototxt input converted to Caffe again (OUTPUT a .prototxt)")
    if caffemodel_out is not None:
        raise NetgenError("--caffemodel-out applies to ONNX inputs only")
    if se_form != "stock":
        raise NetgenError("--se-form applies to ONNX inputs only (how their SE units are "
                          "written in Caffe); a prototxt input is read as it is")
    return caffe_to_onnx(source, caffemodel, output, opset, force, seed, phase, input_shape,
                         external_data)


def convert_like(input_path: str | os.PathLike, caffemodel: str | os.PathLike | None, name: str,
                 output: str | os.PathLike, force: bool = False, opset: int = 17,
                 external_data: bool | None = None, legacy_input: bool = True,
                 input_shape: tuple[int, ...] | None = None,
                 caffe_target: str = "bvlc") -> ConvertReport:
    """The file's weights on the network `name` stands for, into folder OUTPUT: its
    deploy.prototxt (for a netgen name byte for byte as `build`, or `build --input-layer`
    without legacy_input; for a build folder, prototxt or ONNX file rendered by netgen from
    that file's IR), model.caffemodel and model.onnx with those weights. INPUT is a file with
    weights (an ONNX file, a prototxt and its caffemodel) or a build folder with its
    model.caffemodel; `input_shape` goes to a train_val (either) whose data layer does not
    tell its size. The Caffe files are in caffe_target's forms (caffe.targets), as `build
    --target` writes them."""
    from netgen.caffe import caffemodel as caffemodel_io
    from netgen.caffe import prototxt
    from netgen.caffe.targets import check_target, realize
    from netgen.jobs.convert_like import check_folder, like, write_folder
    from netgen.jobs.network import load_network, resolve
    from netgen.onnx import export as onnx_export
    from netgen.onnx import files as onnx_files

    onnx_export.check_opset(opset)
    check_target(caffe_target)
    source = resolve(input_path)
    if source.kind == "name":
        raise NetgenError(f"{input_path}: no such file; --like maps the weights of a file (an "
                          "ONNX file, a prototxt with its caffemodel) or of a build folder")
    out = Path(output)
    if out.suffix.lower() in (".prototxt", ".onnx", ".caffemodel"):
        raise NetgenError(f"{out}: with --like the output is a folder (it gets deploy.prototxt, "
                          "model.caffemodel and model.onnx)")
    check_folder(out, force)
    ref = resolve(name)
    if ref.kind == "name":
        from netgen.arch.builder import build

        label, target = ref.spec.name, build(ref.spec)
    else:
        label, target = ref.text, load_network(name, input_shape=input_shape).graph
    if source.kind == "onnx" and caffemodel is not None:
        raise NetgenError(f"{caffemodel}: a caffemodel goes with a prototxt input; an ONNX "
                          "input carries its own weights")
    if source.kind == "prototxt" and caffemodel is None:
        raise NetgenError("--like maps a prototxt's weights: give its caffemodel too")
    if source.kind == "folder" and caffemodel is None and source.caffemodel is None:
        raise NetgenError(f"{input_path}: a build folder without model.caffemodel; --like maps "
                          "a network's weights: give the caffemodel too")
    side = load_network(input_path, caffemodel=caffemodel, input_shape=input_shape)
    graph, weights = side.graph, side.weights
    origin = "the ONNX initializers" if source.kind == "onnx" else side.weights_source
    mapped, ways = like(graph, weights, target, label)
    caffe_graph, caffe_weights = realize(target, mapped, caffe_target)
    files = {"deploy.prototxt": prototxt.render_deploy(caffe_graph, legacy_input).encode()}
    caffemodel_io.check_size(caffe_graph)
    files["model.caffemodel"] = caffemodel_io.caffemodel_bytes(caffe_graph, caffe_weights)
    model = onnx_export.to_onnx(target, mapped, opset=opset)
    files.update(onnx_files.model_files(model, "model.onnx", external_data))
    write_folder(out, files, force)
    inputs = ", ".join(f"{b.name!r} {list(b.shape)}" for b in graph.inputs)
    words = {"unfolded": "with the file's folded BatchNorm unfolded (identity statistics, "
                         "the scale and shift in Scale)",
             "kept": "with the file's BatchNorm statistics",
             "folded": "with the BatchNorm folded into them", "plain": "as they are"}
    how = "; ".join(f"{n} convolutions {words[w]}" for w, n in sorted(ways.items()))
    return ConvertReport(
        "like", source.text, [str(out / f) for f in files], label, len(graph.layers),
        f"input {inputs}", f"{origin}, on {label}'s {len(target.layers)} layers: {how}",
        extra={"like": label, "target_layers": len(target.layers), "convolutions": ways,
               "input_layout": side.input_layout, "target": caffe_target})
