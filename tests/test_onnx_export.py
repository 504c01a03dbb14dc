"""The ONNX emitter against an independent numpy forward pass written from Caffe's sources.

The reference below runs the IR with Caffe's own arithmetic (loops over pooling windows with
Caffe's clipping and divisors, BatchNorm's factor, in-place blobs overwritten in a dict), so
it shares nothing with the emitter's translation; ORT's outputs must agree within 1e-4.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from netgen.arch import ir
from netgen.arch.builder import build
from netgen.arch.shapes import infer
from netgen.arch.spec import make_spec
from netgen.arch.weights import initial_weights
from netgen.errors import NetgenError
from netgen.onnx.export import (
    BATCH_DIM,
    MAX_OPSET,
    MIN_OPSET,
    dims,
    ir_version_for,
    save_onnx,
    shape_mismatches,
    tensor_plan,
    to_onnx,
)

# --------------------------------------------------------------------------- numpy Caffe


def _conv(x, w, b, p: ir.ConvolutionParam):
    n, c, h, wd = x.shape
    ph, pw = p.pad
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    kh, kw = p.kernel
    dh, dw = p.dilation
    sh, sw = p.stride
    oh = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    ow = (wd + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    cg, mg = c // p.group, p.num_output // p.group
    out = np.zeros((n, p.num_output, oh, ow), np.float64)
    for g in range(p.group):
        xs = xp[:, g * cg:(g + 1) * cg]
        ws = w[g * mg:(g + 1) * mg].astype(np.float64)
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh,
                           j * dw: j * dw + sw * (ow - 1) + 1: sw]
                out[:, g * mg:(g + 1) * mg] += np.einsum("nchw,mc->nmhw", patch, ws[:, :, i, j])
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def _pool(x, p: ir.PoolingParam):
    """Caffe's PoolingLayer::Forward_cpu, window by window."""
    n, c, h, w = x.shape
    if p.global_pooling:
        kh, kw, sh, sw, ph, pw = h, w, 1, 1, 0, 0
    else:
        (kh, kw), (sh, sw), (ph, pw) = p.kernel, p.stride, p.pad
    oh = int(math.ceil((h + 2 * ph - kh) / sh)) + 1
    ow = int(math.ceil((w + 2 * pw - kw) / sw)) + 1
    if ph or pw:
        if (oh - 1) * sh >= h + ph:
            oh -= 1
        if (ow - 1) * sw >= w + pw:
            ow -= 1
    out = np.zeros((n, c, oh, ow), np.float64)
    for i in range(oh):
        for j in range(ow):
            hs, ws = i * sh - ph, j * sw - pw
            if p.pool == "MAX":
                he, we = min(hs + kh, h), min(ws + kw, w)
                hs, ws = max(hs, 0), max(ws, 0)
                out[:, :, i, j] = x[:, :, hs:he, ws:we].max(axis=(2, 3))
            else:
                he, we = min(hs + kh, h + ph), min(ws + kw, w + pw)
                size = (he - hs) * (we - ws)
                hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
                out[:, :, i, j] = x[:, :, hs:he, ws:we].sum(axis=(2, 3)) / size
    return out


def _deconv(x, w, b, p: ir.ConvolutionParam):
    """Caffe's DeconvolutionLayer::Forward_cpu (col2im of the transposed product), input pixel
    by input pixel: each adds its group's kernel, scaled, at stride * position - pad."""
    n, c, h, wd = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = p.kernel, p.stride, p.pad, p.dilation
    oh, ow = sh * (h - 1) + dh * (kh - 1) + 1 - 2 * ph, sw * (wd - 1) + dw * (kw - 1) + 1 - 2 * pw
    cin, cout = c // p.group, p.num_output // p.group
    full = np.zeros((n, p.num_output, oh + 2 * ph, ow + 2 * pw), np.float64)
    for g in range(p.group):
        xs = x[:, g * cin:(g + 1) * cin]
        ws = w[g * cin:(g + 1) * cin]  # (cin, cout, kh, kw)
        for i in range(h):
            for j in range(wd):
                contrib = np.einsum("nc,cokl->nokl", xs[:, :, i, j], ws)
                for ki in range(kh):
                    for kj in range(kw):
                        full[:, g * cout:(g + 1) * cout, i * sh + ki * dh, j * sw + kj * dw] += \
                            contrib[:, :, ki, kj]
    out = full[:, :, ph:ph + oh, pw:pw + ow]
    return out + b.reshape(1, -1, 1, 1) if b is not None else out


