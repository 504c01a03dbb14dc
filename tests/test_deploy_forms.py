"""The Caffe forms of `--target mnn` (netgen.caffe.targets), without any runtime: what they
write, that the reader folds them back into the network they stand for, and bad input.

Whether MNN computes them right is tests/test_deploy_runtimes.py's matter."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from netgen.arch import ir
from netgen.arch.builder import build
from netgen.arch.spec import spec_from_name
from netgen.arch.weights import initial_weights
from netgen.caffe import caffemodel, prototxt, targets
from netgen.caffe.reader import read_caffe, read_net, weights_for
from netgen.errors import NetgenError
from netgen.onnx.export import to_onnx
from netgen.onnx.runtime import create_session


def _signature(graph: ir.Graph) -> list[tuple]:
    return [(layer.type, layer.param, layer.top_shapes, layer.blob_shapes, layer.fixed)
            for layer in graph.layers]


def test_mnn_form_of_se_broadcasts_the_gate_by_a_deconvolution_of_ones():
    graph = build(spec_from_name("seresnet18"))
    realized, weights = targets.realize(graph, {}, "mnn")
    axpys = [layer for layer in graph.layers if layer.type == "Axpy"]
    decon = [layer for layer in realized.layers if layer.type == "Deconvolution"]
    assert len(axpys) == len(decon) == 8
    for axpy, layer in zip(axpys, decon):
        _, channels, height, width = axpy.top_shapes[0]
        p = layer.param
        assert (p.num_output, p.group, p.kernel, p.stride, p.pad, p.bias_term) == \
            (channels, channels, (height, width), (1, 1), (0, 0), False)
        assert layer.fixed and layer.top_shapes[0] == axpy.top_shapes[0]
        assert weights[layer.name][0].shape == (channels, 1, height, width)
        assert np.all(weights[layer.name][0] == 1)
    types = [layer.type for layer in realized.layers]
    assert "Axpy" not in types and "Flatten" not in types
    assert types.count("Eltwise") == 2 * 8  # PROD with x, SUM with the shortcut
    # the train_val freezes the broadcast: lr_mult 0, a constant filler of 1
    text = prototxt.render_train_val(realized, prototxt.data_options(spec_from_name("seresnet18")))
    block = text[text.index('type: "Deconvolution"'):]
    block = block[:block.index("\n}")]
    assert "lr_mult: 0" in block and 'type: "constant"' in block and "value: 1" in block


def test_the_reader_folds_the_mnn_forms_back_into_the_network(tmp_path):
    for name in ("seresnet18", "seresnext50-32x4d-msrapool", "resnet18-A", "cifar10-resnet20-A"):
        graph = build(spec_from_name(name))
        realized, _ = targets.realize(graph, None, "mnn")
        reading = read_net(prototxt.render_deploy(realized))
        assert _signature(reading.graph) == _signature(graph), name
        assert len(reading.constants) == sum(layer.type == "Axpy" for layer in graph.layers)


def test_a_deconvolution_read_as_a_broadcast_must_hold_ones(tmp_path):
    graph = build(spec_from_name("seresnet18"))
    weights = initial_weights(graph)
    realized, mnn_weights = targets.realize(graph, weights, "mnn")
    deploy, model = tmp_path / "deploy.prototxt", tmp_path / "model.caffemodel"
    deploy.write_text(prototxt.render_deploy(realized))
    model.write_bytes(caffemodel.caffemodel_bytes(realized, mnn_weights))
    read_graph, read_weights = read_caffe(deploy, model)
    assert _signature(read_graph) == _signature(graph)
    first = next(layer.name for layer in realized.layers if layer.type == "Deconvolution")
    mnn_weights[first] = [mnn_weights[first][0] * 2]
    model.write_bytes(caffemodel.caffemodel_bytes(realized, mnn_weights))
    reading = read_net(deploy)
    with pytest.raises(NetgenError, match=rf"layer '{first}' \(Deconvolution\): read as the "
                                          "broadcast of an SE gate.*not all ones"):
        weights_for(reading.graph, model, constants=reading.constants)


def test_mnn_form_writes_no_layer_in_place_and_names_blobs_as_onnx_does():
    """MNN names an in-place layer's output after the layer; the mnn form writes every such
    layer's output under that name, which is also the name netgen's ONNX gives it."""
    for name in ("iresnet18", "resnet18-B", "cifar10-resnet20-A"):
        graph = build(spec_from_name(name))
        realized, _ = targets.realize(graph, None, "mnn")
        assert not any(set(layer.tops) & set(layer.bottoms) for layer in realized.layers)
        was_in_place = {layer.name for layer in graph.layers if layer.in_place}
        assert was_in_place
        for layer in realized.layers:
            if layer.name in was_in_place:
                assert layer.tops == (layer.name,), layer
        model = to_onnx(graph, initial_weights(graph))
        assert set(realized.outputs) <= {o.name for o in model.graph.output}, name
        assert _signature(read_net(prototxt.render_deploy(realized)).graph) == \
            _signature(graph), name
    embedding = targets.realize(build(spec_from_name("iresnet18")), None, "mnn")[0]
    assert embedding.outputs == ("scale_embedding",)
    assert embedding.layer("scale_embedding").bottoms == ("embedding",)


def test_the_mnn_form_computes_what_the_network_computes():
    graph = build(spec_from_name("iresnet18"))
    weights = initial_weights(graph)
    rng = np.random.default_rng(2)
    for layer in graph.layers:  # trained-looking statistics, so that a slip would show
        if layer.type == "BatchNorm":
            weights[layer.name][0] = rng.normal(0, 0.1, layer.blob_shapes[0]).astype(np.float32)
    realized, realized_weights = targets.realize(graph, weights, "mnn")
    x = np.random.default_rng(4).standard_normal((1, 3, 112, 112)).astype(np.float32)
    want = create_session(to_onnx(graph, weights), device="cpu").run(x)
    got = create_session(to_onnx(realized, realized_weights), device="cpu").run(x)
    assert list(want) == list(got) == ["scale_embedding"]
    np.testing.assert_allclose(got["scale_embedding"], want["scale_embedding"], rtol=1e-5,
                               atol=1e-5)


def test_bvlc_target_changes_nothing():
    graph = build(spec_from_name("seresnet18"))
    assert targets.realize(graph, None, "bvlc")[0] is graph
    assert any(layer.in_place for layer in graph.layers)
    with pytest.raises(NetgenError, match="unknown target 'tflite'; allowed: bvlc, mnn"):
        targets.realize(graph, None, "tflite")


def test_build_target_mnn_writes_the_forms_and_keeps_the_network(tmp_path, run_cli):
    plain, mnn = tmp_path / "stock", tmp_path / "mnn"
    assert run_cli("build", "seresnet18", "--weights", "--out", plain).code == 0
    assert run_cli("build", "seresnet18", "--weights", "--target", "mnn", "--out", mnn).code == 0
    for name in ("model.onnx", "summary.json", "net.svg", "solver.prototxt"):
        assert (plain / name).read_bytes() == (mnn / name).read_bytes(), name
    assert "Deconvolution" in (mnn / "deploy.prototxt").read_text()
    assert "Deconvolution" in (mnn / "train_val.prototxt").read_text()
    assert "Deconvolution" not in (plain / "deploy.prototxt").read_text()
    # the same deploy, byte for byte, as --target bvlc
    again = tmp_path / "bvlc"
    assert run_cli("build", "seresnet18", "--target", "bvlc", "--out", again).code == 0
    assert (again / "deploy.prototxt").read_bytes() == (plain / "deploy.prototxt").read_bytes()
    # diff and identify see the network, not its spelling
    result = run_cli("diff", mnn, "seresnet18")
    assert result.code == 0 and "EQUIVALENT" in result.out
    result = run_cli("identify", mnn / "deploy.prototxt", "--json")
    assert result.code == 0 and json.loads(result.out)["name"] == "seresnet18"
    # draw shows the SE units, not the broadcast that spells them
    drawn = {}
    for key, network in (("mnn", mnn), ("name", "seresnet18")):
        assert run_cli("draw", network, "-o", tmp_path / f"{key}.svg").code == 0
        drawn[key] = (tmp_path / f"{key}.svg").read_text()
    assert drawn["mnn"].count("SE, ") == drawn["name"].count("SE, ") == 8
    assert "Deconvolution" not in drawn["mnn"] and "deconv" not in drawn["mnn"].lower()
    # the files compute what model.onnx computes (OpenCV on the Caffe side)
    cv2 = pytest.importorskip("cv2")
    net = cv2.dnn.readNetFromCaffe(str(mnn / "deploy.prototxt"), str(mnn / "model.caffemodel"))
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    net.setInput(x)
    got = net.forward("fc1000")
    want = create_session(onnx.load(str(mnn / "model.onnx")), device="cpu").run(x)
    assert np.abs(got - want["fc1000"]).max() / np.abs(want["fc1000"]).max() <= 1e-4


def test_convert_rewrites_a_caffe_file_in_the_mnn_forms(tmp_path, run_cli):
    stock = tmp_path / "stock"
    assert run_cli("build", "seresnet18", "--weights", "--out", stock).code == 0
    out = tmp_path / "mnn" / "deploy.prototxt"
    result = run_cli("convert", stock / "deploy.prototxt", stock / "model.caffemodel",
                     "--target", "mnn", "-o", out)
    assert result.code == 0, result.err
    assert "in the mnn forms" in result.out
    text = out.read_text()
    assert text.count('type: "Deconvolution"') == 8 and 'type: "Flatten"' not in text
    stock_graph, stock_weights = read_caffe(stock / "deploy.prototxt", stock / "model.caffemodel")
    graph, weights = read_caffe(out, out.parent / "model.caffemodel")
    assert _signature(graph) == _signature(stock_graph)
    for name, blobs in stock_weights.items():
        for a, b in zip(blobs, weights[name]):
            assert np.array_equal(a, b), name


@pytest.mark.parametrize("args, message", [
    (["build", "seresnet18", "--target", "tflite"], "Invalid value for '--target'"),
    (["build", "seresnet18", "--se-form", "axpy", "--target", "mnn"],
     "--se-form axpy writes SENet's own Caffe layer, which --target mnn cannot run"),
    (["validate", "resnet18-B", "--target", "ncnn"], "Invalid value for '--target'"),
])
def test_bad_targets_are_refused_in_one_line(tmp_path, run_cli, args, message):
    result = run_cli(*args, "--out", tmp_path / "out") if args[0] == "build" else run_cli(*args)
    assert result.code == 2
    assert message in result.err
    assert not (tmp_path / "out").exists()


def test_convert_target_needs_caffe_output(tmp_path, run_cli):
    folder = tmp_path / "b"
    assert run_cli("build", "cifar10-resnet20-A", "--out", folder).code == 0
    result = run_cli("convert", folder / "deploy.prototxt", "--target", "mnn",
                     "-o", tmp_path / "x.onnx")
    assert result.code == 2
    assert "--target is how Caffe files are written" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "x.onnx").exists()
