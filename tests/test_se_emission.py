"""SE and ResNet-D builds as files: the stock-Caffe SE form (and SENet's Axpy on request),
read back to the same IR, and the numbers: OpenCV's Caffe importer on deploy.prototxt +
model.caffemodel against ONNX Runtime on model.onnx, and ResNet-D's pooling at odd sizes
against Caffe's averaging rule written out here."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from netgen.arch import ir
from netgen.arch.builder import build
from netgen.arch.shapes import infer
from netgen.arch.spec import make_spec, spec_from_name
from netgen.arch.weights import initial_weights
from netgen.caffe import proto as caffe_proto
from netgen.caffe.prototxt import data_options, render_deploy, render_train_val
from netgen.caffe.reader import read_prototxt
from netgen.errors import NetgenError
from netgen.jobs.build import write_build
from netgen.jobs.validate import validate_spec
from netgen.onnx.export import to_onnx
from netgen.onnx.runtime import create_session

SMALL = "seresnet26d"  # SE, ResNet-C stem and ResNet-D projections in one net


def _comparable(graph: ir.Graph) -> list[tuple]:
    return [(l.name, l.type, l.bottoms, l.tops, l.param, l.top_shapes, l.blob_shapes, l.stage)
            for l in graph.layers]


def test_stock_form_has_only_stock_layers_and_reads_back():
    graph = build(spec_from_name(SMALL))
    text = render_deploy(graph)
    net = caffe_proto.parse_net(text, "deploy")
    types = {layer.type for layer in net.layer}
    assert "Axpy" not in types and {"Flatten", "Sigmoid", "Scale", "Eltwise"} <= types
    layers = {layer.name: layer for layer in net.layer}
    scale = layers["res2a_se_scale"]
    assert list(scale.bottom) == ["res2a_branch2c", "res2a_se_flat"]
    assert scale.scale_param.axis == 0 and not scale.scale_param.bias_term
    assert list(layers["res2a_se_flat"].bottom) == ["res2a_se_up"]
    total = layers["res2a"]
    assert total.type == "Eltwise" and list(total.bottom) == ["res2a_branch1", "res2a_se_scale"]
    pool = layers["res3a_branch1_pool"]
    assert (pool.pooling_param.pool, pool.pooling_param.kernel_size,
            pool.pooling_param.stride) == (1, 2, 2)  # AVE, Caffe's rounding up
    # Read back: the stock layers fold into the IR's one Axpy, the IR is the builder's.
    assert _comparable(read_prototxt(text)) == _comparable(graph)


def test_axpy_form_is_senets_layer_and_reads_back():
    graph = build(spec_from_name(SMALL))
    text = render_deploy(graph, se_form="axpy")
    net = caffe_proto.parse_net(text, "deploy")
    axpys = [layer for layer in net.layer if layer.type == "Axpy"]
    assert len(axpys) == 8 and not any(layer.type == "Flatten" for layer in net.layer)
    assert list(axpys[0].bottom) == ["res2a_se_up", "res2a_branch2c", "res2a_branch1"]
    assert _comparable(read_prototxt(text)) == _comparable(graph)
    with pytest.raises(NetgenError, match="allowed: stock, axpy"):
        render_deploy(graph, se_form="fused")


def test_train_val_two_bottom_scale_has_no_param_block():
    spec = spec_from_name(SMALL)
    text = render_train_val(build(spec), data_options(spec))
    net = caffe_proto.parse_net(text, "train_val")
    layers = {layer.name: layer for layer in net.layer}
    assert len(layers["res2a_se_scale"].param) == 0  # Caffe refuses params without blobs
    assert len(layers["scale2a_branch2c"].param) == 2
    assert [p.lr_mult for p in layers["res2a_se_down"].param] == [1, 2]  # weight and bias


def test_se_form_options(run_cli, tmp_path):
    result = run_cli("build", "--depth", "26", "--se", "16", "--deep-stem", "--avg-down",
                     "--se-form", "axpy", "-o", tmp_path / "a")
    assert result.code == 0
    assert 'type: "Axpy"' in (tmp_path / "a/deploy.prototxt").read_text()
    result = run_cli("convert", tmp_path / "a/deploy.prototxt", "-o", tmp_path / "a.onnx",
                     "--se-form", "axpy")
    assert result.code == 2 and "ONNX inputs only" in result.err


@pytest.mark.parametrize("name", ["seresnet18", "cifar10-seresnet20", "resnet18d", SMALL,
                                  "seresnext50-32x4d-msrapool"])
def test_validate_opencv_and_ort_agree(name):
    """validate's six checks; the sixth runs OpenCV's importer on the stock SE form."""
    report = validate_spec(spec_from_name(name))
    assert report.ok, "\n".join(report.lines())
    opencv = report.checks[5]
    assert opencv.status == "PASS", opencv.figure  # not skipped: cv2 is a test dependency
    counts = report.checks[3]
    assert "= summary.json" in counts.figure


def _run_both(tmp_path, spec, batch: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(OpenCV on deploy + caffemodel, ORT on model.onnx) for one random batch."""
    cv2 = pytest.importorskip("cv2")
    folder = tmp_path / spec.name
    write_build(spec, folder, weights=True)
    x = np.random.default_rng(1).standard_normal(
        (batch, 3, spec.input_size, spec.input_size)).astype(np.float32)
    net = cv2.dnn.readNetFromCaffe(str(folder / "deploy.prototxt"),
                                   str(folder / "model.caffemodel"))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.enableWinograd(False)
    net.setInput(x)
    opencv = net.forward(f"fc{spec.num_classes}")
    session = create_session(onnx.load(str(folder / "model.onnx")), "cpu")
    ort = session.run(x)[f"fc{spec.num_classes}"]
    return opencv, ort