def _axis_view(blob, shape, axis):
    axis %= len(shape)
    return blob.reshape(blob.shape + (1,) * (len(shape) - axis - blob.ndim))


def caffe_forward(graph: ir.Graph, weights, data: np.ndarray) -> dict[str, np.ndarray]:
    """Run `graph` the way Caffe's CPU layers do, in float64; returns every blob at the end."""
    blobs = {graph.inputs[0].name: data.astype(np.float64)}
    for layer in graph.layers:
        xs = [blobs[b] for b in layer.bottoms]
        wb = [np.asarray(a, np.float64) for a in weights.get(layer.name, [])]
        p = layer.param
        t = layer.type
        if t == "Convolution":
            ys = [_conv(xs[0], wb[0], wb[1] if p.bias_term else None, p)]
        elif t == "Deconvolution":
            ys = [_deconv(xs[0], wb[0], wb[1] if p.bias_term else None, p)]
        elif t == "Pooling":
            ys = [_pool(xs[0], p)]
        elif t == "BatchNorm":
            f = wb[2].reshape(-1)[0]
            s = 0.0 if f == 0 else 1.0 / f
            shape = (1, -1) + (1,) * (xs[0].ndim - 2)
            mean, var = (wb[0] * s).reshape(shape), (wb[1] * s).reshape(shape)
            ys = [(xs[0] - mean) / np.sqrt(var + p.eps)]
        elif t == "Scale" and len(xs) == 2:  # the factor as a second blob
            factor = xs[1].reshape(xs[1].shape + (1,) * (xs[0].ndim - p.axis - xs[1].ndim))
            ys = [xs[0] * factor]
        elif t == "Sigmoid":
            ys = [1.0 / (1.0 + np.exp(-xs[0]))]
        elif t == "Axpy":  # SENet's a * x + y
            ys = [xs[0] * xs[1] + xs[2]]
        elif t == "Scale":
            y = xs[0] * _axis_view(wb[0], xs[0].shape, p.axis)
            if p.bias_term:
                y = y + _axis_view(wb[1], xs[0].shape, p.axis)
            ys = [y]
        elif t == "Bias":
            ys = [xs[0] + _axis_view(wb[0], xs[0].shape, p.axis)]
        elif t == "ReLU":
            ys = [np.maximum(xs[0], 0) + p.negative_slope * np.minimum(xs[0], 0)]
        elif t == "PReLU":
            slope = wb[0].reshape(()) if p.channel_shared else wb[0].reshape(
                (1, -1) + (1,) * (xs[0].ndim - 2))
            ys = [np.maximum(xs[0], 0) + slope * np.minimum(xs[0], 0)]
        elif t == "Eltwise":
            if p.operation == "SUM":
                coeff = p.coeff or (1.0,) * len(xs)
                ys = [sum(c * x for c, x in zip(coeff, xs))]
            elif p.operation == "PROD":
                ys = [math.prod(xs)]
            else:
                ys = [np.maximum.reduce(xs)]
        elif t == "InnerProduct":
            axis = p.axis % xs[0].ndim
            flat = xs[0].reshape(xs[0].shape[:axis] + (-1,))
            w = wb[0].T if p.transpose else wb[0]
            y = flat @ w.T
            if p.bias_term:
                y = y + wb[1]
            ys = [y]
        elif t == "Softmax":
            z = xs[0] - xs[0].max(axis=p.axis, keepdims=True)
            e = np.exp(z)
            ys = [e / e.sum(axis=p.axis, keepdims=True)]
        elif t == "Concat":
            ys = [np.concatenate(xs, axis=p.axis)]
        elif t == "Power":
            ys = [(p.shift + p.scale * xs[0]) ** p.power]
        elif t == "MVN":  # BVLC's MVNLayer: x - mean, then / (sqrt(var) + eps)
            axes = (1, 2, 3) if p.across_channels else (2, 3)
            y = xs[0] - xs[0].mean(axis=axes, keepdims=True)
            if p.normalize_variance:
                y = y / (np.sqrt((y * y).mean(axis=axes, keepdims=True)) + p.eps)
            ys = [y]
        elif t == "Dropout":
            ys = [xs[0]]
        elif t == "Flatten":
            s = xs[0].shape
            a, e = p.axis % len(s), p.end_axis % len(s)
            ys = [xs[0].reshape(s[:a] + (-1,) + s[e + 1:])]
        elif t in ("Reshape",):
            ys = [xs[0].reshape((xs[0].shape[0],) + layer.top_shapes[0][1:])]
        elif t == "Slice":
            axis = p.axis % xs[0].ndim
            points = list(np.cumsum([s[axis] for s in layer.top_shapes]))[:-1]
            ys = np.split(xs[0], points, axis=axis)
        elif t == "Split":
            ys = [xs[0]] * len(layer.tops)
        else:
            raise AssertionError(t)
        for top, y in zip(layer.tops, ys):
            blobs[top] = y
    return blobs


