"""The Caffe reader: prototxt spellings, phases, caffemodel blobs (current and V1), errors."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

from netgen.arch import ir
from netgen.arch.builder import build
from netgen.arch.counting import count
from netgen.arch.spec import make_spec
from netgen.arch.weights import initial_weights
from netgen.caffe import proto as caffe_proto
from netgen.caffe.caffemodel import caffemodel_bytes, write_caffemodel
from netgen.caffe.prototxt import data_options, render_deploy, render_train_val
from netgen.caffe.reader import caffemodel_blobs, read_caffe, read_net, read_prototxt, weights_for
from netgen.errors import NetgenError

HEADER_ORDER = ("bottom", "top", "name", "type")


def msra_style(text: str) -> str:
    """netgen's deploy text rewritten the way the published MSRA files are written: net-level
    input/input_dim, tab indentation, bottom/top/name/type at the head of each layer."""
    out = []
    for block in re.split(r"\n\n+", text.strip()):
        lines = block.splitlines()
        if lines[0] != "layer {":
            out.append("\n".join(lines))
            continue
        body = [line[2:] for line in lines[1:-1]]
        head = {key: [b for b in body if b.startswith(key + ":")] for key in HEADER_ORDER}
        rest = [b for b in body if not any(b in v for v in head.values())]
        ordered = [line for key in HEADER_ORDER for line in head[key]] + rest
        tabbed = []
        for line in ordered:
            stripped = line.lstrip(" ")
            depth = (len(line) - len(stripped)) // 2 + 1
            tabbed.append("\t" * depth + stripped)
        out.append("layer {\n" + "\n".join(tabbed) + "\n}")
    return "\n\n".join(out) + "\n"


def same_layers(a: ir.Graph, b: ir.Graph) -> None:
    assert len(a.layers) == len(b.layers)
    for x, y in zip(a.layers, b.layers):
        assert x == y, (x, y)
    assert a.inputs == b.inputs


# ----------------------------------------------------------------------------- MSRA style


@pytest.mark.parametrize("depth,layers,types,params", [
    (50, 228, {"Convolution": 53, "BatchNorm": 53, "Scale": 53, "ReLU": 49, "Pooling": 2,
               "Eltwise": 16, "InnerProduct": 1, "Softmax": 1}, 25_557_096),
    (101, 449, {"Convolution": 104, "BatchNorm": 104, "Scale": 104, "ReLU": 100, "Pooling": 2,
                "Eltwise": 33, "InnerProduct": 1, "Softmax": 1}, 44_549_160),
    (152, 670, {"Convolution": 155, "BatchNorm": 155, "Scale": 155, "ReLU": 151, "Pooling": 2,
                "Eltwise": 50, "InnerProduct": 1, "Softmax": 1}, 60_192_808),
])
def test_msra_legacy_style_reads_as_the_built_graph(depth, layers, types, params):
    built = build(make_spec("imagenet", depth))
    text = msra_style(render_deploy(built, legacy_input=True))
    assert "input_dim: 224" in text and "\n\tbottom: \"conv1\"\n\ttop: \"conv1\"\n\tname: \"bn_conv1\"" in text
    assert "  " not in text  # no space indentation left
    reading = read_net(text)
    graph = reading.graph
    same_layers(graph, built)
    assert len(graph.layers) == layers
    counts = count(graph)
    assert counts.layer_types == dict(sorted(types.items()))
    assert counts.params == params
    assert reading.input_source == "input 'data' [1, 3, 224, 224] from the net's input/input_dim fields"
    assert reading.dropped == ()
    conv1 = graph.layer("conv1")
    assert conv1.param.bias_term is (depth == 50)
    assert graph.layer("res3a_branch2a").param.stride == (2, 2)
    assert graph.layer("pool1").top_shapes == ((1, 64, 56, 56),)


@pytest.mark.parametrize("kwargs", [
    dict(dataset="imagenet", depth=18, shortcut="A"),
    dict(dataset="imagenet", depth=34, shortcut="C"),
    dict(dataset="imagenet", depth=18, plain=True),
    dict(dataset="imagenet", depth=50, stride_in="3x3"),
    dict(dataset="cifar10", depth=20),
    dict(dataset="cifar10", depth=32, plain=True),
])
def test_round_trip_build_prototxt_read_is_the_same_ir(kwargs):
    built = build(make_spec(**kwargs))
    for legacy in (True, False):
        graph = read_prototxt(render_deploy(built, legacy_input=legacy))
        assert graph == built  # name, inputs, every layer: params, stage, fixed, shapes
    fixed = [layer.name for layer in built.layers if layer.fixed]
    if kwargs.get("shortcut") == "A" or kwargs["dataset"] == "cifar10" and not kwargs.get("plain"):
        assert fixed and all(name.endswith("_branch1_sub") for name in fixed)


def test_input_layer_and_input_shape_declarations():
    body = '''
layer { name: "c" type: "Convolution" bottom: "img" top: "c"
        convolution_param { num_output: 4 kernel_size: 3 } }
'''
    via_layer = read_net('layer { name: "img" type: "Input" top: "img" '
                         'input_param { shape { dim: 2 dim: 3 dim: 9 dim: 9 } } }' + body)
    via_shape = read_net('input: "img" input_shape { dim: 2 dim: 3 dim: 9 dim: 9 }' + body)
    assert via_layer.graph.inputs == via_shape.graph.inputs == (ir.Blob("img", (2, 3, 9, 9)),)
    assert via_layer.input_source.endswith("from the Input layer 'img'")
    assert via_shape.input_source.endswith("from the net's input/input_shape fields")
    assert via_layer.graph.layer("c").top_shapes == ((2, 4, 7, 7),)
    assert via_layer.graph.layer("c").blob_shapes == ((4, 3, 3, 3), (4,))


SPELLINGS = '''
name: "spellings"
input: "data"
input_dim: 1
input_dim: 4
input_dim: 20
input_dim: 24
layer { name: "rect" type: "Convolution" bottom: "data" top: "rect"
  convolution_param { num_output: 8 kernel_h: 3 kernel_w: 5 pad_h: 1 pad_w: 2 stride_h: 2
                      stride_w: 1 bias_term: false } }
layer { name: "pair" type: "Convolution" bottom: "rect" top: "pair"
  convolution_param { num_output: 8 kernel_size: 3 kernel_size: 1 pad: 2 pad: 0 stride: 1
                      stride: 2 dilation: 2 group: 4 } }
layer { name: "bn" type: "BatchNorm" bottom: "pair" top: "pair"
  batch_norm_param { eps: 0.001 use_global_stats: true } }
layer { name: "sc" type: "Scale" bottom: "pair" top: "pair" scale_param { bias_term: true } }
layer { name: "bias" type: "Bias" bottom: "pair" top: "pair" }
layer { name: "leaky" type: "ReLU" bottom: "pair" top: "pair" relu_param { negative_slope: 0.1 } }
layer { name: "prelu" type: "PReLU" bottom: "pair" top: "prelu" }
layer { name: "split" type: "Split" bottom: "prelu" top: "s1" top: "s2" }
layer { name: "prod" type: "Eltwise" bottom: "s1" bottom: "s2" top: "prod"
  eltwise_param { operation: PROD } }
layer { name: "max" type: "Eltwise" bottom: "prod" bottom: "s2" top: "max"
  eltwise_param { operation: MAX } }
layer { name: "sub" type: "Eltwise" bottom: "max" bottom: "s1" top: "sub"
  eltwise_param { operation: SUM coeff: 1 coeff: -0.5 } }
layer { name: "zeros" type: "Power" bottom: "sub" top: "zeros" power_param { scale: 0 } }
layer { name: "cat" type: "Concat" bottom: "sub" bottom: "zeros" top: "cat" }
layer { name: "pool" type: "Pooling" bottom: "cat" top: "pool"
  pooling_param { pool: AVE kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 } }
layer { name: "gpool" type: "Pooling" bottom: "pool" top: "gpool"
  pooling_param { pool: MAX global_pooling: true } }
layer { name: "drop" type: "Dropout" bottom: "gpool" top: "gpool" dropout_param { dropout_ratio: 0.3 } }
layer { name: "flat" type: "Flatten" bottom: "gpool" top: "flat" }
layer { name: "fc" type: "InnerProduct" bottom: "flat" top: "fc"
  inner_product_param { num_output: 6 } }
layer { name: "shape" type: "Reshape" bottom: "fc" top: "shape"
  reshape_param { shape { dim: 0 dim: 2 dim: -1 } } }
layer { name: "fc2" type: "InnerProduct" bottom: "shape" top: "fc2"
  inner_product_param { num_output: 5 axis: 2 bias_term: false } }
layer { name: "prob" type: "Softmax" bottom: "fc2" top: "prob" softmax_param { axis: 2 } }
'''


def test_every_supported_spelling_reads_to_exact_parameters_and_shapes():
    graph = read_prototxt(SPELLINGS)
    p = {layer.name: layer for layer in graph.layers}
    assert p["rect"].param == ir.ConvolutionParam(8, (3, 5), (2, 1), (1, 2), bias_term=False)
    assert p["rect"].top_shapes == ((1, 8, 10, 24),)
    assert p["pair"].param == ir.ConvolutionParam(8, (3, 1), (1, 2), (2, 0), (2, 2), 4, True)
    assert p["pair"].top_shapes == ((1, 8, 10, 12),)
    assert p["pair"].blob_shapes == ((8, 2, 3, 1), (8,))
    assert p["bn"].param == ir.BatchNormParam(use_global_stats=True, eps=0.001)
    assert p["sc"].blob_shapes == ((8,), (8,)) and p["bias"].blob_shapes == ((8,),)
    assert p["leaky"].param.negative_slope == 0.1 and p["leaky"].in_place
    assert p["prelu"].blob_shapes == ((8,),)
    assert p["split"].tops == ("s1", "s2")
    assert p["prod"].param.operation == "PROD" and p["max"].param.operation == "MAX"
    assert p["sub"].param.coeff == (1.0, -0.5)
    assert p["zeros"].param == ir.PowerParam(scale=0.0)
    assert p["cat"].top_shapes == ((1, 16, 10, 12),)
    assert p["pool"].param == ir.PoolingParam("AVE", (3, 2), (2, 1), (1, 0))
    assert p["pool"].top_shapes == ((1, 16, 6, 11),)  # ceil((10 + 2 - 3) / 2) + 1 = 6
    assert p["gpool"].param.global_pooling and p["gpool"].top_shapes == ((1, 16, 1, 1),)
    assert p["drop"].param.dropout_ratio == pytest.approx(0.3)
    assert p["flat"].top_shapes == ((1, 16),)
    assert p["fc"].blob_shapes == ((6, 16), (6,))
    assert p["shape"].top_shapes == ((1, 2, 3),)
    assert p["fc2"].param.axis == 2 and p["fc2"].top_shapes == ((1, 2, 5),)
    assert p["prob"].param.axis == 2
    assert graph.outputs == ("prob",)
    assert graph.name == "spellings"


def test_caffe_rounding_of_pooling_and_round_mode_floor():
    base = 'input: "x" input_dim: 1 input_dim: 2 input_dim: 32 input_dim: 32\n'
    pool = ('layer { name: "p" type: "Pooling" bottom: "x" top: "p" pooling_param { pool: MAX '
            'kernel_size: %d stride: 2 %s } }')
    # kernel 1 stride 2 on 32 rounds up to 17 (the reason option A uses a convolution)
    assert read_prototxt(base + pool % (1, "")).layer("p").top_shapes == ((1, 2, 17, 17),)
    # FLOOR agrees with CEIL for kernel 2: read as CEIL; for kernel 1 it rounds down to 16
    two = read_prototxt(base + pool % (2, "round_mode: FLOOR")).layer("p")
    assert two.top_shapes == ((1, 2, 16, 16),) and two.param.round_mode == "CEIL"
    one = read_prototxt(base + pool % (1, "round_mode: FLOOR")).layer("p")
    assert one.top_shapes == ((1, 2, 16, 16),) and one.param.round_mode == "FLOOR"


# ----------------------------------------------------------------------------- train_val


def test_train_val_phases_drop_data_loss_and_accuracy_and_report_the_input():
    spec = make_spec("imagenet", 18, shortcut="A")
    built = build(spec)
    text = render_train_val(built, data_options(spec))
    test = read_net(text, "TEST")
    assert test.input_source == ("input 'data' [1, 3, 224, 224] from the Data layer 'data' of "
                                 "phase TEST (batch 1)")
    assert test.dropped == ("data", "data", "loss", "accuracy", "accuracy_top5")
    train = read_net(text, "TRAIN")
    assert train.dropped == ("data", "data", "loss", "accuracy", "accuracy_top5")
    deploy = built.layers[:-1]  # no Softmax in a train_val
    for graph in (test.graph, train.graph):
        assert [layer.name for layer in graph.layers] == [layer.name for layer in deploy]
        for got, want in zip(graph.layers, deploy):
            if want.type == "BatchNorm":  # train_val leaves use_global_stats to the phase
                want = replace(want, param=replace(want.param, use_global_stats=None))
            assert got == want
    # the subsample is frozen by `param { lr_mult: 0 }` in a train_val, whatever its name
    frozen_convs = {name for name in test.frozen if test.graph.layer(name).type == "Convolution"}
    assert frozen_convs == {"res3a_branch1_sub", "res4a_branch1_sub", "res5a_branch1_sub"}
    assert {n for n in test.frozen if n not in frozen_convs} == {
        layer.name for layer in built.layers if layer.type == "BatchNorm"}
    renamed = text.replace("res3a_branch1_sub", "decimate3")
    graph = read_prototxt(renamed)
    assert graph.layer("decimate3").fixed
    assert count(graph).params == count(built).params == 11_515_688


def test_train_val_without_a_size_needs_an_explicit_input_shape():
    spec = make_spec("cifar10", 20)
    text = render_train_val(build(spec), data_options(spec, "hdf5"))
    with pytest.raises(NetgenError, match=r"layer 'data' \(HDF5Data\): cannot tell the input size"):
        read_net(text)
    reading = read_net(text, input_shape=(1, 3, 32, 32))
    assert reading.graph.inputs == (ir.Blob("data", (1, 3, 32, 32)),)
    assert "given shape" in reading.input_source


@pytest.mark.parametrize("input_name", ["img", "given"])
def test_explicit_input_shape_overrides_an_input_layer_whatever_its_name(input_name):
    text = (f'layer {{ name: "{input_name}" type: "Input" top: "img" '
            'input_param { shape { dim: 1 dim: 3 dim: 9 dim: 9 } } }\n'
            'layer { name: "c" type: "Convolution" bottom: "img" top: "c" '
            'convolution_param { num_output: 4 kernel_size: 3 } }')
    reading = read_net(text, input_shape=(1, 3, 16, 16))
    assert reading.graph.inputs == (ir.Blob("img", (1, 3, 16, 16)),)
    assert reading.input_source.endswith("(shape given explicitly)")


def test_include_exclude_rules_with_stages_and_levels():
    text = '''
input: "x" input_dim: 1 input_dim: 1 input_dim: 4 input_dim: 4
state { level: 2 stage: "deploy" }
layer { name: "a" type: "ReLU" bottom: "x" top: "a" include { phase: TEST min_level: 1 } }
layer { name: "b" type: "ReLU" bottom: "a" top: "b" include { stage: "train" } }
layer { name: "c" type: "ReLU" bottom: "a" top: "c" exclude { not_stage: "deploy" } }
layer { name: "d" type: "ReLU" bottom: "a" top: "d" exclude { phase: TRAIN } }
layer { name: "e" type: "ReLU" bottom: "a" top: "e" include { max_level: 1 } }
'''
    reading = read_net(text, "TEST")
    assert [layer.name for layer in reading.graph.layers] == ["a", "c", "d"]
    assert reading.dropped == ("b", "e")
    with pytest.raises(NetgenError, match=r"layer 'c' \(ReLU\): bottom 'a'"):
        read_net(text, "TRAIN")  # `a` is TEST only


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("layer,message", [
    ('layer { name: "norm1" type: "LRN" bottom: "x" top: "n" }',
     r"layer 'norm1' \(LRN\): unsupported layer type"),
    ('layer { name: "norm1" type: "LRN" bottom: "x" top: "n" lrn_param { local_size: 5 } }',
     r"layer 'norm1' \(LRN\): unsupported layer type"),
    ('layer { name: "s" type: "Scale" bottom: "x" bottom: "x" top: "s" }',
     r"layer 's' \(Scale\): bottom\[1\] of shape \[1, 2, 8, 8\] must equal bottom\[0\]'s "
     r"shape from axis 1 on \(\[2, 8, 8\] of \[1, 2, 8, 8\]\)"),
    ('layer { name: "s" type: "Scale" bottom: "x" bottom: "x" top: "s" '
     'scale_param { bias_term: true } }',
     r"layer 's' \(Scale\): 2 bottoms: only the one-bottom form"),
    ('layer { name: "c3" type: "Convolution" bottom: "x" top: "c" '
     'convolution_param { num_output: 2 kernel_size: 1 kernel_size: 1 kernel_size: 1 } }',
     r"layer 'c3' \(Convolution\): 3 values of kernel_size: only 2-D"),
    ('layer { name: "k" type: "Convolution" bottom: "x" top: "c" '
     'convolution_param { num_output: 2 kernel_size: 3 kernel_h: 3 kernel_w: 3 } }',
     r"layer 'k' \(Convolution\): give either kernel_size or kernel_h/kernel_w"),
    ('layer { name: "nk" type: "Convolution" bottom: "x" top: "c" convolution_param { num_output: 2 } }',
     r"layer 'nk' \(Convolution\): convolution_param needs kernel_size"),
    ('layer { name: "st" type: "Pooling" bottom: "x" top: "p" pooling_param { pool: STOCHASTIC kernel_size: 2 } }',
     r"layer 'st' \(Pooling\): pool STOCHASTIC is not supported"),
    ('layer { name: "r" type: "ReLU" bottom: "nothing" top: "r" }',
     r"layer 'r' \(ReLU\): bottom 'nothing' is produced by no earlier layer"),
    ('layer { name: "ie" type: "ReLU" bottom: "x" top: "r" include { phase: TEST } exclude { phase: TRAIN } }',
     r"layer 'ie' \(ReLU\): has both include and exclude rules"),
])
def test_unsupported_input_names_the_layer_and_its_type(layer, message):
    text = 'input: "x" input_dim: 1 input_dim: 2 input_dim: 8 input_dim: 8\n' + layer
    with pytest.raises(NetgenError, match=message):
        read_prototxt(text)


def test_v1_prototxt_is_refused_naming_the_layer():
    text = ('input: "x" input_dim: 1 input_dim: 2 input_dim: 8 input_dim: 8\n'
            'layers { name: "conv1" type: CONVOLUTION bottom: "x" top: "c" '
            'convolution_param { num_output: 2 kernel_size: 1 } }')
    with pytest.raises(NetgenError, match=r"layer 'conv1' \(CONVOLUTION\): .* V1 `layers` format"):
        read_prototxt(text)


def test_no_input_and_missing_file_are_clear_errors(tmp_path):
    with pytest.raises(NetgenError, match="declares no input"):
        read_prototxt('layer { name: "r" type: "ReLU" bottom: "x" top: "x" }')
    with pytest.raises(NetgenError, match="no such file"):
        read_prototxt(tmp_path / "missing.prototxt")
    with pytest.raises(NetgenError, match=r"<prototxt>:1:\d+"):
        read_prototxt('input: "x" layer { name: ')


def test_a_path_given_as_a_string_is_a_path_even_with_braces_in_it(tmp_path):
    path = tmp_path / "net{1}.prototxt"
    path.write_text('input: "x" input_dim: 1 input_dim: 2 input_dim: 4 input_dim: 4\n'
                    'layer { name: "r" type: "ReLU" bottom: "x" top: "r" }\n')
    reading = read_net(str(path))
    assert reading.source == str(path) and reading.graph.name == "net{1}"


# ----------------------------------------------------------------------------- caffemodels


TINY = '''
name: "tiny"
input: "data"
input_dim: 1
input_dim: 3
input_dim: 8
input_dim: 8
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 bias_term: false } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }
layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool" type: "Pooling" bottom: "conv1" top: "pool" pooling_param { pool: AVE global_pooling: true } }
layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc" inner_product_param { num_output: 5 } }
'''


def _v1_blob(array: np.ndarray, legacy: tuple[int, int, int, int]):
    blob = caffe_proto.BlobProto(num=legacy[0], channels=legacy[1], height=legacy[2],
                                 width=legacy[3])
    blob.data.extend(np.asarray(array, np.float32).reshape(-1).tolist())
    return blob


def test_caffemodel_round_trip_is_exact(tmp_path):
    built = build(make_spec("cifar10", 20))
    weights = initial_weights(built, seed=3)
    for name, blobs in weights.items():  # make every number distinct from the init
        weights[name] = [b + np.float32(0.25) if not built.layer(name).fixed else b for b in blobs]
    (tmp_path / "deploy.prototxt").write_text(render_deploy(built))
    write_caffemodel(tmp_path / "model.caffemodel", built, weights)
    graph, read = read_caffe(tmp_path / "deploy.prototxt", tmp_path / "model.caffemodel")
    assert graph == built
    assert read.keys() == weights.keys()
    for name in weights:
        for got, want in zip(read[name], weights[name]):
            assert got.dtype == np.float32 and np.array_equal(got, want)


def test_without_caffemodel_the_deterministic_init_is_used(tmp_path):
    built = build(make_spec("imagenet", 18))
    (tmp_path / "d.prototxt").write_text(render_deploy(built))
    graph, weights = read_caffe(tmp_path / "d.prototxt", seed=7)
    want = initial_weights(built, 7)
    assert graph == built and weights.keys() == want.keys()
    assert all(np.array_equal(weights[k][0], want[k][0]) for k in want)


def test_v1_caffemodel_with_legacy_4d_blob_shapes(tmp_path):
    rng = np.random.default_rng(0)
    conv = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    mean, var = rng.random(4).astype(np.float32), 1 + rng.random(4).astype(np.float32)
    gamma, beta = rng.random(4).astype(np.float32), rng.random(4).astype(np.float32)
    fc_w, fc_b = rng.standard_normal((5, 4)).astype(np.float32), rng.random(5).astype(np.float32)
    net = caffe_proto.NetParameter(name="tiny")
    records = [
        ("data", 5, []),  # DATA: a train-time layer without blobs is ignored
        ("conv1", 4, [(conv, (4, 3, 3, 3))]),
        ("fc", 14, [(fc_w, (1, 1, 5, 4)), (fc_b, (1, 1, 1, 5))]),
        ("unrelated", 4, [(np.ones(2), (1, 1, 1, 2))]),  # not in the prototxt: ignored
    ]
    for name, kind, blobs in records:
        layer = net.layers.add(name=name, type=kind)
        for array, legacy in blobs:
            layer.blobs.append(_v1_blob(array, legacy))
    # BatchNorm and Scale have no V1 type; such files carry them as current-format layers
    bn = net.layer.add(name="bn1", type="BatchNorm")
    for array in (mean, var, np.array([2.0])):
        bn.blobs.append(_v1_blob(array, (1, 1, 1, array.size)))
    scale = net.layer.add(name="scale1", type="Scale")
    for array in (gamma, beta):
        scale.blobs.append(_v1_blob(array, (1, 1, 1, 4)))
    (tmp_path / "v1.caffemodel").write_bytes(net.SerializeToString())
    (tmp_path / "tiny.prototxt").write_text(TINY)
    graph, weights = read_caffe(tmp_path / "tiny.prototxt", tmp_path / "v1.caffemodel")
    assert [w.shape for w in weights["fc"]] == [(5, 4), (5,)]
    assert [w.shape for w in weights["bn1"]] == [(4,), (4,), (1,)]
    assert np.array_equal(weights["fc"][0], fc_w) and np.array_equal(weights["fc"][1], fc_b)
    assert np.array_equal(weights["conv1"][0], conv)
    assert weights["bn1"][2][0] == 2.0 and np.array_equal(weights["scale1"][1], beta)
    assert set(weights) == {"conv1", "bn1", "scale1", "fc"}
    assert sorted(caffemodel_blobs(tmp_path / "v1.caffemodel")) == ["bn1", "conv1", "fc",
                                                                    "scale1", "unrelated"]


def _tiny_weights(graph: ir.Graph) -> dict:
    return initial_weights(graph, 0)


def test_blob_count_shape_and_missing_layer_errors_name_the_layer(tmp_path):
    (tmp_path / "tiny.prototxt").write_text(TINY)
    graph = read_prototxt(tmp_path / "tiny.prototxt")
    biased = read_prototxt(TINY.replace("pad: 1 bias_term: false", "pad: 1"))
    (tmp_path / "biased.caffemodel").write_bytes(caffemodel_bytes(biased, _tiny_weights(biased)))
    with pytest.raises(NetgenError, match=re.escape(
            "layer 'conv1': caffemodel has 2 blobs, the prototxt implies 1 (bias_term: false)")):
        read_caffe(tmp_path / "tiny.prototxt", tmp_path / "biased.caffemodel")

    wide = read_prototxt(TINY.replace("num_output: 5", "num_output: 7"))
    (tmp_path / "wide.caffemodel").write_bytes(caffemodel_bytes(wide, _tiny_weights(wide)))
    with pytest.raises(NetgenError, match=re.escape(
            "layer 'fc': blob 0 (weights) has shape [7, 4] in the caffemodel, the prototxt "
            "implies [5, 4]")):
        read_caffe(tmp_path / "tiny.prototxt", tmp_path / "wide.caffemodel")

    partial = graph.with_layers([layer for layer in graph.layers if layer.name != "scale1"])
    (tmp_path / "partial.caffemodel").write_bytes(caffemodel_bytes(partial, _tiny_weights(partial)))
    with pytest.raises(NetgenError, match=r"layer 'scale1' \(Scale\): .*partial.caffemodel has no "
                                          r"blobs for it; the prototxt implies 2"):
        read_caffe(tmp_path / "tiny.prototxt", tmp_path / "partial.caffemodel")

    (tmp_path / "junk.caffemodel").write_bytes(b"\xff\xff\xff\xff not a protobuf")
    with pytest.raises(NetgenError, match="not a Caffe model"):
        read_caffe(tmp_path / "tiny.prototxt", tmp_path / "junk.caffemodel")


def test_subsample_is_fixed_only_with_weights_of_one(tmp_path):
    built = build(make_spec("cifar10", 20))
    weights = initial_weights(built, 0)
    (tmp_path / "d.prototxt").write_text(render_deploy(built))
    write_caffemodel(tmp_path / "ones.caffemodel", built, weights)
    graph, _ = read_caffe(tmp_path / "d.prototxt", tmp_path / "ones.caffemodel")
    assert graph.layer("res3a_branch1_sub").fixed and graph.layer("res4a_branch1_sub").fixed
    assert count(graph).params == 269_722
    weights["res3a_branch1_sub"] = [np.full((16, 1, 1, 1), 0.5, np.float32)]
    write_caffemodel(tmp_path / "learned.caffemodel", built, weights)
    graph, _ = weights_for(read_prototxt(tmp_path / "d.prototxt"), tmp_path / "learned.caffemodel")
    assert not graph.layer("res3a_branch1_sub").fixed and graph.layer("res4a_branch1_sub").fixed
    assert count(graph).params == 269_722 + 16
