"""Structural (and optionally numeric) comparison of two networks from any source.

Each side (an ONNX file, a prototxt, or a build spec such as `resnet50-B`) becomes the graph
IR, and the IR becomes a graph of *logical ops*: BatchNorm + Scale are one `BN`, Flatten,
Split and Dropout disappear, a fixed depthwise subsample is `Subsample`, Power with scale 0 is
`Zeros`. Caffe files and ONNX exports then look alike whatever their names.

The two graphs are aligned by topology, never by name. A walk from the input follows the
main path; where the path forks, the join is the fork's immediate post-dominator, the branch
with the most convolutions stays on the main path and the others are the block's shortcut,
classified as identity, projection (conv + BN) or zero-pad (option A: subsample + zero
channels). The main paths (each block's residual ops, then its join) are aligned as
sequences of op types; aligned ops are compared attribute by attribute and aligned joins by
their shortcuts. Everything is a loop: nets have thousands of layers.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from netgen.arch import ir
from netgen.arch.counting import Counts, count
from netgen.arch.weights import Weights, initial_weights
from netgen.errors import NetgenError

if TYPE_CHECKING:
    from netgen.arch.spec import ArchSpec

CONTEXT = 3  # ops shown before and after the first divergence
SKIPPED_TYPES = frozenset({"Dropout", "Flatten", "Split"})
ZERO_PAD_TYPES = frozenset({"Subsample", "Zeros", "Concat", "Pool", "Slice", "Reshape"})


# --------------------------------------------------------------------------- the two sides


@dataclass
class Side:
    """One network to compare: its IR, its weights, and where both came from."""

    label: str
    kind: str  # "spec", "onnx" or "prototxt"
    graph: ir.Graph
    weights: Weights
    weights_source: str


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
            return Side(arg, "onnx", graph, weights, "its initializers")
        from netgen.caffe.reader import read_caffe

        graph, weights = read_caffe(path, caffemodel, seed)
        source = str(caffemodel) if caffemodel else f"netgen's initialisation (seed {seed})"
        return Side(arg, "prototxt", graph, weights, source)
    if caffemodel is not None:
        raise NetgenError(f"{arg}: a caffemodel goes with a prototxt file, not a network name")
    if os.sep in arg or path.suffix.lower() in (".onnx",) + PROTOTXT_SUFFIXES:
        raise NetgenError(f"{arg}: no such file")
    from netgen.arch.builder import build

    graph = build(parse_spec_name(arg))
    return Side(arg, "spec", graph, initial_weights(graph, seed),
                f"netgen's initialisation (seed {seed})")


# --------------------------------------------------------------------------- logical ops


@dataclass
class Op:
    id: int
    type: str
    attrs: dict
    layers: list[str]
    inputs: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.layers[0] if self.layers else f"<{self.type}>"

    def describe(self) -> str:
        return f"{self.type} {'/'.join(self.layers)}" if self.layers else self.type


def _conv_attrs(layer: ir.Layer, in_shape: ir.Shape) -> dict:
    p: ir.ConvolutionParam = layer.param
    return {"kernel": list(p.kernel), "stride": list(p.stride), "pad": list(p.pad),
            "dilation": list(p.dilation), "group": p.group, "in_channels": in_shape[1],
            "out_channels": p.num_output, "bias": p.bias_term,
            "param_shapes": [list(s) for s in layer.blob_shapes]}


def _pool_attrs(layer: ir.Layer, in_shape: ir.Shape) -> dict:
    p: ir.PoolingParam = layer.param
    whole = (len(in_shape) == 4 and tuple(p.kernel) == tuple(in_shape[2:]) and p.pad == (0, 0)
             and layer.top_shapes[0][2:] == (1, 1))
    if p.global_pooling or whole:
        return {"pool": p.pool, "global": True}
    return {"pool": p.pool, "kernel": list(p.kernel), "stride": list(p.stride),
            "pad": list(p.pad)}


def logical_ops(graph: ir.Graph) -> tuple[list[Op], list[int]]:
    """The logical op graph of `graph` (topological order) and the ids of its input ops."""
    ops: list[Op] = []
    producer: dict[str, int] = {}
    shape_of: dict[str, ir.Shape] = {}
    inputs = []
    for blob in graph.inputs:
        op = Op(len(ops), "Input", {"shape": list(blob.shape)}, [blob.name])
        ops.append(op)
        inputs.append(op.id)
        producer[blob.name] = op.id
        shape_of[blob.name] = blob.shape
    for layer in graph.layers:
        in_shape = shape_of[layer.bottoms[0]]
        sources = [producer[b] for b in layer.bottoms]
        first = ops[sources[0]]
        if layer.type in SKIPPED_TYPES:
            op_id = first.id  # its tops stand for its bottom
        elif layer.type == "Scale" and first.type == "BN" and not first.attrs["affine"]:
            first.attrs["affine"] = True
            first.attrs["shift"] = layer.param.bias_term
            first.layers.append(layer.name)
            op_id = first.id
        else:
            kind, attrs = _classify(layer, in_shape)
            op_id = len(ops)
            ops.append(Op(op_id, kind, attrs, [layer.name], sources))
        for top, shape in zip(layer.tops, layer.top_shapes):
            producer[top] = op_id
            shape_of[top] = shape
    return ops, inputs


def _classify(layer: ir.Layer, in_shape: ir.Shape) -> tuple[str, dict]:
    t, p = layer.type, layer.param
    if t == "Convolution":
        if layer.fixed:
            return "Subsample", {"stride": list(p.stride), "channels": p.num_output}
        return "Conv", _conv_attrs(layer, in_shape)
    if t == "BatchNorm":
        return "BN", {"channels": in_shape[1], "eps": p.eps, "affine": False, "shift": False}
    if t == "Pooling":
        return "Pool", _pool_attrs(layer, in_shape)
    if t == "InnerProduct":
        return "FC", {"in_features": math.prod(in_shape[p.axis:]), "out_features": p.num_output,
                      "bias": p.bias_term, "param_shapes": [list(s) for s in layer.blob_shapes]}
    if t == "Eltwise":
        kind = {"SUM": "Add", "PROD": "Mul", "MAX": "Max"}[p.operation]
        attrs = {"inputs": len(layer.bottoms)}
        if p.coeff and any(c != 1 for c in p.coeff):
            attrs["coeff"] = list(p.coeff)
        return kind, attrs
    if t == "Power":
        if p.scale == 0 or p.power == 0:
            with np.errstate(all="ignore"):  # 0 ** -1 and (-1) ** 0.5 are no constant to show
                value = 1.0 if p.power == 0 else float(np.float64(p.shift) ** p.power)
            if value == 0:
                return "Zeros", {"channels": in_shape[1]}
            if math.isfinite(value):
                return "Constant", {"channels": in_shape[1], "value": value}
        return "Power", {"power": p.power, "scale": p.scale, "shift": p.shift}
    if t == "ReLU":
        return "ReLU", ({"negative_slope": p.negative_slope} if p.negative_slope else {})
    if t == "PReLU":
        return "PReLU", {"channel_shared": p.channel_shared}
    if t == "Softmax":
        return "Softmax", {"axis": p.axis}
    if t == "Concat":
        return "Concat", {"axis": p.axis, "out_channels": layer.top_shapes[0][p.axis]}
    if t == "Reshape":
        return "Reshape", {"out_shape": list(layer.top_shapes[0][1:])}
    if t == "Scale":
        return "Scale", {"channels": in_shape[p.axis] if len(in_shape) > p.axis else 1,
                         "bias": p.bias_term}
    if t == "Bias":
        return "Bias", {}
    if t == "Slice":
        return "Slice", {"axis": p.axis, "tops": len(layer.tops)}
    return t, {}


# --------------------------------------------------------------------------- the main path


@dataclass
class Shortcut:
    kind: str  # "identity", "projection", "zero-pad", "none" (plain) or "other"
    ops: list[Op]
    attrs: dict

    def describe(self) -> str:
        a = self.attrs
        if self.kind == "projection":
            conv = a["conv"]
            text = (f"projection ({'x'.join(map(str, conv['kernel']))} conv, "
                    f"{conv['out_channels']} channels, stride {conv['stride'][0]}")
            return text + (", BN)" if a.get("bn") else ")")
        if self.kind == "zero-pad":
            parts = []
            if a.get("stride", [1, 1]) != [1, 1]:
                parts.append(f"subsample stride {a['stride'][0]}")
            if a.get("zero_channels"):
                parts.append(f"+{a['zero_channels']} zero channels")
            return "zero-pad (" + ", ".join(parts or ["no change"]) + ")"
        if self.kind == "other":
            return "other (" + ", ".join(op.type for op in self.ops) + ")"
        return self.kind


@dataclass
class Entry:
    """One step of the main path: an op, and for a block's join also its shortcut."""

    op: Op
    block: int | None = None  # index of the block this op ends (joins only)
    shortcut: Shortcut | None = None


