"""The two things `diff` compares: a file or a build name, read into the graph IR as a
`Side` (netgen.analysis.network)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from netgen.analysis.network import Side
from netgen.arch.weights import initial_weights
from netgen.errors import NetgenError

if TYPE_CHECKING:
    from netgen.arch.spec import ArchSpec


def parse_spec_name(name: str) -> "ArchSpec":
    """The ArchSpec a name like resnet50-B, plain34 or cifar10-resnet20-A stands for."""
    from netgen.arch.spec import NAME_EXAMPLES, is_network_name, spec_from_name

    if not is_network_name(name):
        raise NetgenError(f"{name!r} is neither a file nor a network name; accepted: an ONNX "
                          "file (.onnx), a prototxt (.prototxt, deploy or train_val), or a name "
                          "as `netgen build` gives it: " + ", ".join(NAME_EXAMPLES))
    return spec_from_name(name)


def load_side(arg: str, caffemodel: str | os.PathLike | None = None, seed: int = 0) -> Side:
    """A file (by extension, else by content) or a spec name, with its weights."""
    from netgen.jobs.convert import PROTOTXT_SUFFIXES, is_onnx_file

    path = Path(arg)
    if path.is_file():
        if is_onnx_file(path):
            if caffemodel is not None:
                raise NetgenError(f"{arg}: a caffemodel goes with a prototxt, not an ONNX file")
            from netgen.onnx.reader import read_onnx

            graph, weights = read_onnx(path)
            return Side(arg, "onnx", graph, "its initializers", True, weights)
        from netgen.caffe.reader import read_caffe

        graph, weights = read_caffe(path, caffemodel, seed)
        source = str(caffemodel) if caffemodel else f"netgen's initialisation (seed {seed})"
        return Side(arg, "prototxt", graph, source, caffemodel is not None, weights)
    if caffemodel is not None:
        raise NetgenError(f"{arg}: a caffemodel goes with a prototxt file, not a network name")
    if os.sep in arg or path.suffix.lower() in (".onnx",) + PROTOTXT_SUFFIXES:
        raise NetgenError(f"{arg}: no such file")
    from netgen.arch.builder import build

    graph = build(parse_spec_name(arg))
    return Side(arg, "spec", graph, f"netgen's initialisation (seed {seed})",
                _make_weights=lambda: initial_weights(graph, seed))
