"""Reading SE and ResNet-D networks others wrote.

- SENet's Caffe files: reduced fixtures in tests/fixtures/senet/, cut verbatim from the
  published SE-ResNet-50 and SENet-154 deploy files (Sigmoid in place, Axpy, global pooling
  with `engine: CAFFE`; SENet-154's 64-64-128 stem, 3x3 stride-2 projections, dropout):
  read, counted, converted to ONNX that ONNX Runtime runs (Axpy -> Mul + Add), and on to
  stock Caffe files that OpenCV runs without Axpy.
- ONNX graphs spelling an SE unit the ways exporters do (ReduceMean, GlobalAveragePool or an
  AveragePool over the whole map; Conv, Gemm or MatMul + Add for the two fully connected
  steps; Sigmoid; a broadcast Mul, followed by the shortcut's Add or not) and ResNet-D's
  shortcut (AveragePool ceil_mode=1, count_include_pad=0, on odd maps too), converted with
  plain `netgen convert`: ORT on the source vs OpenCV on the Caffe files and ORT on the ONNX
  written back, relative error <= 1e-4.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from caffe_roundtrip import relative_error
from onnx import TensorProto, helper, numpy_helper

from netgen.arch.builder import build
from netgen.arch.counting import count
from netgen.arch.spec import spec_from_name
from netgen.arch.weights import initial_weights
from netgen.caffe import proto as caffe_proto
from netgen.caffe.reader import read_net, read_prototxt
from netgen.jobs.convert import convert
from netgen.onnx.export import to_onnx
from netgen.onnx.reader import import_model
from netgen.onnx.runtime import create_session

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "senet"
SE_RESNET = FIXTURES / "SE-ResNet-reduced.prototxt"
SENET154 = FIXTURES / "SENet-154-reduced.prototxt"
TOLERANCE = 1e-4



def ort_outputs(model: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    return create_session(model, "cpu").run(x)


def last_layer(prototxt: Path) -> str:
    """The layer writing the net's (first) output: cv2.dnn forwards to layer names."""
    graph = read_prototxt(prototxt)
    return next(l.name for l in reversed(graph.layers) if graph.outputs[0] in l.tops)


def opencv_output(prototxt: Path, caffemodel: Path, x: np.ndarray, blob: str) -> np.ndarray:
    cv2 = pytest.importorskip("cv2")
    net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.enableWinograd(False)
    net.setInput(x)
    return np.asarray(net.forward(blob))


# ------------------------------------------------------------------ SENet's Caffe files


def test_senet_fixture_reads_with_senets_layers():
    reading = read_net(SE_RESNET)
    graph = reading.graph
    types = count(graph).layer_types
    assert types["Axpy"] == 5 and types["Sigmoid"] == 5
    prob = graph.layer("conv2_1_prob")
    assert prob.type == "Sigmoid" and prob.tops == prob.bottoms == ("conv2_1_1x1_up",)
    axpy = graph.layer("conv2_1")
    assert axpy.bottoms == ("conv2_1_1x1_up", "conv2_1_1x1_increase", "conv2_1_1x1_proj")
    assert axpy.top_shapes[0] == (1, 256, 16, 16)
    pool = graph.layer("conv2_1_global_pool")
    assert pool.param.global_pooling and pool.param.pool == "AVE"  # engine: CAFFE read
    assert graph.layer("conv3_1_1x1_reduce").param.stride == (2, 2)  # SE-ResNet: on the 1x1
    assert graph.layer("conv2_1_1x1_down").param.bias_term
    # stages from SENet's names: conv2_1_* is conv2_x, the stem conv1, the head head
    assert graph.layer("conv2_1_1x1_down").stage == "conv2_x"
    assert graph.layer("conv3_2/relu").stage == "conv3_x"
    assert graph.layer("pool1/3x3_s2").stage == "conv1"
    assert graph.layer("classifier").stage == "head"