def _postdominators(ops: list[Op], succ: list[list[int]]) -> list[int]:
    """Immediate post-dominators; ids are topological, the virtual sink is len(ops)."""
    sink = len(ops)
    ipdom = [sink] * (sink + 1)
    for n in range(sink - 1, -1, -1):
        following = succ[n] or [sink]
        candidate = following[0]
        for other in following[1:]:
            a, b = candidate, other
            while a != b:
                while a < b:
                    a = ipdom[a]
                while b < a:
                    b = ipdom[b]
            candidate = a
        ipdom[n] = candidate
    return ipdom


def _classify_shortcut(branches: list[list[Op]], direct: bool) -> Shortcut:
    if direct and not branches:
        return Shortcut("identity", [], {})
    if len(branches) != 1 or direct:
        ops = [op for branch in branches for op in branch]
        return Shortcut("other", ops, {"types": [op.type for op in ops]})
    ops = branches[0]
    types = [op.type for op in ops]
    convs = [op for op in ops if op.type == "Conv"]
    if len(convs) == 1 and set(types) <= {"Conv", "BN"}:
        return Shortcut("projection", ops, {"conv": dict(convs[0].attrs), "bn": "BN" in types})
    if set(types) <= ZERO_PAD_TYPES:
        stride = next((op.attrs["stride"] for op in ops if op.type == "Subsample"), [1, 1])
        concat = next((op for op in ops if op.type == "Concat"), None)
        zeros = sum(1 for op in ops if op.type == "Zeros")
        width = concat.attrs["out_channels"] if concat else None
        attrs = {"stride": stride, "out_channels": width}
        if concat is not None and zeros:
            base = next((op.attrs["channels"] for op in ops if op.type == "Zeros"), 0)
            attrs["zero_channels"] = width - base
        return Shortcut("zero-pad", ops, attrs)
    return Shortcut("other", ops, {"types": types})


