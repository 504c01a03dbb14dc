"""Channels-last graphs made channels-first: Keras 3's exports (NHWC throughout, every Conv
and pooling between a Transpose to NCHW and one back).

Caffe and netgen's IR are NCHW. The pass walks the nodes once, in order, and keeps for each
activation the permutation that still lies between the tensor the file computes and the
tensor the rewritten graph computes (`file = transpose(rewritten, perm)`). A Transpose only
composes that permutation (no node is written; inverse pairs cancel), element-wise and
per-channel operations run on the rewritten tensor with their constants, pads, axes and
concatenation axis permuted to match, and every other op must find its input with no
permutation pending. A channels-last graph input becomes the same image channels-first
(`netgen_input_layout=NHWC` in the model's metadata says so; the transposition then happens
outside the network). A permutation that reaches an op that cannot absorb it, or a graph
output, is refused with one line naming the Transpose it came from and the op.

A channels-last map flattened for a Dense layer (Keras's `Flatten()` after a conv base, a
Reshape to (N, -1) or a Flatten of axis 1) holds its features in (H, W, C) order, the
rewritten map flattens to (C, H, W): the flat tensor keeps that reordering of features
pending, and the MatMul or Gemm that reads it with a constant weight takes the weight's
rows in the rewritten order; any other reader of it is refused.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from netgen.errors import NetgenError
from netgen.onnx.normalize import shapes
from netgen.onnx.normalize.rewrite import array, attrs, node_name, replace_nodes, set_attr

INPUT_LAYOUT_KEY = "netgen_input_layout"
NHWC_TO_NCHW = (0, 3, 1, 2)
NCHW_AS_NHWC = (0, 2, 3, 1)  # file (NHWC) = transpose(rewritten NCHW, this)

# Ops computed element by element on one tensor: they commute with any transpose.
UNARY = frozenset({
    "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Elu", "Selu", "HardSigmoid", "HardSwish",
    "Softplus", "Softsign", "Clip", "Cast", "Identity", "Neg", "Abs", "Exp", "Log", "Sqrt",
    "Reciprocal", "Erf", "Floor", "Ceil", "Round", "Sign", "Not", "Dropout",
})
# Ops computed element by element on several tensors (with numpy broadcasting).
ELEMENTWISE = frozenset({"Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean", "Pow",
                         "Where", "PRelu"})
REDUCE = frozenset({"ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd",
                    "ReduceL1", "ReduceL2"})

Perm = tuple[int, ...]


def _identity(perm: Perm | None) -> bool:
    return perm is None or perm == tuple(range(len(perm)))


class _Layout:
    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.graph = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.const = {t.name: t for t in self.graph.initializer}
        # file tensor -> (the rewritten tensor holding it, the permutation still pending,
        # where that permutation came from); absent: itself, none.
        self.state: dict[str, tuple[str, Perm | None, str]] = {}
        self.permuted_consts: dict[tuple[str, Perm], str] = {}
        self.new_initializers: list[onnx.TensorProto] = []
        self.taken = {t.name for t in self.graph.initializer}
        # rewritten flat tensor -> (order, origin): the file's feature j is the rewritten
        # tensor's feature order[j] (a channels-last map flattened, see the docstring)
        self.flat: dict[str, tuple[np.ndarray, str]] = {}
        self.types: dict[str, shapes.TensorType] | None = None

    def fail(self, perm: Perm, origin: str, where: str) -> NetgenError:
        return NetgenError(f"{origin}: its permutation {list(perm)} cannot be moved out of the "
                           f"network: {where} has no channels-first equivalent for a transposed "
                           "input")

    # ------------------------------------------------------------ constants

    def permuted_constant(self, name: str, perm: Perm, rank: int) -> str | None:
        """The initializer `c'` with transpose(c', perm) == c broadcast at `rank`."""
        key = (name, perm)
        if key in self.permuted_consts:
            return self.permuted_consts[key]
        value = array(self.const[name])
        if value is None or value.ndim > rank:
            return None
        if value.size == 1:
            return name
        full = value.reshape((1,) * (rank - value.ndim) + value.shape)
        moved = np.ascontiguousarray(np.transpose(full, np.argsort(perm)))
        new = self._fresh(name + "_nchw")
        self.new_initializers.append(numpy_helper.from_array(moved, new))
        self.permuted_consts[key] = new
        return new

    def _fresh(self, base: str) -> str:
        name = base
        while name in self.taken:
            name += "_"
        self.taken.add(name)
        return name

    # ------------------------------------------------------------ the walk

    def channels_last_inputs(self) -> set[str]:
        """Rank-4 graph inputs whose first layout-deciding consumer is a Transpose NHWC->NCHW,
        found through element-wise nodes and Pads (each node visited once)."""
        consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.graph.node:
            for item in node.input:
                consumers.setdefault(item, []).append(node)
        found = set()
        for value in self.graph.input:
            if value.name in self.const or len(value.type.tensor_type.shape.dim) != 4:
                continue
            seen, stack, hit = set(), [value.name], False
            while stack and not hit:
                for node in consumers.get(stack.pop(), []):
                    if id(node) in seen:
                        continue
                    seen.add(id(node))
                    if node.op_type == "Transpose":
                        if tuple(attrs(node).get("perm", ())) == NHWC_TO_NCHW:
                            hit = True
                            break
                    elif node.op_type in UNARY or node.op_type in ELEMENTWISE or node.op_type == "Pad":
                        stack.extend(o for o in node.output if o)
            if hit:
                found.add(value.name)
        return found

    def run(self) -> None:
        if any(node.op_type in ("Reshape", "Flatten") for node in self.graph.node):
            self.types = shapes.infer(self.model, 1)  # the file's shapes, before the walk
        nhwc = self.channels_last_inputs()
        for value in self.graph.input:
            if value.name in nhwc:
                dims = value.type.tensor_type.shape.dim
                copies = [onnx.TensorShapeProto.Dimension() for _ in range(4)]
                for new, old in zip(copies, (dims[0], dims[3], dims[1], dims[2])):
                    new.CopyFrom(old)
                del dims[:]
                dims.extend(copies)
                self.state[value.name] = (value.name, NCHW_AS_NHWC, f"graph input {value.name!r}")
        nodes = []
        for node in self.graph.node:
            if self.step(node):
                nodes.append(node)
        for output in self.graph.output:
            if output.name in self.flat:
                raise self.flat_fail(output.name, f"graph output {output.name!r}")
            rewritten, perm, origin = self.state.get(output.name, (output.name, None, ""))
            if not _identity(perm):
                raise self.fail(perm, origin, f"graph output {output.name!r}")
            if rewritten != output.name:  # a cancelled Transpose wrote the output
                nodes.append(onnx.helper.make_node("Identity", [rewritten], [output.name],
                                                   name=self._fresh(output.name + "_nchw")))
        replace_nodes(self.graph, nodes)
        self.graph.initializer.extend(self.new_initializers)
        del self.graph.value_info[:]  # shapes of rewritten tensors changed; the importer infers
        if nhwc:
            entry = self.model.metadata_props.add()
            entry.key, entry.value = INPUT_LAYOUT_KEY, "NHWC"

    def step(self, node: onnx.NodeProto) -> bool:
        """Rewrite one node; False where it disappears (a Transpose composed away)."""
        op = node.op_type
        if any(name in self.flat for name in node.input):
            return self.read_flat(node)
        pending: list[tuple[Perm, str]] = []
        live = 0
        file_inputs = list(node.input)
        for i, name in enumerate(node.input):
            if not name or name in self.const:
                continue
            live += 1
            rewritten, perm, origin = self.state.get(name, (name, None, ""))
            node.input[i] = rewritten
            if not _identity(perm):
                pending.append((perm, origin))
        if op == "Transpose" and node.input[0] not in self.const:
            given = attrs(node).get("perm")
            if given is None and not pending:
                return True  # the default (reversed axes) of a tensor of unknown rank: left
            outer = (tuple(int(p) for p in given) if given is not None
                     else tuple(reversed(range(len(pending[0][0])))))
            inner = pending[0][0] if pending else tuple(range(len(outer)))
            if sorted(outer) != list(range(len(inner))):
                raise NetgenError(f"node {node_name(node)!r} (Transpose): perm {list(outer)} is "
                                  f"not a permutation of the {len(inner)} axes of its input")
            composed = tuple(inner[i] for i in outer)
            origin = f"node {node_name(node)!r} (Transpose)"  # the last one to move it
            self.state[node.output[0]] = (node.input[0], None if _identity(composed) else composed,
                                          origin)
            return False
        if not pending:
            return True
        perm, origin = pending[0]
        if any(p != perm for p, _ in pending) or len(pending) != live:
            raise self.fail(perm, origin, f"node {node_name(node)!r} ({op}), which mixes layouts,")
        if op in UNARY:
            self._carry(node, perm, origin)
            return True
        if op in ELEMENTWISE:
            for i, name in enumerate(node.input):
                if name in self.const:
                    moved = self.permuted_constant(name, perm, len(perm))
                    if moved is None:
                        raise self.fail(perm, origin, f"node {node_name(node)!r} ({op}) with "
                                        f"constant {name!r}")
                    node.input[i] = moved
            self._carry(node, perm, origin)
            return True
        if op in ("Reshape", "Flatten") and self.flatten(node, file_inputs[0], perm, origin):
            return True
        handler = getattr(self, f"op_{op}", None)
        if handler is None or not handler(node, perm, origin):
            raise self.fail(perm, origin, f"node {node_name(node)!r} ({op})")
        return True

    def flatten(self, node: onnx.NodeProto, file_input: str, perm: Perm, origin: str) -> bool:
        """A Reshape or Flatten of a permuted map into (N, features): the rewritten map
        flattens in its own order; which file feature each one is stays pending."""
        before = self.types.get(file_input) if self.types else None
        after = self.types.get(node.output[0]) if self.types else None
        if (before is None or after is None or not before.known or not after.known
                or len(before.dims) != len(perm) or len(after.dims) != 2
                or perm[0] != 0 or after.dims[1] != int(np.prod(before.dims[1:]))):
            return False
        if node.op_type == "Flatten" and int(attrs(node).get("axis", 1)) != 1:
            return False
        rewritten = [before.dims[perm.index(k)] for k in range(len(perm))]
        # the file's map is transpose(rewritten, perm): its (h, w, c) element is the
        # rewritten (c, h, w) one, whose flat index the rewritten map holds there
        index = np.arange(int(np.prod(rewritten[1:]))).reshape(rewritten[1:])
        order = np.transpose(index, [p - 1 for p in perm[1:]]).reshape(-1)
        self.flat[node.output[0]] = (order, origin)
        self.state[node.output[0]] = (node.output[0], None, origin)
        return True

    def read_flat(self, node: onnx.NodeProto) -> bool:
        """A reader of a flattened channels-last map: an element-wise op carries the
        pending order, a MatMul or Gemm with a constant weight takes it into the weight."""
        flat = next(name for name in node.input if name in self.flat)
        order, origin = self.flat[flat]
        op, a = node.op_type, attrs(node)
        if op in UNARY:
            self.flat[node.output[0]] = (order, origin)
            return True
        weight = node.input[1] if len(node.input) > 1 else ""
        rows = 1 if op == "Gemm" and int(a.get("transB", 0)) else 0
        if (op in ("MatMul", "Gemm") and node.input[0] == flat and weight in self.const
                and not (op == "Gemm" and int(a.get("transA", 0)))):
            value = array(self.const[weight])
            if value is not None and value.ndim == 2 and value.shape[rows] == len(order):
                moved = np.empty_like(value)
                if rows:
                    moved[:, order] = value
                else:
                    moved[order] = value
                name = self._fresh(weight + "_nchw")
                self.new_initializers.append(numpy_helper.from_array(moved, name))
                node.input[1] = name
                return True
        raise self.flat_fail(flat, f"node {node_name(node)!r} ({op})")

    def flat_fail(self, flat: str, where: str) -> NetgenError:
        origin = self.flat[flat][1]
        return NetgenError(f"{origin}: a channels-last map flattened for a fully connected "
                           f"layer reaches {where}; only a MatMul or Gemm with a constant "
                           "weight can take its (H, W, C) feature order")

    def _carry(self, node: onnx.NodeProto, perm: Perm, origin: str) -> None:
        for out in node.output:
            if out:
                self.state[out] = (out, perm, origin)

    def op_Pad(self, node: onnx.NodeProto, perm: Perm, origin: str) -> bool:
        rank = len(perm)
        a = attrs(node)
        if len(node.input) > 3 and node.input[3]:
            axes = self._const_values(node.input[3])
            if axes is None:
                return False
            node.input[3] = self._int_initializer(node, [perm[int(v) % rank] for v in axes], "axes")
        elif "pads" in a:
            set_attr(node, "pads", self._permute_pads([int(p) for p in a["pads"]], perm))
        else:
            pads = self._const_values(node.input[1]) if len(node.input) > 1 else None
            if pads is None or len(pads) != 2 * rank:
                return False
            node.input[1] = self._int_initializer(node, self._permute_pads(pads, perm), "pads")
        self._carry(node, perm, origin)
        return True

    @staticmethod
    def _permute_pads(pads: list[int], perm: Perm) -> list[int]:
        rank = len(perm)
        out = [0] * (2 * rank)
        for i in range(rank):
            out[perm[i]] = int(pads[i])
            out[rank + perm[i]] = int(pads[rank + i])
        return out

    def _reduce(self, node: onnx.NodeProto, perm: Perm, origin: str) -> bool:
        rank = len(perm)
        a = attrs(node)
        in_attribute = "axes" in a
        if in_attribute:
            axes = [int(v) for v in a["axes"]]
        elif len(node.input) > 1 and node.input[1]:
            axes = self._const_values(node.input[1])
            if axes is None:
                return False
        else:
            axes = list(range(rank))  # every axis: the layout does not matter
        axes = sorted({int(v) % rank for v in axes})
        new_axes = sorted(perm[v] for v in axes)
        if in_attribute:
            set_attr(node, "axes", new_axes)
        elif len(node.input) > 1 and node.input[1]:
            node.input[1] = self._int_initializer(node, new_axes, "axes")
        if int(a.get("keepdims", 1)):
            self._carry(node, perm, origin)
            return True
        kept = [i for i in range(rank) if i not in axes]
        order = sorted(perm[i] for i in kept)
        rest = tuple(order.index(perm[i]) for i in kept)
        if not _identity(rest):
            self._carry(node, rest, origin)
        return True

    def op_Softmax(self, node: onnx.NodeProto, perm: Perm, origin: str) -> bool:
        default = -1 if self.opset >= 13 else 1
        axis = int(attrs(node).get("axis", default)) % len(perm)
        if self.opset < 13 and axis != len(perm) - 1:
            return False  # old Softmax flattens from `axis`: only the last axis is a transpose's
        set_attr(node, "axis", perm[axis])
        self._carry(node, perm, origin)
        return True

    op_LogSoftmax = op_Softmax

    def op_Concat(self, node: onnx.NodeProto, perm: Perm, origin: str) -> bool:
        set_attr(node, "axis", perm[int(attrs(node)["axis"]) % len(perm)])
        self._carry(node, perm, origin)
        return True

    def _const_values(self, name: str) -> list[int] | None:
        tensor = self.const.get(name)
        value = array(tensor) if tensor is not None else None
        return None if value is None else [int(v) for v in value.reshape(-1)]

    def _int_initializer(self, node: onnx.NodeProto, values: list[int], what: str) -> str:
        name = self._fresh(f"{node.output[0]}_{what}_nchw")
        tensor = numpy_helper.from_array(np.asarray(values, np.int64), name)
        self.new_initializers.append(tensor)
        self.const[name] = tensor
        return name


for _op in REDUCE:
    setattr(_Layout, f"op_{_op}", _Layout._reduce)


def to_channels_first(model: onnx.ModelProto) -> None:
    """Push every Transpose out of the model, in place (see the module docstring)."""
    if any(node.op_type == "Transpose" for node in model.graph.node):
        _Layout(model).run()


def input_layout(model: onnx.ModelProto) -> str:
    """"NHWC" where the normaliser made a channels-last input channels-first, else "NCHW"."""
    for entry in model.metadata_props:
        if entry.key == INPUT_LAYOUT_KEY:
            return entry.value
    return "NCHW"
