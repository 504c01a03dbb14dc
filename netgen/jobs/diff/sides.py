"""The two things `diff` compares: a network read into the graph IR, with its weights.

Reading the argument (a name, build folder, prototxt or ONNX file) is netgen.jobs.network's
job, shared by every command; load_side stays here for the callers that know it by this name.
Weights that are not data (netgen's seeded initialisation) are drawn only when asked for: a
structural diff of ResNet-152 should not spend a second on random numbers it never reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from netgen.arch import ir
from netgen.arch.weights import Weights

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
    """Moved to netgen.jobs.network (one way to name a network for every command)."""
    from netgen.jobs.network import parse_spec_name as parse

    return parse(name)


def load_side(arg: str, caffemodel: str | os.PathLike | None = None, seed: int = 0,
              input_shape: tuple[int, ...] | None = None) -> Side:
    """A name, build folder, prototxt or ONNX file: netgen.jobs.network.load_network."""
    from netgen.jobs.network import load_network

    return load_network(arg, caffemodel=caffemodel, seed=seed, input_shape=input_shape)
