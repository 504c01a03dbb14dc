"""The two things `diff` compares: a file or a build name, read into the graph IR.

A name's weights (netgen's seeded initialisation) are drawn only when asked for: a
structural diff of ResNet-152 should not spend a second on random numbers it never reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from netgen.arch import ir
from netgen.arch.weights import Weights, initial_weights
from netgen.errors import NetgenError

if TYPE_CHECKING:
    from netgen.arch.spec import ArchSpec


@dataclass
class Side:
    """One network to compare: its IR, its weights, and where both came from.

    `weights_are_data` is true when the weights were read from a file (an ONNX file's
    initializers, a caffemodel): only then do their values say anything about the network
    (a bias of zeros is no bias); netgen's initialisation is not data.
    """

    label: str
    kind: str  # "spec", "onnx" or "prototxt"
    graph: ir.Graph
    weights_source: str
    weights_are_data: bool = False
    _weights: Weights | None = field(default=None, repr=False)
    _make_weights: Callable[[], Weights] | None = field(default=None, repr=False)

    @property
    def weights(self) -> Weights:
        if self._weights is None:
            self._weights = self._make_weights() if self._make_weights else {}
        return self._weights


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