def main_path(ops: list[Op], start: int) -> tuple[list[Entry], set[int]]:
    """The main path from op `start` and the ids of every op it (or a shortcut) covers."""
    n = len(ops)
    succ: list[list[int]] = [[] for _ in range(n)]
    for op in ops:
        for source in dict.fromkeys(op.inputs):
            succ[source].append(op.id)
    ipdom = _postdominators(ops, succ)
    entries: list[Entry] = []
    covered = {start}
    cur, blocks = start, 0
    while cur < n and succ[cur]:
        join = ipdom[cur]
        if len(succ[cur]) == 1 and succ[cur][0] == join:
            entries.append(Entry(ops[join]))
            covered.add(join)
            cur = join
            continue
        # A fork: collect the ops between `cur` and its join, split into branches.
        between: set[int] = set()
        stack = [s for s in succ[cur] if s != join]
        while stack:
            node = stack.pop()
            if node in between or node == join or node >= n:
                continue
            between.add(node)
            stack.extend(s for s in succ[node] if s != join)
        branches = _components(ops, between, succ)
        direct = join < n and cur in ops[join].inputs
        main_index = max(range(len(branches)), default=None, key=lambda i: (
            sum(1 for op in branches[i] if op.type == "Conv"), len(branches[i]), -branches[i][0].id))
        main = branches.pop(main_index) if main_index is not None else []
        for op in main:
            entries.append(Entry(op))
        covered.update(between)
        if join >= n:
            break
        shortcut = _classify_shortcut(branches, direct)
        entries.append(Entry(ops[join], block=blocks, shortcut=shortcut))
        blocks += 1
        covered.add(join)
        cur = join
    return entries, covered


def _components(ops: list[Op], between: set[int], succ: list[list[int]]) -> list[list[Op]]:
    """Connected parts of `between` (undirected), each in topological order."""
    neighbours: dict[int, set[int]] = {i: set() for i in between}
    for i in between:
        for s in succ[i]:
            if s in between:
                neighbours[i].add(s)
                neighbours[s].add(i)
    seen: set[int] = set()
    parts = []
    for i in sorted(between):
        if i in seen:
            continue
        part, stack = [], [i]
        seen.add(i)
        while stack:
            node = stack.pop()
            part.append(node)
            for other in neighbours[node]:
                if other not in seen:
                    seen.add(other)
                    stack.append(other)
        parts.append([ops[j] for j in sorted(part)])
    return parts


# --------------------------------------------------------------------------- comparison


