"""The prototxt emitter: every file parses against caffe.proto and says what Caffe users expect."""

from __future__ import annotations

from pathlib import Path

import pytest

from netgen.arch.builder import build
from netgen.arch.spec import make_spec
from netgen.caffe import proto as caffe_proto
from netgen.caffe import prototxt
from netgen.errors import NetgenError

ROOT = Path(__file__).resolve().parent.parent


def _layers(text: str) -> dict:
    net = caffe_proto.parse_net(text)
    return {layer.name: layer for layer in net.layer}, net


def test_deploy_declares_input_as_the_published_models():
    net = caffe_proto.parse_net(prototxt.render_deploy(build(make_spec("imagenet", 101))))
    assert list(net.input) == ["data"] and list(net.input_dim) == [1, 3, 224, 224]
    layers = {l.name: l for l in net.layer}
    assert layers["bn_conv1"].batch_norm_param.use_global_stats is True
    assert list(layers["bn_conv1"].batch_norm_param.ListFields())[0][0].name == "use_global_stats"
    assert layers["scale_conv1"].scale_param.bias_term is True
    assert layers["conv1"].convolution_param.bias_term is False
    assert layers["prob"].type == "Softmax" and list(layers["prob"].bottom) == ["fc1000"]
    assert layers["pool5"].pooling_param.kernel_size == 7 and layers["pool5"].pooling_param.pool == 1
    assert len(net.layer) == 449


def test_deploy_with_input_layer():
    net = caffe_proto.parse_net(prototxt.render_deploy(build(make_spec("cifar10", 20)), legacy_input=False))
    assert not net.input and net.layer[0].type == "Input"
    assert list(net.layer[0].input_param.shape[0].dim) == [1, 3, 32, 32]


def test_resnet50_conv1_keeps_its_bias_as_published():
    layers = {l.name: l for l in caffe_proto.parse_net(
        prototxt.render_deploy(build(make_spec("imagenet", 50)))).layer}
    assert not layers["conv1"].convolution_param.HasField("bias_term")  # Caffe default: true
    assert layers["res2a_branch2a"].convolution_param.bias_term is False


def test_option_a_layers_in_deploy_and_train_val():
    graph = build(make_spec("cifar10", 20))
    deploy = {l.name: l for l in caffe_proto.parse_net(prototxt.render_deploy(graph)).layer}
    sub = deploy["res3a_branch1_sub"].convolution_param
    assert (sub.num_output, sub.group, list(sub.stride), sub.bias_term) == (16, 16, [2], False)
    assert deploy["res3a_branch1_zeros"].power_param.scale == 0
    assert list(deploy["res3a_branch1"].bottom) == ["res3a_branch1_sub", "res3a_branch1_zeros"]
    train = {l.name: l for l in caffe_proto.parse_net(
        prototxt.render_train_val(graph, prototxt.data_options(make_spec("cifar10", 20)))).layer}
    frozen = train["res3a_branch1_sub"]
    assert [(p.lr_mult, p.decay_mult) for p in frozen.param] == [(0, 0)]
    assert frozen.convolution_param.weight_filler.type == "constant"
    assert frozen.convolution_param.weight_filler.value == 1


@pytest.mark.parametrize("kind", prototxt.DATA_KINDS)
def test_train_val_for_every_data_layer(kind):
    spec = make_spec("imagenet", 18)
    data = prototxt.data_options(spec, kind, batch_size=32)
    net = caffe_proto.parse_net(prototxt.render_train_val(build(spec), data))
    data_layers = [l for l in net.layer if "label" in l.top]
    assert [l.include[0].phase for l in data_layers] == [0, 1]  # TRAIN, TEST
    expected_type = {"lmdb": "Data", "imagedata": "ImageData", "hdf5": "HDF5Data", "dummy": "DummyData"}[kind]
    assert {l.type for l in data_layers} == {expected_type}
    train, test = data_layers
    if kind in ("lmdb", "imagedata"):
        assert train.transform_param.mirror is True and test.transform_param.mirror is False
        assert train.transform_param.crop_size == 224
        assert train.transform_param.mean_file == "data/ilsvrc12/imagenet_mean.binaryproto"
    if kind == "dummy":
        assert list(train.dummy_data_param.shape[0].dim) == [32, 3, 224, 224]
    if kind == "lmdb":
        assert train.data_param.batch_size == 32 and train.data_param.backend == 1
    layers = {l.name: l for l in net.layer}
    assert [(p.lr_mult, p.decay_mult) for p in layers["bn_conv1"].param] == [(0, 0)] * 3
    assert not layers["bn_conv1"].batch_norm_param.HasField("use_global_stats")
    assert [(p.lr_mult, p.decay_mult) for p in layers["scale_conv1"].param] == [(1, 0)] * 2
    assert [(p.lr_mult, p.decay_mult) for p in layers["res2a_branch2a"].param] == [(1, 1)]
    assert layers["res2a_branch2a"].convolution_param.weight_filler.type == "msra"
    assert layers["loss"].type == "SoftmaxWithLoss" and list(layers["loss"].bottom) == ["fc1000", "label"]
    assert layers["accuracy_top5"].accuracy_param.top_k == 5
    assert "prob" not in layers


