"""Zero padding of H and W (Keras's ZeroPadding2D, an ONNX Pad) made part of a layer.

- Before a Conv: zeros are what a convolution's own padding adds, so the Pad's amounts
  move into the Conv's pads (added to its own).
- Before a MaxPool whose input comes out of a ReLU: pooling pads with -inf, not zeros, but
  every window keeps at least one value of the map (pad < kernel) and those are >= 0, so
  the maximum is the same; the amounts move into the MaxPool's pads (ceil_mode 0 only, where
  both give the same number of windows).
- Any other zero Pad of H and W with the same amount on both sides of each axis becomes a
  fixed depthwise 1x1 convolution of weight 1 with that padding: Caffe has no Pad layer, and
  that convolution writes exactly the padded map (ResNet50V2's pool1 pads the raw conv1
  output, which is signed).

Pads of other axes, of other values or modes, stay and the importer refuses them by name.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from netgen.onnx.normalize.rewrite import (array, attrs, consumers,
                                           node_name, replace_nodes, set_attr)


class _Pads:
    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.graph = model.graph
        self.const = {t.name: t for t in self.graph.initializer}
        self.readers = consumers(self.graph)
        self.outputs = {o.name for o in self.graph.output}
        self.producer = {o: n for n in self.graph.node for o in n.output}
        self.removed: set[int] = set()
        self.new_initializers: list[onnx.TensorProto] = []
        self.taken = {t.name for t in self.graph.initializer}
        self.channels: dict[str, int] | None = None

    def spatial_zero_pads(self, node: onnx.NodeProto) -> list[int] | None:
        """[h_begin, w_begin, h_end, w_end] of a constant-zero Pad of H and W of an NCHW
        tensor, else None."""
        a = attrs(node)
        mode = a.get("mode", b"constant")
        if (mode.decode() if isinstance(mode, bytes) else mode) != "constant":
            return None
        if "pads" in a:
            pads = [int(p) for p in a["pads"]]
            value = float(a.get("value", 0.0))
        else:
            if len(node.input) < 2 or node.input[1] not in self.const:
                return None
            values = array(self.const[node.input[1]])
            if values is None:
                return None
            pads = [int(p) for p in values.reshape(-1)]
            value = 0.0
            if len(node.input) > 2 and node.input[2]:
                if node.input[2] not in self.const:
                    return None
                fill = array(self.const[node.input[2]])
                if fill is None or fill.size != 1:
                    return None
                value = float(fill.reshape(-1)[0])
        if len(node.input) > 3 and node.input[3]:
            return None
        if value != 0.0 or len(pads) != 8 or any(p < 0 for p in pads):
            return None
        if pads[0] or pads[1] or pads[4] or pads[5]:
            return None
        return [pads[2], pads[3], pads[6], pads[7]]

    def fold_into(self, pad: onnx.NodeProto, amounts: list[int]) -> bool:
        readers = self.readers.get(pad.output[0], [])
        if pad.output[0] in self.outputs or len(readers) != 1:
            return False
        layer = readers[0]
        if layer.input[0] != pad.output[0]:
            return False
        a = attrs(layer)
        auto_pad = a.get("auto_pad", b"NOTSET")
        if (auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad) not in ("NOTSET", ""):
            return False
        own = [int(p) for p in a.get("pads", [0, 0, 0, 0])]
        if len(own) != 4:
            return False
        total = [x + y for x, y in zip(own, amounts)]
        if layer.op_type == "MaxPool":
            source = self.producer.get(pad.input[0])
            kernel = [int(k) for k in a.get("kernel_shape", [])]
            if (source is None or source.op_type != "Relu" or int(a.get("ceil_mode", 0))
                    or len(kernel) != 2 or any(d != 1 for d in a.get("dilations", [1, 1]))
                    or any(total[i] >= kernel[i % 2] for i in range(4))):
                return False
        elif layer.op_type != "Conv":
            return False
        set_attr(layer, "pads", total)
        layer.input[0] = pad.input[0]
        self.removed.add(id(pad))
        return True

    def as_convolution(self, pad: onnx.NodeProto, amounts: list[int]) -> onnx.NodeProto | None:
        if amounts[0] != amounts[2] or amounts[1] != amounts[3]:
            return None
        channels = self.channel_counts().get(pad.input[0])
        if not channels:
            return None
        name = node_name(pad)
        weight = f"{name}.weight"
        while weight in self.taken:
            weight += "_"
        self.taken.add(weight)
        self.new_initializers.append(numpy_helper.from_array(np.ones((channels, 1, 1, 1), np.float32), weight))
        return onnx.helper.make_node("Conv", [pad.input[0], weight], [pad.output[0]], name=name,
                                     kernel_shape=[1, 1], pads=amounts, group=channels)

    def channel_counts(self) -> dict[str, int]:
        """Axis 1 of each tensor, from ONNX shape inference (run once, only when needed)."""
        if self.channels is None:
            self.channels = {}
            try:
                inferred = onnx.shape_inference.infer_shapes(self.model)
            except Exception:  # a graph shape inference cannot follow: nothing to convert
                return self.channels
            for value in list(inferred.graph.value_info) + list(inferred.graph.input):
                dims = value.type.tensor_type.shape.dim
                if len(dims) == 4 and dims[1].HasField("dim_value"):
                    self.channels[value.name] = int(dims[1].dim_value)
        return self.channels

    def run(self) -> bool:
        replaced: dict[int, onnx.NodeProto] = {}
        for node in self.graph.node:
            if node.op_type != "Pad":
                continue
            amounts = self.spatial_zero_pads(node)
            if amounts is None or self.fold_into(node, amounts):
                continue
            conv = self.as_convolution(node, amounts)
            if conv is not None:
                replaced[id(node)] = conv
        if not self.removed and not replaced:
            return False
        nodes = [replaced.get(id(n), n) for n in self.graph.node if id(n) not in self.removed]
        replace_nodes(self.graph, nodes)
        self.graph.initializer.extend(self.new_initializers)
        return True


def fold_pads(model: onnx.ModelProto) -> None:
    """Fold or replace the zero Pads of the module docstring, in place."""
    _Pads(model).run()  # the constants it replaced go in prune_unused