@dataclass
class Analysis:
    side: Side
    ops: list[Op]
    entries: list[Entry]
    covered: set[int]

    @cached_property
    def op_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(op.type for op in self.ops if op.type != "Input").items()))

    @cached_property
    def counts(self) -> Counts:
        """The side's parameters, multiply-adds and layer types, counted once."""
        return count(self.side.graph)


def analyse(side: Side) -> Analysis:
    ops, inputs = logical_ops(side.graph)
    entries, covered = main_path(ops, inputs[0])
    return Analysis(side, ops, entries, covered)


def _key(entry: Entry) -> tuple:
    """What must agree for two main-path ops to be aligned at first: the op type, its widths
    and kernel, so that a stage with more blocks aligns block by block instead of shifting
    into the next stage. Ops of one type that differ in these are paired in a second pass,
    and every attribute (stride and pad too) is compared on the pairs."""
    a = entry.op.attrs
    width = a.get("out_channels", a.get("channels", a.get("out_features")))
    return entry.op.type, width, a.get("in_channels"), tuple(a.get("kernel", ()))


MAX_EDIT_DISTANCE = 4000  # beyond this the two nets are too unlike to align op by op


def align(a: list, b: list, score_a: list[int] | None = None,
          score_b: list[int] | None = None) -> list[tuple[str, int, int, int, int]]:
    """difflib-style opcodes of a minimal edit script (Myers' O(ND) algorithm, iterative).

    difflib's matcher is quadratic on long repetitive sequences such as 600 identical
    blocks; Myers' algorithm costs O((N + M) D) for D differences. Among the equally short
    scripts, an inserted or deleted run is slid to where its ends score best (score_x[t]:
    how good a cut before item t of x is, e.g. a block boundary), as git's diff heuristics do.
    """
    codes = {}
    ia = [codes.setdefault(x, len(codes)) for x in a]
    ib = [codes.setdefault(x, len(codes)) for x in b]
    n, m = len(ia), len(ib)
    lo = 0
    while lo < n and lo < m and ia[lo] == ib[lo]:
        lo += 1
    hi_a, hi_b = n, m
    while hi_a > lo and hi_b > lo and ia[hi_a - 1] == ib[hi_b - 1]:
        hi_a -= 1
        hi_b -= 1
    moves = _myers(ia[lo:hi_a], ib[lo:hi_b])
    ops: list[tuple[str, int, int]] = [("=", i, i) for i in range(lo)]
    if moves is None:  # too far apart: everything between the common ends is one change
        ops += [("-", i, -1) for i in range(lo, hi_a)] + [("+", -1, j) for j in range(lo, hi_b)]
    else:
        ops += [(t, i + lo if i >= 0 else -1, j + lo if j >= 0 else -1) for t, i, j in moves]
    ops += [("=", hi_a + k, hi_b + k) for k in range(n - hi_a)]
    if score_a is not None and score_b is not None:
        _slide(ops, ia, ib, score_a, score_b)
    return _group(ops, n, m)


def _slide(ops: list[tuple[str, int, int]], ia: list[int], ib: list[int],
           score_a: list[int], score_b: list[int]) -> None:
    """Move each pure insertion/deletion run, in place, to its best-scoring equivalent spot."""
    k = 0
    while k < len(ops):
        tag = ops[k][0]
        if tag == "=":
            k += 1
            continue
        end = k
        while end < len(ops) and ops[end][0] == tag:
            end += 1
        if (end < len(ops) and ops[end][0] not in ("=", tag)) or (k and ops[k - 1][0] not in ("=", tag)):
            k = end  # part of a replacement: leave it
            continue
        side, keys, score = (2, ib, score_b) if tag == "+" else (1, ia, score_a)
        first, last = ops[k][side], ops[end - 1][side] + 1  # the run covers keys[first:last]
        length = last - first
        # How far the run may move up and down without changing the edit's cost.
        up = 0
        while (k - up - 1 >= 0 and ops[k - up - 1][0] == "=" and first - up - 1 >= 0
               and keys[first - up - 1] == keys[last - up - 1]):
            up += 1
        down = 0
        while (end + down < len(ops) and ops[end + down][0] == "=" and last + down < len(keys)
               and keys[first + down] == keys[last + down]):
            down += 1
        if up or down:
            def quality(shift: int) -> tuple[int, int]:
                start = first + shift
                stop = start + length
                cut = score[start] if start < len(score) else 2
                cut += score[stop] if stop < len(score) else 2
                return cut, -abs(shift)
            best = max(range(-up, down + 1), key=quality)
            if best:
                # The moved-over equal pairs keep their other-side partners in order.
                lo, hi = k - up, end + down
                equal_others = [op[3 - side] for op in ops[lo:hi] if op[0] == "="]
                run_start = first + best
                seq = []
                mine = first - up
                others = iter(equal_others)
                for pos in range(mine, last + down):
                    if run_start <= pos < run_start + length:
                        seq.append((tag, pos, -1) if side == 1 else (tag, -1, pos))
                    else:
                        other = next(others)
                        seq.append(("=", pos, other) if side == 1 else ("=", other, pos))
                ops[lo:hi] = seq
        k = end