def random_weights(graph: ir.Graph, seed: int = 1):
    """Weights that exercise every blob: BN statistics with factor 2, Scale gamma/beta != 1/0."""
    rng = np.random.default_rng(seed)
    out = {}
    for layer in graph.layers:
        if not layer.blob_shapes:
            continue
        if layer.fixed:
            out[layer.name] = [np.ones(s, np.float32) for s in layer.blob_shapes]
        elif layer.type == "BatchNorm":
            c = layer.blob_shapes[0]
            out[layer.name] = [rng.normal(0, 0.2, c).astype(np.float32),
                               rng.uniform(1.0, 3.0, c).astype(np.float32),
                               np.array([2.0], np.float32)]
        elif layer.type == "Scale":
            out[layer.name] = [rng.uniform(0.5, 1.0, s).astype(np.float32)
                               if i == 0 else rng.normal(0, 0.1, s).astype(np.float32)
                               for i, s in enumerate(layer.blob_shapes)]
        else:
            blobs = []
            for s in layer.blob_shapes:
                fan_in = math.prod(s[1:]) if len(s) > 1 else 1
                blobs.append(rng.normal(0, math.sqrt(2.0 / fan_in), s).astype(np.float32))
            out[layer.name] = blobs
    return out


def ort_run(model: onnx.ModelProto, data: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {session.get_inputs()[0].name: data})))


def assert_close(got, want, tol=1e-4):
    assert got.shape == want.shape, (got.shape, want.shape)
    scale = max(1.0, float(np.abs(want).max()))
    err = float(np.abs(got.astype(np.float64) - want).max())
    assert err <= tol * scale, f"max abs diff {err} > {tol} * {scale}"


# --------------------------------------------------------------------------- paper nets


@pytest.mark.parametrize("dataset,depth,kwargs,size", [
    ("cifar10", 8, {}, None),
    ("cifar10", 20, {}, None),
    ("imagenet", 18, {"shortcut": "B"}, 64),
    ("imagenet", 18, {"shortcut": "A"}, 64),
    ("imagenet", 50, {"shortcut": "C", "stages": (1, 1, 1, 1)}, 64),
])
def test_forward_matches_numpy_caffe(dataset, depth, kwargs, size):
    spec = make_spec(dataset, None if "stages" in kwargs else depth, input_size=size, **kwargs)
    graph = build(spec)
    weights = random_weights(graph)
    data = np.random.default_rng(7).standard_normal((2,) + graph.inputs[0].shape[1:],
                                                    dtype=np.float32)
    want = caffe_forward(graph, weights, data)
    got = ort_run(to_onnx(graph, weights), data)
    fc = f"fc{spec.num_classes}"
    assert list(got) == [fc, "prob"]
    assert_close(got[fc], want[fc])
    assert_close(got["prob"], want["prob"], 1e-5)


