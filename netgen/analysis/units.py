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

from netgen.analysis.ops import Op, logical_ops
from netgen.arch import ir
from netgen.errors import NetgenError

# Attributes that are representation for matching: the weights say what they are.
UNKEYED = {"Conv": ("shift",), "FC": ("bias",)}


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
        for unit in self.units:
            key = self._key(unit.op)
            inputs = tuple(self.units[i].id for i in unit.inputs)
            if unit.kind == "Add":
                inputs = tuple(sorted(inputs))
            unit.id = table.setdefault((key, inputs), len(table))
        self.output = self._output(ops)

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
        return f"{name!r} ({text}{groups})"
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