def _myers(a: list[int], b: list[int]) -> list[tuple[str, int, int]] | None:
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        return [("-", i, -1) for i in range(n)] + [("+", -1, j) for j in range(m)]
    v = {1: 0}
    trace = []
    for d in range(min(n + m, MAX_EDIT_DISTANCE) + 1):
        new = {}
        for k in range(-d, d + 1, 2):
            if k == -d or (k != d and v.get(k - 1, -1) < v.get(k + 1, -1)):
                x = v[k + 1]
            else:
                x = v[k - 1] + 1
            y = x - k
            while x < n and y < m and a[x] == b[y]:
                x += 1
                y += 1
            new[k] = x
            if x >= n and y >= m:
                trace.append(new)
                return _backtrack(trace, n, m)
        trace.append(new)
        v = new
    return None


def _backtrack(trace: list[dict], n: int, m: int) -> list[tuple[str, int, int]]:
    moves: list[tuple[str, int, int]] = []
    x, y = n, m
    for d in range(len(trace) - 1, 0, -1):
        prev = trace[d - 1]
        k = x - y
        if k == -d or (k != d and prev.get(k - 1, -1) < prev.get(k + 1, -1)):
            prev_k = k + 1
        else:
            prev_k = k - 1
        prev_x = prev[prev_k]
        prev_y = prev_x - prev_k
        while x > prev_x and y > prev_y:
            x, y = x - 1, y - 1
            moves.append(("=", x, y))
        if x == prev_x:
            moves.append(("+", -1, prev_y))
        else:
            moves.append(("-", prev_x, -1))
        x, y = prev_x, prev_y
    while x > 0 and y > 0:
        x, y = x - 1, y - 1
        moves.append(("=", x, y))
    moves.reverse()
    return moves


def _group(ops: list[tuple[str, int, int]], n: int, m: int) -> list[tuple[str, int, int, int, int]]:
    out: list[tuple[str, int, int, int, int]] = []
    i = j = 0
    k = 0
    while k < len(ops):
        if ops[k][0] == "=":
            start_i, start_j = i, j
            while k < len(ops) and ops[k][0] == "=":
                i, j, k = i + 1, j + 1, k + 1
            out.append(("equal", start_i, i, start_j, j))
            continue
        start_i, start_j = i, j
        while k < len(ops) and ops[k][0] != "=":
            if ops[k][0] == "-":
                i += 1
            else:
                j += 1
            k += 1
        tag = "replace" if i > start_i and j > start_j else "delete" if i > start_i else "insert"
        out.append((tag, start_i, i, start_j, j))
    assert i == n and j == m, (i, n, j, m)
    return out


def _entry_json(entry: Entry | None) -> dict | None:
    if entry is None:
        return None
    out = {"type": entry.op.type, "layers": list(entry.op.layers), "attrs": entry.op.attrs}
    if entry.shortcut is not None:
        out["shortcut"] = entry.shortcut.describe()
    return out


def _cut_scores(entries: list[Entry]) -> list[int]:
    """How natural a cut before each entry is: 2 at a block boundary (after a join and the
    ReLU that follows it), 1 after any other ReLU (a unit of a plain net), else 0."""
    scores = []
    for t in range(len(entries)):
        prev = entries[t - 1] if t else None
        before = entries[t - 2] if t > 1 else None
        if t == 0 or (prev.shortcut is not None and entries[t].op.type != "ReLU"):
            scores.append(2)
        elif prev.op.type == "ReLU" and before is not None and before.shortcut is not None:
            scores.append(2)
        elif prev.op.type == "ReLU":
            scores.append(1)
        else:
            scores.append(0)
    return scores


def _context(entries: list[Entry], index: int) -> list[str]:
    lo, hi = max(0, index - CONTEXT), min(len(entries), index + CONTEXT + 1)
    return [("> " if i == index else "  ") + entries[i].op.describe() for i in range(lo, hi)]


def _attr_diff(a: dict, b: dict) -> dict:
    keys = list(dict.fromkeys(list(a) + list(b)))
    return {k: [a.get(k), b.get(k)] for k in keys if not _same(a.get(k), b.get(k))}