def test_option_a_realization_is_slice_where_concat():
    graph = build(make_spec("cifar10", 20))
    model = to_onnx(graph, initial_weights(graph))
    ops = {n.name: n.op_type for n in model.graph.node}
    assert ops["res3a_branch1_sub"] == "Slice"
    assert ops["res3a_branch1_zeros"] == "Where"
    assert ops["res3a_branch1"] == "Concat"
    # the subsample is a constant of the realization: no initializer for it
    assert not any(t.name.startswith("res3a_branch1_sub") for t in model.graph.initializer)
    # and the zeros stay zeros where the input is inf or NaN (x * 0 would give NaN)
    tiny = infer("z", [ir.Blob("data", (1, 2, 2, 2))], [
        ir.Layer("zeros", "Power", ("data",), ("zeros",), ir.PowerParam(scale=0.0))])
    data = np.array([np.inf, -np.inf, np.nan, 1.0] * 2, np.float32).reshape(1, 2, 2, 2)
    np.testing.assert_array_equal(ort_run(to_onnx(tiny, {}), data)["zeros"], np.zeros_like(data))


def test_batchnorm_scale_fused_names_and_ssa():
    graph = build(make_spec("imagenet", 50))
    model = to_onnx(graph, initial_weights(graph))
    nodes = model.graph.node
    types = [n.op_type for n in nodes]
    assert types.count("BatchNormalization") == 53
    assert "Mul" not in types and "Add" in types  # Scale fused away; Eltwise -> Add
    outputs = [o for n in nodes for o in n.output]
    assert len(outputs) == len(set(outputs)), "every ONNX tensor is written once"
    names = {n.name for n in nodes}
    assert {"conv1", "bn_conv1", "conv1_relu", "pool1", "res2a_branch2a", "res2a",
            "res5c_relu", "pool5", "fc1000", "prob"} <= names
    inits = {t.name: tuple(t.dims) for t in model.graph.initializer}
    assert inits["res2a_branch2a.weight"] == (64, 64, 1, 1)
    assert inits["bn2a_branch2a.mean"] == (64,) and inits["bn2a_branch2a.var"] == (64,)
    assert inits["scale2a_branch2a.weight"] == (64,) and inits["scale2a_branch2a.bias"] == (64,)
    assert inits["conv1.bias"] == (64,)  # MSRA's ResNet-50 conv1 has a bias
    assert inits["fc1000.weight"] == (1000, 2048) and inits["fc1000.bias"] == (1000,)
    bn = next(n for n in nodes if n.name == "bn_conv1")
    assert list(bn.input) == ["conv1", "scale_conv1.weight", "scale_conv1.bias",
                              "bn_conv1.mean", "bn_conv1.var"]
    assert list(bn.output) == ["scale_conv1"]
    relu = next(n for n in nodes if n.name == "conv1_relu")
    assert list(relu.input) == ["scale_conv1"] and list(relu.output) == ["conv1_relu"]
    assert [dims(o) for o in model.graph.output] == [(BATCH_DIM, 1000), (BATCH_DIM, 1000)]
    assert dims(model.graph.input[0]) == (BATCH_DIM, 3, 224, 224)


def test_batchnorm_statistics_divided_by_factor_and_zero_factor():
    graph = infer("bn", [ir.Blob("data", (1, 3, 4, 4))], [
        ir.Layer("bn", "BatchNorm", ("data",), ("data",), ir.BatchNormParam(eps=1e-3)),
        ir.Layer("bn0", "BatchNorm", ("data",), ("b",), ir.BatchNormParam()),
        ir.Layer("sc", "Scale", ("b",), ("b",), ir.ScaleParam(bias_term=False)),
    ])
    mean, var = np.array([1.0, -2.0, 0.5], np.float32), np.array([4.0, 9.0, 1.0], np.float32)
    weights = {"bn": [mean * 4, var * 4, np.array([4.0], np.float32)],
               "bn0": [mean, var, np.array([0.0], np.float32)],
               "sc": [np.array([2.0, 3.0, 4.0], np.float32)]}
    model = to_onnx(graph, weights)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    np.testing.assert_array_equal(inits["bn.mean"], mean)
    np.testing.assert_array_equal(inits["bn.var"], var)
    np.testing.assert_array_equal(inits["bn0.mean"], np.zeros(3))  # factor 0 -> statistics 0
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    got = ort_run(model, x)
    want = caffe_forward(graph, weights, x)
    assert_close(got["sc"], want["b"])
    # a hand-written value: channel 1 of the first BN, then the zero-factor BN and Scale 3
    v = x[0, 1, 0, 0]
    first = (v + 2.0) / math.sqrt(9.0 + 1e-3)
    assert abs(got["sc"][0, 1, 0, 0] - 3.0 * first / math.sqrt(1e-5)) < 1e-2


