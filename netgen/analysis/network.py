"""A network to analyse: its IR, its weights, and where both came from.

A name's weights (netgen's seeded initialisation) are drawn only when asked for: a
structural comparison of ResNet-152 should not spend a second on random numbers it never
reads. Reading files into a Side is a job's work (formats live above this layer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from netgen.arch import ir
from netgen.arch.weights import Weights


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
    # "NHWC" where the file was channels-last (Keras): the IR takes the same image
    # channels-first, the transposition outside the network (representation)
    input_layout: str = "NCHW"
    _weights: Weights | None = field(default=None, repr=False)
    _make_weights: Callable[[], Weights] | None = field(default=None, repr=False)

    @property
    def weights(self) -> Weights:
        if self._weights is None:
            self._weights = self._make_weights() if self._make_weights else {}
        return self._weights