def _same(x, y) -> bool:
    if isinstance(x, float) and isinstance(y, float):
        return math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-12)
    return x == y


@dataclass
class DiffResult:
    a: Analysis
    b: Analysis
    pairs: list[tuple[Entry, Entry]]
    layer_differences: list[dict]
    shortcut_differences: list[dict]
    structural_differences: list[dict]
    first_divergence: dict | None
    input_difference: dict | None
    numeric: dict | None = None

    @property
    def totals(self) -> dict:
        out = {}
        for key, analysis in (("a", self.a), ("b", self.b)):
            counts = analysis.counts
            out[key] = {"parameters": counts.params, "multiply_adds": counts.macs}
        return out

    @property
    def equivalent(self) -> bool:
        totals = self.totals
        same = (not self.layer_differences and not self.shortcut_differences
                and not self.structural_differences and self.input_difference is None
                and self.a.op_counts == self.b.op_counts and totals["a"] == totals["b"])
        if self.numeric is not None and self.numeric.get("max_abs_diff") is not None:
            same = same and self.numeric["within_tolerance"]
        return same

    def to_json(self) -> dict:
        totals = self.totals

        def side(key: str, analysis: Analysis) -> dict:
            s = analysis.side
            return {
                "source": s.label, "kind": s.kind, "name": s.graph.name,
                "input": {b.name: list(b.shape) for b in s.graph.inputs},
                "layers": len(s.graph.layers),
                "layer_counts": analysis.counts.layer_types,
                "op_counts": analysis.op_counts,
                "main_path_ops": len(analysis.entries),
                "blocks": sum(1 for e in analysis.entries if e.shortcut is not None),
                "uncovered_ops": sorted(op.name for op in analysis.ops
                                        if op.id not in analysis.covered and op.type != "Input"),
                "parameters": totals[key]["parameters"],
                "multiply_adds": totals[key]["multiply_adds"],
                "weights": s.weights_source,
            }

        return {
            "equivalent": self.equivalent,
            "a": side("a", self.a),
            "b": side("b", self.b),
            "input_difference": self.input_difference,
            "first_divergence": self.first_divergence,
            "layer_differences": self.layer_differences,
            "shortcut_differences": self.shortcut_differences,
            "structural_differences": self.structural_differences,
            "numeric": self.numeric,
        }


def compare(a: Side, b: Side) -> DiffResult:
    """Align the two sides by topology and list every difference."""
    left, right = analyse(a), analyse(b)
    ea, eb = left.entries, right.entries
    opcodes = []
    cuts_a, cuts_b = _cut_scores(ea), _cut_scores(eb)
    for tag, i1, i2, j1, j2 in align([_key(e) for e in ea], [_key(e) for e in eb], cuts_a, cuts_b):
        if tag != "replace":
            opcodes.append((tag, i1, i2, j1, j2))
            continue
        # Same types, other widths: pair them by type so the widths show as differences.
        for sub, a1, a2, b1, b2 in align([e.op.type for e in ea[i1:i2]],
                                         [e.op.type for e in eb[j1:j2]],
                                         cuts_a[i1:i2], cuts_b[j1:j2]):
            opcodes.append((sub, i1 + a1, i1 + a2, j1 + b1, j1 + b2))
    pairs: list[tuple[Entry, Entry]] = []
    layer_diffs: list[dict] = []
    shortcut_diffs: list[dict] = []
    structural: list[dict] = []
    first: tuple[int, int, str] | None = None

    def note_first(i: int, j: int, reason: str) -> None:
        nonlocal first
        if first is None or i < first[0]:
            first = (i, j, reason)

    for tag, i1, i2, j1, j2 in opcodes:
        if tag == "equal":
            for i, j in zip(range(i1, i2), range(j1, j2)):
                x, y = ea[i], eb[j]
                pairs.append((x, y))
                fields = _attr_diff(x.op.attrs, y.op.attrs)
                if fields:
                    layer_diffs.append({"type": x.op.type, "a": list(x.op.layers),
                                        "b": list(y.op.layers), "fields": fields})
                    note_first(i, j, f"{x.op.type} {', '.join(fields)} differ")
                if x.shortcut is not None and y.shortcut is not None:
                    if (x.shortcut.kind, x.shortcut.attrs) != (y.shortcut.kind, y.shortcut.attrs):
                        shortcut_diffs.append(_shortcut_diff(x, y))
                        note_first(i, j, "shortcut differs")
            continue
        only_a, only_b = ea[i1:i2], eb[j1:j2]
        # A block present on one side only (plain vs residual): a shortcut difference.
        for entries, here in ((only_a, "a"), (only_b, "b")):
            for entry in entries:
                if entry.shortcut is not None:
                    shortcut_diffs.append(_shortcut_diff(entry if here == "a" else None,
                                                         entry if here == "b" else None))
        rest_a = [e for e in only_a if e.shortcut is None]
        rest_b = [e for e in only_b if e.shortcut is None]
        if rest_a or rest_b:
            structural.append({
                "a": [_entry_json(e) for e in rest_a], "b": [_entry_json(e) for e in rest_b],
                "after_a": ea[i1 - 1].op.describe() if i1 else None,
                "after_b": eb[j1 - 1].op.describe() if j1 else None,
            })
        if only_a or only_b:
            what = " ".join(e.op.type for e in only_a) or "nothing"
            other = " ".join(e.op.type for e in only_b) or "nothing"
            note_first(i1, j1, f"A has {what} where B has {other}")

    input_difference = None
    shapes_a = [list(x.shape) for x in a.graph.inputs]
    shapes_b = [list(x.shape) for x in b.graph.inputs]
    if shapes_a != shapes_b:
        input_difference = {"a": shapes_a, "b": shapes_b}

    divergence = None
    if first is not None:
        i, j, reason = first
        divergence = {
            "position": i, "reason": reason,
            "a": {"op": _entry_json(ea[i] if i < len(ea) else None), "context": _context(ea, i)},
            "b": {"op": _entry_json(eb[j] if j < len(eb) else None), "context": _context(eb, j)},
        }
    return DiffResult(left, right, pairs, layer_diffs, shortcut_diffs, structural, divergence,
                      input_difference)