def test_senet_fixture_is_netgens_se_resnet_layer_for_layer():
    """The published layout is netgen's seresnet50-stride1x1-msrapool: same types,
    parameters, shapes and wiring, layer for layer, under SENet's names (the fixture keeps
    conv1 to conv3_2 of SE-ResNet-50)."""
    theirs = read_prototxt(SE_RESNET)
    spec = spec_from_name("seresnet50-stride1x1-msrapool-input64")
    ours = build(spec)
    senet = {"1x1_reduce": "branch2a", "3x3": "branch2b", "1x1_increase": "branch2c",
             "1x1_proj": "branch1", "global_pool": "se_pool", "1x1_down": "se_down",
             "1x1_up": "se_up", "prob": "se_prob"}

    def netgen_name(name: str) -> str:
        stem = {"conv1/7x7_s2": "conv1", "conv1/7x7_s2/bn": "bn_conv1",
                "conv1/7x7_s2/bn/scale": "scale_conv1", "conv1/relu_7x7_s2": "conv1_relu",
                "pool1/3x3_s2": "pool1", "data": "data"}
        if name in stem:
            return stem[name]
        match = re.match(r"^conv(\d)_(\d)(.*)$", name)
        stage, index, rest = match.groups()
        block = f"{stage}{'abc'[int(index) - 1]}"
        if not rest:
            return f"res{block}"
        if rest == "/relu":
            return f"res{block}_relu"
        part, _, suffix = rest.lstrip("_").partition("/")
        unit = senet[part]
        if unit.startswith("se_"):
            return f"res{block}_{unit}" + ("_relu" if suffix == "relu" else "")
        return {"": f"res{block}_{unit}", "bn": f"bn{block}_{unit}",
                "bn/scale": f"scale{block}_{unit}", "relu": f"res{block}_{unit}_relu"}[suffix]

    body = [layer for layer in theirs.layers if layer.stage != "head"]
    names = [layer.name for layer in ours.layers]
    assert sorted(netgen_name(layer.name) for layer in body) == \
        sorted(names[:names.index("res3b_relu") + 1])
    for layer in body:
        mine = ours.layer(netgen_name(layer.name))
        assert (layer.type, layer.param, layer.top_shapes, layer.blob_shapes) == \
               (mine.type, mine.param, mine.top_shapes, mine.blob_shapes), layer.name
        assert tuple(netgen_name(b) for b in layer.bottoms) == mine.bottoms, layer.name


@pytest.mark.parametrize("fixture", [SE_RESNET, SENET154])
def test_senet_fixture_converts_and_runs_everywhere(tmp_path, fixture):
    """prototxt (Axpy) -> ONNX (Mul + Add) in ORT -> stock Caffe files in OpenCV: the
    recipe that runs a SENet file without SENet's Caffe."""
    onnx_path = tmp_path / "se.onnx"
    convert(fixture, None, onnx_path)
    model = onnx.load(str(onnx_path))
    onnx.checker.check_model(model, full_check=True)
    ops = {node.op_type for node in model.graph.node}
    assert {"Sigmoid", "Mul", "Add", "GlobalAveragePool"} <= ops
    x = np.random.default_rng(3).standard_normal((2, 3, 64, 64)).astype(np.float32)
    want = ort_outputs(model, x)["classifier"]
    assert np.isfinite(want).all() and not np.allclose(want[0], want[1])
    # and on to stock Caffe: no Axpy, OpenCV runs it, the numbers are ORT's
    deploy = tmp_path / "stock" / "deploy.prototxt"
    convert(onnx_path, None, deploy)
    net = caffe_proto.parse_net(deploy.read_text(), "deploy")
    assert "Axpy" not in {layer.type for layer in net.layer}
    got = opencv_output(deploy, deploy.with_name("model.caffemodel"), x, "classifier")
    assert relative_error(got, want) <= TOLERANCE
    # the stock files read back to the same network (Axpy folded again)
    assert count(read_prototxt(deploy)).layer_types["Axpy"] == \
        count(read_prototxt(fixture)).layer_types["Axpy"]


def test_senet154_fixture_stem_projection_and_dropout():
    graph = read_prototxt(SENET154)
    stem = [graph.layer(f"conv1_{i}/3x3{'_s2' if i == 1 else ''}") for i in (1, 2, 3)]
    assert [c.param.num_output for c in stem] == [64, 64, 128]
    assert stem[0].param.stride == (2, 2)
    proj = graph.layer("conv3_1_1x1_proj")
    assert (proj.param.kernel, proj.param.stride, proj.param.pad) == ((3, 3), (2, 2), (1, 1))
    assert graph.layer("conv2_1_3x3").param.group == 64
    assert graph.layer("pool5/dropout_7x7_s1").type == "Dropout"
    assert count(graph).layer_types["Axpy"] == 4


