"""`diff --numeric`: both networks through ONNX Runtime on the same batch.

B runs with A's weights, mapped along the alignment (or each side with its own). Where the
two write BatchNorm differently (folded into the convolutions on one side, BatchNorm + Scale
layers on the other) no layer-to-layer mapping exists, so the BatchNorm side is folded, in
float64 and exactly as an exporter's constant folding does, W' = W * g / sqrt(v + e) and
b' = (b - m) * g / sqrt(v + e) + beta, and the folded graphs are compared; the result says so.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from netgen.arch import ir
from netgen.arch.shapes import infer
from netgen.arch.weights import Weights
from netgen.errors import NetgenError
from netgen.analysis import units
from netgen.analysis.network import Side
from netgen.analysis.ops import Op
from netgen.analysis.topology import Analysis
from netgen.jobs.diff.compare import compare
from netgen.jobs.diff.result import DiffResult


def map_weights(result: DiffResult) -> tuple[Weights | None, str | None]:
    """A's weights on B's layers through the alignment, or (None, why not)."""
    a_weights, b_graph = result.a.side.weights, result.b.side.graph
    mapped: Weights = {}
    pairs: list[tuple[Op, Op]] = [(x.op, y.op) for x, y in result.pairs]
    for x, y in result.pairs:
        if (x.shortcut is not None and y.shortcut is not None
                and len(x.shortcut.ops) == len(y.shortcut.ops)):
            pairs.extend(zip(x.shortcut.ops, y.shortcut.ops))
    layers_b = {layer.name: layer for layer in b_graph.layers}
    layers_a = {layer.name: layer for layer in result.a.side.graph.layers}
    for op_a, op_b in pairs:
        if op_a.type != op_b.type:
            continue
        names_a = [n for n in op_a.layers if layers_a[n].blob_shapes]
        names_b = [n for n in op_b.layers if layers_b[n].blob_shapes]
        if len(names_a) != len(names_b):
            continue
        for na, nb in zip(names_a, names_b):
            blobs = a_weights.get(na)
            want = layers_b[nb].blob_shapes
            if blobs is None or len(blobs) != len(want) or any(
                    tuple(x.shape) != tuple(s) for x, s in zip(blobs, want)):
                continue
            mapped[nb] = [np.array(x, dtype=np.float32) for x in blobs]
    missing = [layer.name for layer in b_graph.layers
               if layer.blob_shapes and layer.name not in mapped]
    if missing:
        return None, (f"{len(missing)} layer(s) of B have no aligned layer of A with the same "
                      f"parameter shapes (first: {missing[0]!r})")
    return mapped, None


def permuted_weights(result: DiffResult) -> Weights | None:
    """A's weights on B as `convert --like` maps them, where one side holds its channels in
    another order (option A's zero channels on both sides of the subsampled input, PyTorch's
    F.pad, against netgen's after it): the alignment pairs the right layers, but only the
    unit mapping moves each channel to where the other side computes it. None where the
    orders agree or the units do not map."""
    from netgen.jobs.convert_like import like

    a, b = result.a.side, result.b.side
    try:
        target, source = units.compare_units(b.graph, a.graph)
        orders = units.channel_orders(target) + units.channel_orders(source)
        if all(units.is_identity(order) for order in orders):
            return None
        return like(a.graph, a.weights, b.graph, b.label)[0]
    except NetgenError:
        return None


def fold(analysis: Analysis) -> tuple[ir.Graph, Weights, int]:
    """The side's graph with every BatchNorm, Scale and Bias that its canonical form merged
    into a convolution (or a Bias into an fc) folded into that layer's weights and bias;
    and how many layers were folded away."""
    groups = {op.layers[0]: op.layers for op in analysis.ops
              if op.type in ("Conv", "FC") and len(op.layers) > 1}
    graph, weights = analysis.side.graph, analysis.side.weights
    by_name = {layer.name: layer for layer in graph.layers}
    tail = {name for names in groups.values() for name in names[1:]}
    layers: list[ir.Layer] = []
    folded: Weights = {}
    for layer in graph.layers:
        if layer.name in tail:
            continue
        if layer.name not in groups:
            layers.append(replace(layer, top_shapes=(), blob_shapes=()))
            if layer.name in weights:
                folded[layer.name] = weights[layer.name]
            continue
        w = weights[layer.name][0].astype(np.float64)
        out = w.shape[0]
        b = (weights[layer.name][1].astype(np.float64).reshape(-1) if layer.param.bias_term
             else np.zeros(out))
        for name in groups[layer.name][1:]:
            w, b = _fold_one(by_name[name], weights[name], w, b)
        last = by_name[groups[layer.name][-1]]
        layers.append(replace(layer, tops=last.tops, param=replace(layer.param, bias_term=True),
                              top_shapes=(), blob_shapes=()))
        folded[layer.name] = [w.astype(np.float32), b.astype(np.float32)]
    return infer(graph.name, graph.inputs, layers), folded, len(tail)


def _fold_one(layer: ir.Layer, blobs: list[np.ndarray], w: np.ndarray, b: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    per_out = (-1,) + (1,) * (w.ndim - 1)
    if layer.type == "BatchNorm":
        factor = float(blobs[2].reshape(-1)[0]) if len(blobs) > 2 else 1.0
        inverse = 0.0 if factor == 0 else 1.0 / factor  # Caffe's moving-average factor
        mean = blobs[0].astype(np.float64).reshape(-1) * inverse
        var = blobs[1].astype(np.float64).reshape(-1) * inverse
        scale = 1.0 / np.sqrt(var + float(layer.param.eps))
        return w * scale.reshape(per_out), (b - mean) * scale
    if layer.type == "Scale":
        gamma = blobs[0].astype(np.float64).reshape(-1)
        beta = blobs[1].astype(np.float64).reshape(-1) if layer.param.bias_term else 0.0
        return w * gamma.reshape(per_out), b * gamma + beta
    if layer.type == "Bias":
        return w, b + blobs[0].astype(np.float64).reshape(-1)
    raise NetgenError(f"layer {layer.name!r} ({layer.type}) cannot be folded")  # pragma: no cover


def _logits_and_prob(graph: ir.Graph) -> tuple[str | None, str | None]:
    """(logits blob, prob blob) of the graph's last layer."""
    last = graph.layers[-1]
    if last.type == "Softmax":
        return last.bottoms[0], last.tops[0]
    return last.tops[0], None


def _folded_result(result: DiffResult) -> tuple[DiffResult, str]:
    """Both sides with their BatchNorm folded, compared again (canonical), and what was done."""
    sides, done = [], []
    for key, analysis in (("A", result.a), ("B", result.b)):
        graph, weights, count = fold(analysis)
        side = analysis.side
        sides.append(Side(side.label, side.kind, graph, side.weights_source,
                          side.weights_are_data, side.input_layout, _weights=weights))
        if count:
            done.append(f"{key}'s {count} BatchNorm/Scale/Bias layers folded into the "
                        "convolutions before them")
    if done:
        done.append("both sides run folded")
    return compare(sides[0], sides[1], strict=False), ", ".join(done)


def run_numeric(result: DiffResult, weights: str = "a", batch: int = 2, seed: int = 0,
                device: str = "cpu", tolerance: float = 1e-4) -> dict:
    """Both nets through ONNX Runtime on the same batch; the largest absolute difference."""
    from netgen.onnx.export import tensor_plan, to_onnx
    from netgen.onnx.runtime import create_session, random_batch

    folding = None
    if weights == "a" and (permuted := permuted_weights(result)) is not None:
        b_weights = permuted
        how = ("B runs with A's weights as convert --like maps them, channels permuted to "
               "option A's other zero placement")
    elif weights == "a":
        b_weights, why = map_weights(result)
        if b_weights is None and not result.strict:
            folded, folding = _folded_result(result)
            if folding:
                b_weights, why = map_weights(folded)
                if b_weights is not None:
                    result = folded
        if b_weights is None:
            return {"max_abs_diff": None, "skipped": why, "weights": "B with A's weights"}
        how = "B runs with A's weights, matched by alignment"
    elif weights == "own":
        b_weights, how = result.b.side.weights, "each side with its own weights"
    else:
        raise NetgenError(f"unknown weights mode {weights!r}; allowed: a, own")
    a, b = result.a.side, result.b.side
    shape_a, shape_b = a.graph.inputs[0].shape, b.graph.inputs[0].shape
    if shape_a[1:] != shape_b[1:]:
        return {"max_abs_diff": None, "skipped": f"input shapes differ ({list(shape_a)} vs "
                f"{list(shape_b)})", "weights": how}
    data = random_batch((batch,) + tuple(shape_a[1:]), seed)
    outputs = []
    for graph, w in ((a.graph, a.weights), (b.graph, b_weights)):
        plan = tensor_plan(graph)
        logits, prob = _logits_and_prob(graph)
        session = create_session(to_onnx(graph, w), device=device)
        values = session.run(data)
        final = set(plan.graph_outputs)
        by_blob = {}
        for layer, names in zip(graph.layers, plan.outputs):
            for top, name in zip(layer.tops, names):
                if name in final:
                    by_blob[top] = values[name]
        outputs.append((by_blob.get(logits), by_blob.get(prob) if prob else None))
    (logits_a, prob_a), (logits_b, prob_b) = outputs
    if logits_a is None or logits_b is None or logits_a.shape != logits_b.shape:
        return {"max_abs_diff": None, "weights": how,
                "skipped": "the outputs have different shapes"}
    diff = float(np.max(np.abs(logits_a - logits_b)))
    scale = max(1.0, float(np.max(np.abs(logits_a))))
    out = {"max_abs_diff": diff, "compared": "logits", "batch": batch, "seed": seed,
           "weights": how, "tolerance": tolerance * scale,
           "within_tolerance": diff <= tolerance * scale}
    if folding:
        out["folded"] = folding
    if prob_a is not None and prob_b is not None:
        out["prob_max_abs_diff"] = float(np.max(np.abs(prob_a - prob_b)))
    return out