def _shortcut_diff(x: Entry | None, y: Entry | None) -> dict:
    def one(entry: Entry | None) -> dict:
        if entry is None:
            return {"block": None, "shortcut": "none (no shortcut)", "kind": "none", "ops": []}
        return {"block": entry.op.name, "index": entry.block,
                "shortcut": entry.shortcut.describe(), "kind": entry.shortcut.kind,
                "ops": [name for op in entry.shortcut.ops for name in op.layers]}

    return {"a": one(x), "b": one(y)}


# --------------------------------------------------------------------------- numeric


def map_weights(result: DiffResult) -> tuple[Weights | None, str | None]:
    """A's weights on B's layers through the alignment, or (None, why not)."""
    a_weights, b_graph = result.a.side.weights, result.b.side.graph
    mapped: Weights = {}
    pairs: list[tuple[Op, Op]] = [(x.op, y.op) for x, y in result.pairs]
    for x, y in result.pairs:
        if x.shortcut is not None and y.shortcut is not None and len(x.shortcut.ops) == len(y.shortcut.ops):
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
    missing = [layer.name for layer in b_graph.layers if layer.blob_shapes and layer.name not in mapped]
    if missing:
        return None, (f"{len(missing)} layer(s) of B have no aligned layer of A with the same "
                      f"parameter shapes (first: {missing[0]!r})")
    return mapped, None


def _logits_and_prob(graph: ir.Graph) -> tuple[str | None, str | None]:
    """(logits blob, prob blob) of the graph's last layer."""
    last = graph.layers[-1]
    if last.type == "Softmax":
        return last.bottoms[0], last.tops[0]
    return last.tops[0], None


def run_numeric(result: DiffResult, weights: str = "a", batch: int = 2, seed: int = 0,
                device: str = "cpu", tolerance: float = 1e-4) -> dict:
    """Both nets through ONNX Runtime on the same batch; the largest absolute difference."""
    from netgen.onnx.export import tensor_plan, to_onnx
    from netgen.onnx.runtime import create_session, random_batch

    a, b = result.a.side, result.b.side
    if weights == "a":
        b_weights, why = map_weights(result)
        if b_weights is None:
            return {"max_abs_diff": None, "skipped": why, "weights": "B with A's weights"}
        how = "B runs with A's weights, matched by alignment"
    elif weights == "own":
        b_weights, how = b.weights, "each side with its own weights"
    else:
        raise NetgenError(f"unknown weights mode {weights!r}; allowed: a, own")
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
        final = {name for name in plan.graph_outputs}
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
    if prob_a is not None and prob_b is not None:
        out["prob_max_abs_diff"] = float(np.max(np.abs(prob_a - prob_b)))
    return out