# --------------------------------------------------------------------------- pooling


def _pool_graph(size, kernel, stride, pad, pool="MAX"):
    return infer("pool", [ir.Blob("data", (1, 2, size, size))], [
        ir.Layer("pool", "Pooling", ("data",), ("pool",),
                 ir.PoolingParam(pool, (kernel, kernel), (stride, stride), (pad, pad))),
    ])


@pytest.mark.parametrize("pool", ["MAX", "AVE"])
@pytest.mark.parametrize("size,kernel,stride,pad,out,ceil", [
    (112, 3, 2, 0, 56, 1),   # ResNet's pool1: ceil 56, floor would be 55
    (6, 3, 2, 1, 4, 1),      # pad > 0, rounds up, last window overhangs the padding
    (5, 3, 2, 1, 3, 0),      # pad > 0, exact fit
    (4, 3, 3, 2, 2, 0),      # Caffe drops the last window (it starts in the padding)
    (7, 7, 1, 0, 1, 0),      # pool5
])
def test_pooling_sizes_and_values(pool, size, kernel, stride, pad, out, ceil):
    graph = _pool_graph(size, kernel, stride, pad, pool)
    assert graph.layers[0].top_shapes[0][2] == out
    model = to_onnx(graph, {})
    node = model.graph.node[0]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["ceil_mode"] == ceil
    if pool == "AVE":
        # Without padding, a last window overhanging the input is divided by its part
        # inside, as Caffe does: ONNX's count_include_pad=0 says exactly that.
        overhangs = pad == 0 and (out - 1) * stride + kernel > size
        assert attrs["count_include_pad"] == (0 if overhangs else 1)
    onnx.checker.check_model(model, full_check=True)
    assert shape_mismatches(model, graph) == (2, [])
    x = np.random.default_rng(size).standard_normal((2, 2, size, size)).astype(np.float32)
    assert_close(ort_run(model, x)["pool"], caffe_forward(graph, {}, x)["pool"], 1e-6)


def test_pooling_window_outside_input_is_refused():
    graph = _pool_graph(6, 1, 2, 0)  # Caffe: 4 outputs, the last window starts at 6
    assert graph.layers[0].top_shapes[0][2] == 4
    with pytest.raises(NetgenError, match="'pool'"):
        to_onnx(graph, {})


def test_global_pooling():
    graph = infer("g", [ir.Blob("data", (1, 2, 5, 3))], [
        ir.Layer("gp", "Pooling", ("data",), ("gp",), ir.PoolingParam("AVE", global_pooling=True)),
        ir.Layer("gm", "Pooling", ("data",), ("gm",), ir.PoolingParam("MAX", global_pooling=True)),
    ])
    model = to_onnx(graph, {})
    assert [n.op_type for n in model.graph.node] == ["GlobalAveragePool", "GlobalMaxPool"]
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 3)).astype(np.float32)
    got = ort_run(model, x)
    np.testing.assert_allclose(got["gp"][..., 0, 0], x.mean(axis=(2, 3)), rtol=1e-6)
    np.testing.assert_array_equal(got["gm"][..., 0, 0], x.max(axis=(2, 3)))


# --------------------------------------------------------------------------- every type


