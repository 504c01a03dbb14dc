"""A network as interned units: equal ids mean equal sub-networks, whatever the names, the
layer order or the exporter.

Each logical op of the canonical form (ops.py: a convolution with the per-channel affine
maps after it, a pooling, ReLU, a sum, an fc ...) becomes a unit whose id is interned from
its kind, its architectural attributes and its inputs' ids (a sum's operands in any order).
What the canonical form calls representation is left out of the key: whether a convolution
is followed by BatchNorm, folded or biased (`shift`), and whether an fc has a bias; the
weights decide those when they are carried over. Two networks are the same architecture
when their outputs (before a final Softmax) get the same id; otherwise the first unit of
the target without an equal in the source is the difference, named in one line.

`convert --like` reads its matching here (`Units`, `first_difference`, `matches`) and
carries the weights itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from netgen.analysis.ops import Op, logical_ops
from netgen.arch import ir
from netgen.errors import NetgenError

# Attributes that are representation for matching: the weights say what they are.
UNKEYED = {"Conv": ("shift",), "FC": ("bias",)}


def _input_order(value: int | tuple[int, int]) -> tuple[int, int]:
    """An input id, or (id, piece) of a Slice's top, as one sortable pair."""
    return value if isinstance(value, tuple) else (value, -1)


def _freeze(value):
    if isinstance(value, dict):
        return tuple((k, _freeze(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


@dataclass
class Unit:
    """One logical op with its interned id and the IR layers it stands for."""

    op: Op
    layers: list[ir.Layer]
    inputs: tuple[int, ...]
    id: int = -1

    @property
    def kind(self) -> str:
        return self.op.type

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.op.shape)


class Units:
    """A graph as units with interned ids; `table` is shared between the graphs compared."""

    def __init__(self, graph: ir.Graph, table: dict[tuple, int]):
        self.graph = graph
        ops, _, _ = logical_ops(graph, canonical=True)
        by_name = {layer.name: layer for layer in graph.layers}
        self.units = [Unit(op, [by_name[n] for n in op.layers if n in by_name],
                           tuple(op.inputs)) for op in ops]
        pieces = {top: piece for unit in self.units if unit.kind == "Slice" and unit.layers
                  for piece, top in enumerate(unit.layers[0].tops)}
        for unit in self.units:
            key = self._key(unit.op)
            inputs = tuple(self.units[i].id for i in unit.inputs)
            if pieces and unit.layers and len(unit.layers[0].bottoms) == len(unit.inputs):
                # a Slice's tops are one op: which piece a unit reads is in its bottom's name
                # (a Res2Net block's 3x3s each take their own split)
                inputs = tuple((i, pieces[b]) if b in pieces else i
                               for i, b in zip(inputs, unit.layers[0].bottoms))
            if unit.kind == "Add":
                inputs = tuple(sorted(inputs, key=_input_order))
            elif unit.kind == "Concat" and self._has_zeros(unit):
                # where the zero channels sit is a permutation of channels (channel_orders)
                inputs = tuple(self.units[i].id for i in unit.inputs
                               if self.units[i].kind != "Zeros")
            unit.id = table.setdefault((key, inputs), len(table))
        self.output = self._output(ops)

    def _has_zeros(self, unit: Unit) -> bool:
        return unit.op.attrs.get("axis") == 1 and any(
            self.units[i].kind == "Zeros" for i in unit.inputs)

    @cached_property
    def blob_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every blob's shape (a Concat's pieces are told apart by their bottoms')."""
        shapes = {b.name: tuple(b.shape) for b in self.graph.inputs}
        shapes.update((top, tuple(shape)) for layer in self.graph.layers
                      for top, shape in zip(layer.tops, layer.top_shapes))
        return shapes

    @staticmethod
    def _key(op: Op) -> tuple:
        attrs = dict(op.attrs)
        for name in UNKEYED.get(op.type, ()):
            attrs.pop(name, None)
        if op.type == "Input":
            attrs["shape"] = list(attrs["shape"])[1:]  # the batch is representation
        return op.type, _freeze(attrs)

    def _output(self, ops: list[Op]) -> int:
        """The unit computing the net's last output; a final Softmax (which the canonical
        form drops) stands for what it normalises."""
        outputs = self.graph.outputs
        if not outputs:
            raise NetgenError(f"{self.graph.name}: the network has no output")
        op_of_layer = {name: op.id for op in ops for name in op.layers}
        blob = outputs[-1]
        writers = {top: layer for layer in self.graph.layers for top in layer.tops}
        while True:
            layer = writers.get(blob)
            if layer is None:  # a graph input
                return next(op.id for op in ops if op.type == "Input" and blob in op.layers)
            if layer.name in op_of_layer:
                return op_of_layer[layer.name]
            blob = layer.bottoms[0]  # a skipped layer (Flatten, Dropout) or the final Softmax


def _describe(unit: Unit | None, units: list[Unit]) -> str:
    if unit is None:
        return "nothing"
    name = unit.layers[0].name if unit.layers else "the input"
    a = unit.op.attrs
    if unit.kind == "Conv":
        text = (f"{a['kernel'][0]}x{a['kernel'][1]} convolution, stride {a['stride'][0]}, pad "
                f"{a['pad'][0]}, {a['in_channels']} -> {a['out_channels']} channels")
        groups = f", {a['group']} groups" if a["group"] > 1 else ""
        norm = f", {a['norm']}" if "norm" in a else ""
        return f"{name!r} ({text}{groups}{norm})"
    if unit.kind == "Pool":
        if a.get("global"):
            return f"{name!r} (global {a['pool']} pooling)"
        rounding = "rounding down" if a["round_mode"] == "FLOOR" else "rounding up"
        return (f"{name!r} ({a['pool']} pooling {a['kernel'][0]}x{a['kernel'][1]}, stride "
                f"{a['stride'][0]}, pad {a['pad'][0]}, {rounding})")
    if unit.kind == "Input":
        return f"the input of shape {list(a['shape'])[1:]}"
    if unit.kind == "FC":
        return f"{name!r} (InnerProduct, {a['out_features']} outputs)"
    return f"{name!r} ({unit.layers[0].type if unit.layers else unit.kind})"


@dataclass(frozen=True)
class Difference:
    """Where two networks part: the target's unit, the source's unit there (or None) and
    the one-line text; `advice` is left to the caller (it knows the names)."""

    target: Unit | None
    source: Unit | None
    text: str


def first_difference(target: Units, source: Units, name: str) -> Difference | None:
    """None when both compute the same architecture, else where they part, in words:
    "NAME has X; the file has Y there" or "the file has Y where NAME has nothing"."""
    if target.units[target.output].id == source.units[source.output].id:
        return None
    source_ids = {u.id for u in source.units}
    target_ids = {u.id for u in target.units}
    for unit in target.units:
        if unit.id in source_ids:
            continue
        matched_inputs = {target.units[i].id for i in set(unit.inputs)}
        there = next((s for s in source.units if s.id not in target_ids and
                      {source.units[i].id for i in s.inputs} == matched_inputs), None)
        hint = ""
        if unit.kind == "Input":
            there = next((s for s in source.units if s.kind == "Input"), None)
            if there is not None and there.op.attrs["shape"][1:] != unit.op.attrs["shape"][1:]:
                hint = f" (a name ending in -input{there.op.attrs['shape'][-1]} builds for that size)"
        found = (f"the file has {_describe(there, source.units)} there{hint}" if there is not None
                 else "the file has nothing like it there")
        return Difference(unit, there, f"{name} has {_describe(unit, target.units)}; {found}")
    extra = next((s for s in source.units if s.id not in target_ids), None)
    if extra is not None:
        return Difference(None, extra, f"the file has {_describe(extra, source.units)} where "
                                       f"{name} has nothing")
    return Difference(None, None, "the outputs differ")


def compare_units(target: ir.Graph, source: ir.Graph) -> tuple[Units, Units]:
    """Both graphs as units over one intern table."""
    table: dict[tuple, int] = {}
    return Units(target, table), Units(source, table)


def matches(target: Units, source: Units) -> list[tuple[Unit, Unit]]:
    """Every unit of the target that carries parameters, with its equal in the source (equal
    ids taken in order), or a NetgenError for one without."""
    by_id: dict[int, list[Unit]] = {}
    for unit in source.units:
        by_id.setdefault(unit.id, []).append(unit)
    taken: dict[int, int] = {}
    out = []
    for unit in target.units:
        if not any(layer.blob_shapes for layer in unit.layers):
            continue
        candidates = by_id.get(unit.id, [])
        k = taken.get(unit.id, 0)
        if k >= len(candidates):
            raise NetgenError(f"layer {unit.layers[0].name!r}: no layer of the file to take "
                              "its weights from")
        taken[unit.id] = k + 1
        out.append((unit, candidates[k]))
    return out


# Ops that keep each channel where it is (what they compute per channel needs no reordering).
PER_CHANNEL = frozenset({"ReLU", "PReLU", "BN", "Scale", "Bias", "Pool", "Subsample", "Zeros",
                         "Power", "Constant", "Softmax", "Dropout"})


def channel_orders(units: Units) -> list[np.ndarray | None]:
    """Per unit, where each channel of the canonical order sits in its output (None: in
    place). The canonical order puts option A's zero channels after the input, as netgen
    does; a file that puts them on both sides (PyTorch's F.pad) holds the same channels
    in another order, fixed per stage: every convolution writing into the residual stream
    then takes the order of the shortcut it is added to. Weights carried unit to unit go
    through these orders (convert --like)."""
    orders: list[np.ndarray | None] = [None] * len(units.units)
    producers = {i: unit for i, unit in enumerate(units.units)}
    for index, unit in enumerate(units.units):
        kind = unit.kind
        if kind in PER_CHANNEL and unit.inputs:
            orders[index] = orders[unit.inputs[0]]
        elif kind == "Concat" and unit.op.attrs.get("axis") == 1:
            orders[index] = _concat_order(units, unit, orders)
        elif kind == "Add":
            known = [orders[i] for i in unit.inputs if orders[i] is not None]
            if known:
                order = known[0]
                for i in unit.inputs:
                    if not _same_order(orders[i], order):
                        _assign(units, i, order, orders, producers)
                orders[index] = order
    return orders


def _same_order(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """None is the identity order."""
    if a is None and b is None:
        return True
    n = len(a if a is not None else b)
    a = np.arange(n) if a is None else a
    b = np.arange(n) if b is None else b
    return bool(np.array_equal(a, b))


def is_identity(order: np.ndarray | None) -> bool:
    return order is None or bool(np.array_equal(order, np.arange(len(order))))


def reorder(array: np.ndarray, source: np.ndarray | None, target: np.ndarray | None,
            axis: int = 0) -> np.ndarray:
    """`array`'s channels along `axis` from the source's order to the target's, through the
    canonical one: canonical[i] = source[order_s[i]], target[order_t[i]] = canonical[i]."""
    if source is not None:
        array = np.take(array, source, axis=axis)
    if target is not None:
        array = np.take(array, np.argsort(target), axis=axis)
    return array


def _concat_order(units: Units, unit: Unit, orders: list) -> np.ndarray | None:
    offset, kept, zeros = 0, [], []
    widths = [units.blob_shapes[bottom][1] for bottom in unit.layers[0].bottoms]
    for i, width in zip(unit.inputs, widths):
        positions = np.arange(offset, offset + width)
        if units.units[i].kind == "Zeros":
            zeros.append(positions)
        else:
            order = orders[i]
            kept.append(positions if order is None else offset + order)
        offset += width
    order = np.concatenate(kept + zeros) if kept or zeros else None
    if order is None or np.array_equal(order, np.arange(len(order))):
        return None
    return order


def _assign(units: Units, index: int, order: np.ndarray, orders: list, producers: dict) -> None:
    """Give the convolution that writes `index` (through ops that keep channels in place)
    the order `order`: its output channels are free to be named in any order."""
    chain = [index]
    while units.units[chain[-1]].kind in PER_CHANNEL and units.units[chain[-1]].inputs \
            and units.units[chain[-1]].kind not in ("Zeros", "Subsample"):
        chain.append(units.units[chain[-1]].inputs[0])
    if units.units[chain[-1]].kind != "Conv":
        name = units.units[index].layers[0].name if units.units[index].layers else "?"
        raise NetgenError(f"layer {name!r}: its channels are in another order than the "
                          "shortcut it is added to, and no convolution before it can take it")
    for i in chain:
        orders[i] = order