# --------------------------------------------------------------------------- report


def format_text(result: DiffResult) -> str:
    data = result.to_json()
    lines = []
    for key in ("a", "b"):
        s = data[key]
        inputs = ", ".join(f"{n} {shape}" for n, shape in s["input"].items())
        lines.append(f"{key.upper()}: {s['source']} ({s['kind']}, {s['name']}): input {inputs}; "
                     f"{s['layers']} layers, {sum(s['op_counts'].values())} ops, "
                     f"{s['blocks']} blocks; {s['parameters']:,} parameters, "
                     f"{s['multiply_adds']:,} multiply-adds")
    lines.append("ops by type:")
    types = sorted(set(data["a"]["op_counts"]) | set(data["b"]["op_counts"]))
    width = max([len(t) for t in types] + [4])
    lines.append(f"  {'':<{width}}  {'A':>6}  {'B':>6}")
    for t in types:
        ca, cb = data["a"]["op_counts"].get(t, 0), data["b"]["op_counts"].get(t, 0)
        mark = "" if ca == cb else "  *"
        lines.append(f"  {t:<{width}}  {ca:>6}  {cb:>6}{mark}")
    verdict = "EQUIVALENT" if data["equivalent"] else "DIFFERENT"
    lines.append(f"verdict: {verdict}")
    if data["input_difference"]:
        lines.append(f"input shapes differ: A {data['input_difference']['a']}, "
                     f"B {data['input_difference']['b']}")
    div = data["first_divergence"]
    if div:
        lines.append(f"first divergence along the main path (op {div['position']}): {div['reason']}")
        for key in ("a", "b"):
            lines.append(f"  {key.upper()}:")
            lines.extend(f"    {line}" for line in div[key]["context"])
    if data["shortcut_differences"]:
        lines.append(f"shortcut differences ({len(data['shortcut_differences'])}):")
        for d in data["shortcut_differences"]:
            a, b = d["a"], d["b"]
            lines.append(f"  A {a['block'] or '-'}: {a['shortcut']}  |  B {b['block'] or '-'}: "
                         f"{b['shortcut']}")
    if data["layer_differences"]:
        lines.append(f"layer differences ({len(data['layer_differences'])}):")
        for d in data["layer_differences"]:
            fields = "; ".join(f"{k} {v[0]} vs {v[1]}" for k, v in d["fields"].items())
            lines.append(f"  {d['type']} A {'/'.join(d['a'])} | B {'/'.join(d['b'])}: {fields}")
    if data["structural_differences"]:
        lines.append(f"structural differences ({len(data['structural_differences'])}):")
        for d in data["structural_differences"]:
            a = ", ".join(f"{e['type']} {'/'.join(e['layers'])}" for e in d["a"]) or "nothing"
            b = ", ".join(f"{e['type']} {'/'.join(e['layers'])}" for e in d["b"]) or "nothing"
            lines.append(f"  A: {a} (after {d['after_a']})  |  B: {b} (after {d['after_b']})")
    for key in ("a", "b"):
        if data[key]["uncovered_ops"]:
            names = data[key]["uncovered_ops"]
            lines.append(f"{key.upper()} has {len(names)} op(s) off the main path and its "
                         f"shortcuts: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}")
    lines.append(f"parameters: A {data['a']['parameters']:,}  B {data['b']['parameters']:,}")
    lines.append(f"multiply-adds: A {data['a']['multiply_adds']:,}  B {data['b']['multiply_adds']:,}")
    numeric = data["numeric"]
    if numeric is not None:
        if numeric.get("max_abs_diff") is None:
            lines.append(f"numeric: not compared: {numeric['skipped']}")
        else:
            lines.append(f"numeric: max |A - B| = {numeric['max_abs_diff']:.3g} on the "
                         f"{numeric['compared']} (batch {numeric['batch']}, {numeric['weights']}; "
                         f"tolerance {numeric['tolerance']:.3g})")
    return "\n".join(lines) + "\n"


def diff(arg_a: str, arg_b: str, numeric: bool = False, caffemodel_a: str | None = None,
         caffemodel_b: str | None = None, seed: int = 0, weights: str = "a", batch: int = 2,
         device: str = "cpu") -> DiffResult:
    """Compare two networks given as files or names; `numeric` also runs them."""
    a = load_side(arg_a, caffemodel_a, seed)
    b = load_side(arg_b, caffemodel_b, seed)
    result = compare(a, b)
    if numeric:
        result.numeric = run_numeric(result, weights=weights, batch=batch, seed=seed, device=device)
    return result
