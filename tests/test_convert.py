"""`netgen convert`: MSRA-style deploy files to ONNX, netgen's own files, and ONNX -> Caffe."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import onnx
import pytest
from test_caffe_reader import msra_style
from torch_style import torch_resnet

from netgen.arch.builder import build
from netgen.arch.spec import make_spec
from netgen.caffe.prototxt import render_deploy
from netgen.caffe.reader import read_caffe, read_prototxt
from netgen.jobs.build import write_build
from netgen.onnx.runtime import create_session, random_batch


def onnx_params(model: onnx.ModelProto) -> int:
    """Learned parameters in the initializers (BN statistics are not parameters)."""
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer
               if not t.name.endswith((".mean", ".var")))


@pytest.mark.parametrize("depth,layers,convs,relus,adds,params", [
    (50, 228, 53, 49, 16, 25_557_096),
    (101, 449, 104, 100, 33, 44_549_160),
    (152, 670, 155, 151, 50, 60_192_808),
])
def test_msra_style_deploy_converts_to_onnx(tmp_path, run_cli, depth, layers, convs, relus, adds,
                                            params):
    source = tmp_path / f"ResNet-{depth}-deploy.prototxt"
    source.write_text(msra_style(render_deploy(build(make_spec("imagenet", depth)))))
    result = run_cli("convert", source, "-o", tmp_path / "model.onnx")
    assert result.code == 0, result.err
    assert f"read {source}: {layers} layers" in result.out
    assert "from the net's input/input_dim fields" in result.out
    assert "netgen's deterministic initialisation (seed 0)" in result.out
    model = onnx.load(tmp_path / "model.onnx")
    ops = Counter(node.op_type for node in model.graph.node)
    assert ops["Conv"] == convs and ops["BatchNormalization"] == convs
    assert ops["Relu"] == relus and ops["Add"] == adds
    assert ops["MaxPool"] == 1 and ops["AveragePool"] == 1 and ops["Gemm"] == 1
    assert ops["Softmax"] == 1
    assert onnx_params(model) == params
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim][1:] == [3, 224, 224]


def test_netgen_deploy_and_caffemodel_convert_to_builds_onnx_exactly(tmp_path, run_cli):
    for name, kwargs, shape in (("resnet50-B", dict(dataset="imagenet", depth=50), (2, 3, 224, 224)),
                                ("cifar10-resnet20-A", dict(dataset="cifar10", depth=20), (4, 3, 32, 32))):
        out = tmp_path / name
        write_build(make_spec(**kwargs), out, weights=True, seed=11)
        result = run_cli("convert", out / "deploy.prototxt", out / "model.caffemodel",
                         "-o", tmp_path / f"{name}.onnx")
        assert result.code == 0, result.err
        assert f"weights: {out / 'model.caffemodel'}" in result.out
        batch = random_batch(shape, 3)
        want = create_session(out / "model.onnx", device="cpu").run(batch)
        got = create_session(tmp_path / f"{name}.onnx", device="cpu").run(batch)
        assert want.keys() == got.keys() and len(want) == 2  # logits and prob
        for key in want:
            assert np.array_equal(want[key], got[key]), key


def test_onnx_to_deploy_prototxt_and_caffemodel(tmp_path, run_cli):
    spec = make_spec("imagenet", 18, shortcut="A")
    write_build(spec, tmp_path / "net", weights=True, seed=4)
    target = tmp_path / "out" / "deploy.prototxt"
    target.parent.mkdir()
    result = run_cli("convert", tmp_path / "net" / "model.onnx", "-o", target)
    assert result.code == 0, result.err
    assert f"wrote {target}, {target.parent / 'model.caffemodel'}" in result.out
    text = target.read_text()
    assert "input_dim: 224" in text and 'type: "Input"' not in text
    assert text == (tmp_path / "net" / "deploy.prototxt").read_text()  # identical deploy file
    graph, weights = read_caffe(target, target.parent / "model.caffemodel")
    _, built_weights = read_caffe(tmp_path / "net" / "deploy.prototxt",
                                  tmp_path / "net" / "model.caffemodel")
    assert graph == build(spec)
    assert all(np.array_equal(a, b) for name in built_weights
               for a, b in zip(weights[name], built_weights[name]))
    # --input-layer and --caffemodel-out
    result = run_cli("convert", tmp_path / "net" / "model.onnx", "-o", tmp_path / "r18.prototxt",
                     "--input-layer", "--caffemodel-out", tmp_path / "w.caffemodel")
    assert result.code == 0, result.err
    assert 'type: "Input"' in (tmp_path / "r18.prototxt").read_text()
    assert (tmp_path / "w.caffemodel").stat().st_size == (target.parent / "model.caffemodel").stat().st_size


def test_pytorch_style_onnx_to_caffe_and_back_computes_the_same(tmp_path, run_cli):
    model = torch_resnet(18, stages=(1, 1, 1, 1), input_size=64, num_classes=10)
    onnx.save(model, tmp_path / "torch.onnx")
    result = run_cli("convert", tmp_path / "torch.onnx", "-o", tmp_path / "torch.prototxt")
    assert result.code == 0, result.err
    assert (tmp_path / "torch.caffemodel").is_file()
    assert '"/layer1/layer1.0/conv1/Conv"' in (tmp_path / "torch.prototxt").read_text()
    result = run_cli("convert", tmp_path / "torch.prototxt", tmp_path / "torch.caffemodel",
                     "-o", tmp_path / "again.onnx", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["direction"] == "caffe->onnx" and report["layers"] == 52
    batch = random_batch((2, 3, 64, 64), 9)
    want = create_session(model, device="cpu").run_list(batch)[0]
    got = create_session(tmp_path / "again.onnx", device="cpu").run_list(batch)[0]
    assert np.max(np.abs(want - got)) < 1e-5 * max(1.0, float(np.max(np.abs(want))))


def test_convert_makes_a_missing_output_folder_as_build_does(tmp_path, run_cli):
    write_build(make_spec("cifar10", 8), tmp_path / "net", weights=True)
    target = tmp_path / "new" / "sub" / "model.onnx"
    result = run_cli("convert", tmp_path / "net" / "deploy.prototxt",
                     tmp_path / "net" / "model.caffemodel", "-o", target)
    assert result.code == 0, result.err
    assert onnx.load(target).graph.name == "cifar10-resnet8-A"
    back = tmp_path / "again" / "deploy.prototxt"
    result = run_cli("convert", target, "-o", back)
    assert result.code == 0, result.err
    assert back.read_text() == (tmp_path / "net" / "deploy.prototxt").read_text()
    assert (tmp_path / "again" / "model.caffemodel").is_file()
    # a file where a folder would go: refused before anything is written
    (tmp_path / "plain").write_text("x")
    result = run_cli("convert", target, "-o", tmp_path / "plain" / "deploy.prototxt")
    assert result.code == 2 and "plain is a file, not a folder" in result.err
    # a conversion that fails leaves no folder behind
    result = run_cli("convert", tmp_path / "net" / "deploy.prototxt", "-o",
                     tmp_path / "never" / "m.onnx", "--opset", "9")
    assert result.code == 2 and not (tmp_path / "never").exists()


def test_train_val_reports_the_input_and_the_dropped_layers(tmp_path, run_cli):
    write_build(make_spec("cifar10", 20), tmp_path / "c20")
    result = run_cli("convert", tmp_path / "c20" / "train_val.prototxt", "-o", tmp_path / "c.onnx",
                     "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["input"] == ("input 'data' [1, 3, 32, 32] from the Data layer 'data' of phase "
                               "TEST (batch 1)")
    assert report["dropped"] == ["data", "data", "loss", "accuracy", "accuracy_top5"]
    model = onnx.load(tmp_path / "c.onnx")
    assert [o.name for o in model.graph.output] == ["fc10"]  # no Softmax in a train_val


def test_convert_errors_exit_2_and_write_nothing(tmp_path, run_cli):
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(render_deploy(build(make_spec("cifar10", 20))))
    (tmp_path / "exists.onnx").write_bytes(b"old")
    result = run_cli("convert", deploy, "-o", tmp_path / "exists.onnx")
    assert result.code == 2 and "exists.onnx already exists; use --force" in result.err
    assert (tmp_path / "exists.onnx").read_bytes() == b"old"
    assert run_cli("convert", deploy, "-o", tmp_path / "exists.onnx", "--force").code == 0
    assert onnx.load(tmp_path / "exists.onnx").graph.name == "cifar10-resnet20-A"

    lrn = tmp_path / "lrn.prototxt"
    lrn.write_text(deploy.read_text().replace('type: "ReLU"', 'type: "LRN"', 1))
    result = run_cli("convert", lrn, "-o", tmp_path / "lrn.onnx")
    assert result.code == 2
    assert result.err.startswith("error: layer 'conv1_relu' (LRN): unsupported layer type")
    assert not (tmp_path / "lrn.onnx").exists()

    result = run_cli("convert", tmp_path / "exists.onnx", deploy, "-o", tmp_path / "x.prototxt")
    assert result.code == 2 and "a caffemodel goes with a prototxt input" in result.err
    result = run_cli("convert", tmp_path / "nothing.prototxt", "-o", tmp_path / "y.onnx")
    assert result.code == 2 and "nothing.prototxt: no such file" in result.err
    result = run_cli("convert", deploy, "-o", tmp_path / "z.prototxt")
    assert result.code == 2 and "name the output .onnx" in result.err
    result = run_cli("convert", deploy, "-o", tmp_path / "o.onnx", "--opset", "9")
    assert result.code == 2 and "opset 9 is not supported" in result.err
    result = run_cli("convert", tmp_path / "exists.onnx", "-o", tmp_path / "o.onnx")
    assert result.code == 2 and "name the output .prototxt" in result.err
    assert read_prototxt(deploy).name == "cifar10-resnet20-A"
