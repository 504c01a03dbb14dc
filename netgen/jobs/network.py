"""One way to name a network on the command line, for every command that takes one.

An argument is, in this order: an existing folder (a build: its deploy.prototxt, and its
model.caffemodel where there is one), an existing file (ONNX by extension or content, else a
prototxt, deploy or train_val), or a name of netgen's naming scheme (resnet50-B,
cifar10-resnet20-A, resnext50-32x4d, ...: what `netgen list` prints and spec_from_name reads).
A file or folder wins over a name, so a folder called resnet50-B is read as the folder.

The input shape of a train_val whose data layer does not tell it (an LMDB Data layer without
crop_size) can be given; it is used only there: a file that declares its size keeps it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from netgen.errors import InputShapeNeeded, NetgenError
from netgen.analysis.network import Side

if TYPE_CHECKING:
    from netgen.arch.spec import ArchSpec
    from netgen.caffe.reader import Reading

KINDS = ("name", "folder", "prototxt", "onnx")
FORMS = ("a network name (resnet50-B, cifar10-resnet20-A, resnet50-B-stride3x3, "
         "resnext50-32x4d, ...: `netgen list` prints them), a build folder (holding "
         "deploy.prototxt), a prototxt (deploy or train_val) or an ONNX file")
DEPLOY = "deploy.prototxt"
CAFFEMODEL = "model.caffemodel"


@dataclass(frozen=True)
class NetworkArg:
    """What a network argument names, before anything is read.

    `path` is the file that is read (a folder's deploy.prototxt), `caffemodel` a folder's
    weights where it has them, `spec` the architecture of a name.
    """

    text: str
    kind: str  # one of KINDS
    path: Path | None = None
    caffemodel: Path | None = None
    spec: ArchSpec | None = None


PROTOTXT_SUFFIXES = (".prototxt", ".pt", ".txt")


def is_onnx_file(path: str | os.PathLike) -> bool:
    """By extension, else by content (a prototxt is text, an ONNX model is binary)."""
    p = Path(path)
    if p.suffix.lower() == ".onnx":
        return True
    if p.suffix.lower() in PROTOTXT_SUFFIXES:
        return False
    try:
        with open(p, "rb") as handle:
            head = handle.read(512)
    except OSError:
        return False
    return b"\0" in head


def parse_spec_name(name: str) -> ArchSpec:
    """The ArchSpec a name like resnet50-B, plain34 or cifar10-resnet20-A stands for."""
    from netgen.arch.spec import is_network_name, spec_from_name

    if not is_network_name(name):
        raise NetgenError(f"{name!r} is neither a file nor a network name; accepted: {FORMS}")
    return spec_from_name(name)


def resolve(arg: str | os.PathLike) -> NetworkArg:
    """Which of the four forms `arg` is; NetgenError naming them where it is none."""
    text = os.fspath(arg)
    path = Path(text)
    try:
        is_dir, is_file = path.is_dir(), path.is_file()
    except (OSError, ValueError):  # a NUL byte, a name too long for the system
        is_dir = is_file = False
    if is_dir:
        deploy = path / DEPLOY
        if not deploy.is_file():
            raise NetgenError(f"{text}: a folder without {DEPLOY}; accepted: {FORMS}")
        weights = path / CAFFEMODEL
        return NetworkArg(text, "folder", deploy, weights if weights.is_file() else None)
    if is_file:
        return NetworkArg(text, "onnx" if is_onnx_file(path) else "prototxt", path)
    if os.sep in text or (os.altsep and os.altsep in text) or \
            path.suffix.lower() in (".onnx", ".caffemodel") + PROTOTXT_SUFFIXES:
        raise NetgenError(f"{text}: no such file or folder; accepted: {FORMS}")
    return NetworkArg(text, "name", spec=parse_spec_name(text))


def read_prototxt(path: str | os.PathLike, phase: str = "TEST",
                  input_shape: tuple[int, ...] | None = None) -> Reading:
    """A prototxt read as the file declares it; `input_shape` only where it does not."""
    from netgen.caffe.reader import read_net

    try:
        return read_net(path, phase)
    except InputShapeNeeded as exc:
        if input_shape is None:  # which file it is, where a command reads two
            raise InputShapeNeeded(f"{os.fspath(path)}: {exc.reason}", exc.alternative) from None
    return read_net(path, phase, input_shape)


def load_network(arg: str | os.PathLike, *, caffemodel: str | os.PathLike | None = None,
                 seed: int = 0, input_shape: tuple[int, ...] | None = None,
                 phase: str = "TEST") -> Side:
    """The IR of any of the four forms, with its weights: a file's own (an ONNX file's
    initializers, the caffemodel given or a build folder's) as data, else netgen's seeded
    initialisation, drawn only when asked for."""
    from netgen.arch.weights import initial_weights

    ref = resolve(arg)
    if caffemodel is not None and ref.kind in ("name", "onnx"):
        what = "a network name" if ref.kind == "name" else "an ONNX file"
        raise NetgenError(f"{ref.text}: a caffemodel goes with a prototxt file, not {what}")
    if ref.kind == "name":
        from netgen.arch.builder import build

        graph = build(ref.spec)
        return Side(ref.text, "spec", graph, f"netgen's initialisation (seed {seed})",
                    _make_weights=lambda: initial_weights(graph, seed))
    if ref.kind == "onnx":
        from netgen.onnx.reader import read_onnx_with_layout

        graph, weights, layout = read_onnx_with_layout(ref.path)
        return Side(ref.text, "onnx", graph, "its initializers", True, input_layout=layout,
                    _weights=weights)
    weights_path = caffemodel if caffemodel is not None else ref.caffemodel
    if weights_path is not None and not Path(weights_path).is_file():
        raise NetgenError(f"{os.fspath(weights_path)}: no such file")
    reading = read_prototxt(ref.path, phase, input_shape)
    if weights_path is None:
        graph = reading.graph
        return Side(ref.text, "prototxt", graph, f"netgen's initialisation (seed {seed})",
                    _make_weights=lambda: initial_weights(graph, seed))
    from netgen.caffe.reader import weights_for

    graph, weights = weights_for(reading.graph, weights_path, constants=reading.constants)
    return Side(ref.text, "prototxt", graph, os.fspath(weights_path), True, _weights=weights)