# ------------------------------------------------------------------ ONNX spellings of SE


def _value(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


class _Graph:
    """A small ONNX graph written by hand, with deterministic weights."""

    def __init__(self, seed: int):
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.rng = np.random.default_rng(seed)
        self.n = 0

    def tensor(self, shape, scale=None) -> str:
        self.n += 1
        name = f"w{self.n}"
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        value = self.rng.standard_normal(shape) * (scale or np.sqrt(2.0 / fan_in))
        self.inits.append(numpy_helper.from_array(value.astype(np.float32), name))
        return name

    def const(self, value, dtype=np.int64) -> str:
        self.n += 1
        name = f"c{self.n}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def op(self, op, inputs, **attrs) -> str:
        self.n += 1
        out = f"t{self.n}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"{op}_{self.n}", **attrs))
        return out

    def conv(self, x, c_in, c_out, k=1, stride=1, bias=True) -> str:
        inputs = [x, self.tensor((c_out, c_in, k, k))]
        if bias:
            inputs.append(self.tensor((c_out,), 0.1))
        return self.op("Conv", inputs, kernel_shape=[k, k], strides=[stride, stride],
                       pads=[k // 2] * 4)

    def bn(self, x, c) -> str:
        return self.op("BatchNormalization", [
            x, self.tensor((c,), 0.2), self.tensor((c,), 0.1), self.tensor((c,), 0.1),
            self.const(self.rng.uniform(0.5, 1.5, c), np.float32)], epsilon=1e-5)

    def model(self, x_shape, output, opset=17) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "se", [_value("x", x_shape)],
                                  [_value(output, [1, 10])], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        return model


def _se_gate(g: _Graph, x: str, c: int, r: int, style: str, size: int) -> str:
    """The excitation of `x` (C channels), N x C x 1 x 1, in an exporter's spelling."""
    if style == "timm":  # x.mean((2, 3), keepdim=True), Conv fc1 / fc2 with bias
        s = g.op("ReduceMean", [x], axes=[2, 3], keepdims=1)
        s = g.op("Relu", [g.conv(s, c, r)])
        return g.op("Sigmoid", [g.conv(s, r, c)])
    if style == "linear":  # GlobalAveragePool, view(b, c), Linear, ReLU, Linear, sigmoid, view
        s = g.op("Flatten", [g.op("GlobalAveragePool", [x])], axis=1)
        s = g.op("Relu", [g.op("Gemm", [s, g.tensor((r, c)), g.tensor((r,), 0.1)], transB=1)])
        s = g.op("Sigmoid", [g.op("Gemm", [s, g.tensor((c, r)), g.tensor((c,), 0.1)], transB=1)])
        return g.op("Unsqueeze", [s, g.const([2, 3])])
    if style == "matmul":  # F.avg_pool2d(x, size), MatMul + Add, reshape to N x C x 1 x 1
        s = g.op("AveragePool", [x], kernel_shape=[size, size], strides=[size, size])
        s = g.op("Reshape", [s, g.const([1, c])])
        s = g.op("Relu", [g.op("Add", [g.op("MatMul", [s, g.tensor((c, r))]),
                                       g.tensor((r,), 0.1)])])
        s = g.op("Add", [g.op("MatMul", [s, g.tensor((r, c))]), g.tensor((c,), 0.1)])
        return g.op("Reshape", [g.op("Sigmoid", [s]), g.const([1, c, 1, 1])])
    raise AssertionError(style)


def se_block_model(style: str, gate_first: bool, avg_down: bool, size: int,
                   added: bool = True) -> onnx.ModelProto:
    """stem conv; one block: conv-BN-ReLU, conv-BN (stride 2), SE, + projection (ResNet-D's
    pooled one or a strided 1x1), ReLU; global pooling and a classifier."""
    g = _Graph(seed=len(style) + 10 * gate_first + 100 * avg_down + size)
    c0, c = 8, 16
    x = g.op("Relu", [g.bn(g.conv("x", 3, c0, 3, bias=False), c0)])
    y = g.op("Relu", [g.bn(g.conv(x, c0, c, 3, bias=False), c)])
    y = g.bn(g.conv(y, c, c, 3, 2, bias=False), c)
    out = (size + 1) // 2
    gate = _se_gate(g, y, c, 4, style, out)
    y = g.op("Mul", [gate, y] if gate_first else [y, gate])
    if added:
        if avg_down:
            s = g.op("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1,
                     count_include_pad=0)
            s = g.bn(g.conv(s, c0, c, 1, bias=False), c)
        else:
            s = g.bn(g.conv(x, c0, c, 1, 2, bias=False), c)
        y = g.op("Relu", [g.op("Add", [s, y] if gate_first else [y, s])])
    else:  # the product read by something else than an Add: the stock two-bottom Scale
        y = g.op("Relu", [y])
    y = g.op("Flatten", [g.op("GlobalAveragePool", [y])], axis=1)
    y = g.op("Gemm", [y, g.tensor((10, c)), g.tensor((10,), 0.1)], transB=1)
    return g.model([1, 3, size, size], y)


CASES = [("timm", False, True, 14), ("timm", True, True, 13), ("linear", True, False, 12),
         ("linear", False, True, 9), ("matmul", False, False, 14), ("matmul", True, True, 11)]


@pytest.mark.parametrize("style, gate_first, avg_down, size", CASES)
def test_onnx_se_and_d_convert_exactly(tmp_path, style, gate_first, avg_down, size):
    model = se_block_model(style, gate_first, avg_down, size)
    source = tmp_path / "source.onnx"
    onnx.save(model, str(source))
    graph, _ = import_model(model)
    types = count(graph).layer_types
    assert types["Axpy"] == 1 and types["Sigmoid"] == 1 and "Eltwise" not in types
    if avg_down:
        pool = next(l for l in graph.layers if l.type == "Pooling" and l.param.kernel == (2, 2))
        assert (pool.param.pool, pool.param.stride, pool.param.pad, pool.param.round_mode) == \
               ("AVE", (2, 2), (0, 0), "CEIL")
        assert pool.top_shapes[0][2:] == ((size + 1) // 2,) * 2
    x = np.random.default_rng(size).standard_normal((1, 3, size, size)).astype(np.float32)
    want = next(iter(ort_outputs(model, x).values()))
    deploy = tmp_path / "caffe" / "deploy.prototxt"
    convert(source, None, deploy)  # plain netgen convert
    assert "Axpy" not in deploy.read_text()
    got = opencv_output(deploy, deploy.with_name("model.caffemodel"), x, last_layer(deploy))
    assert relative_error(got.reshape(want.shape), want) <= TOLERANCE
    back = tmp_path / "back.onnx"
    convert(deploy, deploy.with_name("model.caffemodel"), back)
    again = next(iter(ort_outputs(onnx.load(str(back)), x).values()))
    assert relative_error(again.reshape(want.shape), want) <= TOLERANCE


def test_onnx_gate_product_without_add_is_a_two_bottom_scale(tmp_path):
    model = se_block_model("timm", False, False, 10, added=False)
    graph, _ = import_model(model)
    scale = next(l for l in graph.layers if l.type == "Scale" and len(l.bottoms) == 2)
    assert scale.param.axis == 0
    flat = next(l for l in graph.layers if l.tops[0] == scale.bottoms[1])
    assert flat.type == "Flatten" and flat.top_shapes[0] == (1, 16)
    source = tmp_path / "source.onnx"
    onnx.save(model, str(source))
    deploy = tmp_path / "caffe" / "deploy.prototxt"
    convert(source, None, deploy)
    x = np.random.default_rng(0).standard_normal((1, 3, 10, 10)).astype(np.float32)
    want = next(iter(ort_outputs(model, x).values()))
    got = opencv_output(deploy, deploy.with_name("model.caffemodel"), x, last_layer(deploy))
    assert relative_error(got.reshape(want.shape), want) <= TOLERANCE


@pytest.mark.parametrize("name", ["seresnet26d", "seresnext50-32x4d-msrapool",
                                  "cifar10-seresnet20"])
def test_netgens_own_onnx_reads_back_to_the_same_ir(name):
    graph = build(spec_from_name(name))
    again, _ = import_model(to_onnx(graph, initial_weights(graph)))
    assert [(l.name, l.type, l.bottoms, l.tops, l.param, l.top_shapes, l.stage)
            for l in again.layers] == \
           [(l.name, l.type, l.bottoms, l.tops, l.param, l.top_shapes, l.stage)
            for l in graph.layers]