def _zoo() -> ir.Graph:
    L = ir.Layer
    return infer("zoo", [ir.Blob("data", (1, 4, 6, 6))], [
        L("c1", "Convolution", ("data",), ("c1",), ir.ConvolutionParam(
            8, (3, 3), (1, 1), (2, 2), dilation=(2, 2), group=2, bias_term=True)),
        L("pr", "PReLU", ("c1",), ("c1",), ir.PReLUParam()),
        L("sp", "Split", ("c1",), ("s1", "s2", "s3")),
        L("lk", "ReLU", ("s1",), ("s1",), ir.ReLUParam(negative_slope=0.1)),
        L("pw", "Power", ("s2",), ("pw",), ir.PowerParam(power=2.0, scale=0.5, shift=1.0)),
        L("ps", "PReLU", ("s3",), ("ps",), ir.PReLUParam(channel_shared=True)),
        L("sum", "Eltwise", ("s1", "pw", "ps"), ("sum",), ir.EltwiseParam("SUM", (1.0, -0.5, 2.0))),
        L("prod", "Eltwise", ("s1", "pw"), ("prod",), ir.EltwiseParam("PROD")),
        L("max", "Eltwise", ("sum", "prod", "ps"), ("max",), ir.EltwiseParam("MAX")),
        L("sc", "Scale", ("max",), ("sc",), ir.ScaleParam(bias_term=True)),
        L("sc2", "Scale", ("sc",), ("sc",), ir.ScaleParam(axis=1, num_axes=-1)),
        L("bi", "Bias", ("sc",), ("bi",), ir.BiasParam(axis=1, num_axes=2)),
        L("bn", "BatchNorm", ("bi",), ("bi",), ir.BatchNormParam(use_global_stats=True)),
        L("drop", "Dropout", ("bi",), ("bi",), ir.DropoutParam()),
        L("slice", "Slice", ("bi",), ("a", "b"), ir.SliceParam(axis=1, slice_point=(3,))),
        L("cat", "Concat", ("b", "a"), ("cat",), ir.ConcatParam(axis=1)),
        L("zero", "Power", ("cat",), ("zero",), ir.PowerParam(scale=0.0, shift=2.0, power=3.0)),
        L("pool", "Pooling", ("cat",), ("pool",), ir.PoolingParam("AVE", (3, 3), (2, 2), (1, 1))),
        L("rs", "Reshape", ("pool",), ("rs",), ir.ReshapeParam((0, 2, -1))),
        L("ip2", "InnerProduct", ("rs",), ("ip2",), ir.InnerProductParam(5, axis=2, transpose=True)),
        L("fl", "Flatten", ("ip2",), ("fl",), ir.FlattenParam()),
        L("fc", "InnerProduct", ("fl",), ("fc",), ir.InnerProductParam(7, bias_term=False)),
        L("fl2", "Flatten", ("zero",), ("fl2",), ir.FlattenParam(axis=2)),
        L("gp", "Pooling", ("cat",), ("gp",), ir.PoolingParam("AVE", global_pooling=True)),
        L("sg", "Sigmoid", ("gp",), ("gp",)),
        L("ax", "Axpy", ("gp", "cat", "zero"), ("ax",)),
        L("gfl", "Flatten", ("gp",), ("gfl",), ir.FlattenParam()),
        L("sc3", "Scale", ("ax", "gfl"), ("sc3",), ir.ScaleParam(axis=0)),
        L("prob", "Softmax", ("fc",), ("prob",), ir.SoftmaxParam()),
        L("dc", "Deconvolution", ("data",), ("dc",), ir.ConvolutionParam(
            6, (3, 3), (2, 2), (1, 1), group=2, bias_term=True)),
        # eps 0.5: sqrt(var) + eps and sqrt(var + eps) differ well beyond the tolerance
        L("mvn", "MVN", ("cat",), ("mvn",), ir.MVNParam(eps=0.5)),
        L("mvn2", "MVN", ("max",), ("mvn2",), ir.MVNParam(normalize_variance=False,
                                                           across_channels=True)),
    ])


def test_every_layer_type_against_numpy():
    graph = _zoo()
    assert {layer.type for layer in graph.layers} == set(ir.PARAM_TYPES)
    weights = random_weights(graph, seed=3)
    model = to_onnx(graph, weights)
    onnx.checker.check_model(model, full_check=True)
    count, problems = shape_mismatches(model, graph)
    assert problems == [] and count > 20
    x = np.random.default_rng(5).standard_normal((3, 4, 6, 6)).astype(np.float32)
    want = caffe_forward(graph, weights, x)
    plan = tensor_plan(graph)
    # every tensor that carries an IR blob at the end of the net, not only the outputs
    last = {}
    for i, layer in enumerate(graph.layers):
        for top, name in zip(layer.tops, plan.outputs[i]):
            last[top] = name
    blobs = ("fc", "prob", "zero", "fl2", "cat", "ip2", "max", "bi", "s1", "sc", "rs", "ax",
             "sc3", "dc", "mvn", "mvn2")
    names = [last[b] for b in blobs]
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    have = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
                              for n in names if n not in have)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    got = dict(zip(names, session.run(names, {"data": x})))
    for blob, name in zip(blobs, names):
        assert_close(got[name], want[blob])
    assert float(got[last["zero"]].min()) == float(got[last["zero"]].max()) == 8.0


