"""Drop what nothing reads: nodes left without readers by the other passes (the pieces
of a folded subgraph) and unused initializers, so the op mapping meets only the network."""

from __future__ import annotations

import onnx

from netgen.onnx.normalize import graph as g


def prune_unused(model: onnx.ModelProto) -> None:
    g.prune(model.graph)