def test_se_and_d_at_odd_sizes_and_batch_2_in_opencv(tmp_path):
    """Input 200: ResNet-D pools 25x25 and 13x13 maps (a partial last window on each); the
    SE gate's Flatten / Scale(axis 0) on a batch of 2."""
    spec = make_spec(depth=26, se=16, deep_stem=True, avg_down=True, input_size=200,
                     num_classes=10)
    assert build(spec).layer("res4a_branch1_pool").top_shapes[0][2:] == (13, 13)
    opencv, ort = _run_both(tmp_path, spec)
    assert not np.allclose(ort[0], ort[1])
    assert np.max(np.abs(opencv - ort)) / np.max(np.abs(ort)) <= 1e-4


def caffe_ave_pool(x: np.ndarray, kernel: int, stride: int, pad: int) -> np.ndarray:
    """Caffe's PoolingLayer AVE forward (pooling_layer.cpp), written out: the output size
    rounds up, the divisor is the window's part inside [0, H + pad), computed before the
    window is clipped to [0, H)."""
    n, c, h, w = x.shape
    oh = -((h + 2 * pad - kernel) // -stride) + 1
    ow = -((w + 2 * pad - kernel) // -stride) + 1
    if pad and (oh - 1) * stride >= h + pad:
        oh -= 1
    if pad and (ow - 1) * stride >= w + pad:
        ow -= 1
    out = np.zeros((n, c, oh, ow), np.float64)
    for i in range(oh):
        for j in range(ow):
            hs, ws = i * stride - pad, j * stride - pad
            he, we = min(hs + kernel, h + pad), min(ws + kernel, w + pad)
            size = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            out[:, :, i, j] = x[:, :, hs:he, ws:we].sum(axis=(2, 3)) / size
    return out


@pytest.mark.parametrize("size", [5, 7, 8, 13])
def test_resnet_d_pooling_is_caffes_at_every_size(size):
    """The 2x2 stride-2 AVE pooling the builder writes, emitted to ONNX (count_include_pad=0
    where a last window overhangs), equals Caffe's rule: the divisor at the border is the
    part of the window inside the map, as timm's count_include_pad=False."""
    param = ir.PoolingParam("AVE", (2, 2), (2, 2))
    graph = infer("d", [ir.Blob("data", (1, 3, size, size))],
                  [ir.Layer("pool", "Pooling", ("data",), ("pool",), param)])
    model = to_onnx(graph, {})
    node = model.graph.node[0]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["ceil_mode"] == (1 if size % 2 else 0)
    assert attrs["count_include_pad"] == (0 if size % 2 else 1)
    x = np.random.default_rng(size).standard_normal((2, 3, size, size)).astype(np.float32)
    got = create_session(model, "cpu").run(x)["pool"]
    want = caffe_ave_pool(x.astype(np.float64), 2, 2, 0)
    assert got.shape == want.shape == (2, 3, (size + 1) // 2, (size + 1) // 2)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    if size % 2:  # the corner window holds one value, divided by 1
        np.testing.assert_allclose(got[:, :, -1, -1], x[:, :, -1, -1], rtol=1e-6)


def test_resnet_d_pooling_in_opencv_at_odd_size(tmp_path):
    cv2 = pytest.importorskip("cv2")
    param = ir.PoolingParam("AVE", (2, 2), (2, 2))
    graph = infer("d", [ir.Blob("data", (1, 3, 7, 7))],
                  [ir.Layer("pool", "Pooling", ("data",), ("pool",), param)])
    path = tmp_path / "deploy.prototxt"
    path.write_text(render_deploy(graph))
    net = cv2.dnn.readNetFromCaffe(str(path))
    x = np.random.default_rng(7).standard_normal((1, 3, 7, 7)).astype(np.float32)
    net.setInput(x)
    np.testing.assert_allclose(net.forward("pool"), caffe_ave_pool(x.astype(np.float64), 2, 2, 0),
                               rtol=1e-5, atol=1e-6)


def test_initial_weights_cover_se_layers():
    graph = build(spec_from_name(SMALL))
    weights = initial_weights(graph)
    for name in ("res2a_se_down", "res2a_se_up"):
        assert [w.shape for w in weights[name]] == list(graph.layer(name).blob_shapes)
        assert not weights[name][1].any()  # biases start at 0, the gate at sigmoid(0) = 0.5
    assert "res2a" not in weights and "res2a_se_prob" not in weights


def test_validate_skips_opencv_for_the_axpy_form(tmp_path, run_cli):
    from netgen.jobs.validate import validate_folder

    spec = spec_from_name("cifar10-seresnet20")
    write_build(spec, tmp_path / "axpy", weights=True, se_form="axpy")
    report = validate_folder(tmp_path / "axpy")
    assert report.ok
    assert [c.status for c in report.checks] == ["PASS"] * 5 + ["SKIP"]
    assert "Axpy" in report.checks[5].figure
    write_build(spec, tmp_path / "stock", weights=True)
    assert validate_folder(tmp_path / "stock").checks[5].status == "PASS"