def test_missing_or_misshapen_weights_name_the_layer():
    graph = build(make_spec("cifar10", 8))
    weights = initial_weights(graph)
    del weights["res2a_branch2a"]
    with pytest.raises(NetgenError, match="res2a_branch2a"):
        to_onnx(graph, weights)
    weights = initial_weights(graph)
    weights["fc10"][0] = weights["fc10"][0][:5]
    with pytest.raises(NetgenError, match="fc10"):
        to_onnx(graph, weights)


# --------------------------------------------------------------------------- opsets, files


def test_opset_range_and_ir_version_load_in_ort():
    graph = build(make_spec("cifar10", 8))
    weights = initial_weights(graph)
    x = np.ones((1, 3, 32, 32), np.float32)
    results = []
    for opset in (MIN_OPSET, MAX_OPSET):
        model = to_onnx(graph, weights, opset=opset)
        assert model.opset_import[0].version == opset
        assert model.ir_version == ir_version_for(opset) <= 10
        onnx.checker.check_model(model, full_check=True)
        results.append(ort_run(model, x)["prob"])
    np.testing.assert_array_equal(results[0], results[1])
    assert ir_version_for(13) == 7 and ir_version_for(17) == 8 and ir_version_for(21) == 10
    for bad in (MIN_OPSET - 1, MAX_OPSET + 1):
        with pytest.raises(NetgenError, match="13..21"):
            to_onnx(graph, weights, opset=bad)


def test_save_onnx_plain_and_external(tmp_path):
    graph = build(make_spec("cifar10", 8))
    weights = initial_weights(graph)
    model = to_onnx(graph, weights)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    want = ort_run(model, x)["prob"]
    before = model.SerializeToString()
    save_onnx(model, tmp_path / "a.onnx", external_data=True)
    assert model.SerializeToString() == before  # the caller's model is untouched
    assert (tmp_path / "a.onnx.data").stat().st_size > 4 * 60_000
    assert (tmp_path / "a.onnx").stat().st_size < 100_000
    onnx.checker.check_model(str(tmp_path / "a.onnx"), full_check=True)
    session = ort.InferenceSession(str(tmp_path / "a.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(session.run(["prob"], {"data": x})[0], want)
    save_onnx(model, tmp_path / "a.onnx")  # automatic: small, so one file; stale data gone
    assert not (tmp_path / "a.onnx.data").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.onnx"]
    assert onnx.load(str(tmp_path / "a.onnx")).SerializeToString() == model.SerializeToString()


# --------------------------------------------------------------------------- shapes


SHAPE_NETS = [("imagenet", 18, {"shortcut": s}) for s in "ABC"] + [
    ("imagenet", 18, {"plain": True}), ("imagenet", 50, {"shortcut": "B"}),
    ("cifar10", 20, {"shortcut": "A"}), ("cifar10", 20, {"plain": True})]


@pytest.mark.parametrize("dataset,depth,kwargs", SHAPE_NETS,
                         ids=[f"{d}-{n}-{k}" for d, n, k in SHAPE_NETS])
def test_checker_and_shape_inference_match_ir(dataset, depth, kwargs):
    graph = build(make_spec(dataset, depth, **kwargs))
    model = to_onnx(graph, initial_weights(graph))
    onnx.checker.check_model(model, full_check=True)
    count, problems = shape_mismatches(model, graph)
    assert problems == []
    fused = sum(1 for layer in graph.layers if layer.type == "BatchNorm")
    distinct_tops = sum(len(layer.tops) for layer in graph.layers) + len(graph.inputs)
    assert count == distinct_tops - fused


@pytest.mark.slow
def test_checker_and_shape_inference_match_ir_big_nets():
    for spec in (make_spec("imagenet", 152, "B"), make_spec("imagenet", 101, "C"),
                 make_spec("imagenet", 34, "A"), make_spec("cifar10", 1202, "A")):
        graph = build(spec)
        model = to_onnx(graph, initial_weights(graph))
        onnx.checker.check_model(model, full_check=True)
        assert shape_mismatches(model, graph)[1] == [], spec.name