def test_train_val_sources_and_means():
    spec = make_spec("cifar10", 56)
    data = prototxt.data_options(spec, "lmdb", "a/train", "a/val", 64, mean_value=(125.3, 123.0, 113.9))
    net = caffe_proto.parse_net(prototxt.render_train_val(build(spec), data))
    train, test = net.layer[0], net.layer[1]
    assert (train.data_param.source, test.data_param.source) == ("a/train", "a/val")
    assert list(train.transform_param.mean_value) == pytest.approx([125.3, 123.0, 113.9])
    assert not train.transform_param.HasField("mean_file")


@pytest.mark.parametrize(("args", "expected"), [
    (("imagenet", 50), dict(base_lr=0.1, lr_policy="step", stepsize=150_000, max_iter=600_000,
                            momentum=0.9, weight_decay=0.0001, gamma=0.1, iter_size=1)),
    (("cifar10", 20), dict(base_lr=0.1, lr_policy="multistep", max_iter=64_000, momentum=0.9,
                           weight_decay=0.0001, gamma=0.1, iter_size=1)),
])
def test_solver_follows_the_paper(args, expected):
    spec = make_spec(*args)
    files = prototxt.solver_options(spec, 256 if spec.dataset == "imagenet" else 128)
    assert [name for name, _ in files] == ["solver.prototxt"]
    solver = caffe_proto.parse_solver(prototxt.render_solver(files[0][1]))
    for key, value in expected.items():
        assert getattr(solver, key) == pytest.approx(value), key
    if spec.dataset == "cifar10":
        assert list(solver.stepvalue) == [32_000, 48_000]


def test_deep_cifar_nets_get_the_warmup_solver():
    files = dict(prototxt.solver_options(make_spec("cifar10", 110), 128))
    assert list(files) == ["solver_warmup.prototxt", "solver.prototxt"]
    warm = caffe_proto.parse_solver(prototxt.render_solver(files["solver_warmup.prototxt"]))
    assert (warm.base_lr, warm.lr_policy, warm.max_iter, warm.snapshot) == (pytest.approx(0.01), "fixed", 400, 400)
    assert len(prototxt.solver_options(make_spec("cifar10", 56), 128)) == 1


def test_small_batches_keep_the_papers_batch_through_iter_size():
    files = prototxt.solver_options(make_spec("imagenet", 50), 32)
    assert caffe_proto.parse_solver(prototxt.render_solver(files[0][1])).iter_size == 8


def test_quote_and_value():
    assert prototxt.quote('a"b\\c\n') == '"a\\"b\\\\c\\n"'
    assert [prototxt.value(v) for v in (True, 0.0, 1.0, 1e-5, 0.999, 7)] == ["true", "0", "1", "1e-05", "0.999", "7"]
    with pytest.raises(NetgenError):
        prototxt.value(float("nan"))


def test_parse_back_turns_a_template_slip_into_an_error(monkeypatch):
    monkeypatch.setattr(prototxt, "_render", lambda *a, **k: "layer { name: \"x\" bogus_field: 1 }\n")
    with pytest.raises(NetgenError, match="deploy.prototxt"):
        prototxt.render_deploy(build(make_spec("cifar10", 20)))


def test_bad_data_options():
    spec = make_spec("imagenet", 18)
    with pytest.raises(NetgenError, match="allowed: lmdb, imagedata, hdf5, dummy"):
        prototxt.data_options(spec, "csv")
    with pytest.raises(NetgenError, match="not both"):
        prototxt.data_options(spec, "lmdb", mean_file="m", mean_value=(1.0,))
