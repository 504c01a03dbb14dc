"""The torchvision export fixtures themselves: the shapes issue 10 names, torchvision's counts."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from torchvision_exports import random_input, reference_forward, torchvision_resnet


def learned(model) -> int:
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer
               if not t.name.endswith(("running_mean", "running_var")) and t.data_type == 1)


# torchvision's own parameter counts (sum(p.numel() for p in model.parameters())).
@pytest.mark.parametrize("arch,params", [
    ("resnet18", 11_689_512), ("resnet34", 21_797_672), ("resnet50", 25_557_032),
    ("resnext50_32x4d", 25_028_904), ("wide_resnet50_2", 68_883_240),
    pytest.param("resnet101", 44_549_160, marks=pytest.mark.slow),
    pytest.param("resnet152", 60_192_808, marks=pytest.mark.slow),
    pytest.param("resnext101_32x8d", 88_791_336, marks=pytest.mark.slow),
    pytest.param("resnext101_64x4d", 83_455_272, marks=pytest.mark.slow),
    pytest.param("wide_resnet101_2", 126_886_696, marks=pytest.mark.slow),
])
def test_unfolded_exports_have_torchvisions_parameter_counts(arch, params):
    assert learned(torchvision_resnet(arch, "bn", input_size=32)) == params


def test_torchscript_export_shape():
    model = torchvision_resnet(50, "torchscript", input_size=64)
    assert model.ir_version == 8 and model.opset_import[0].version == 17
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops == {"Conv": 53, "Relu": 49, "Add": 16, "MaxPool": 1, "GlobalAveragePool": 1,
                   "Flatten": 1, "Gemm": 1}
    conv = model.graph.node[0]
    assert conv.name == "/conv1/Conv" and conv.input[1].startswith("onnx::Conv_") and len(conv.input) == 3
    names = [n.name for n in model.graph.node]
    assert "/layer1/layer1.0/conv1/Conv" in names and "/layer4/layer4.2/relu_2/Relu" in names
    # v1.5: the stride of layer2.0 on its 3x3 conv2, the downsample 1x1 of stride 2
    by_name = {n.name: n for n in model.graph.node}
    strides = {a.name: list(a.ints) for a in by_name["/layer2/layer2.0/conv2/Conv"].attribute}
    assert strides["strides"] == [2, 2]
    pool = {a.name: a for a in by_name["/maxpool/MaxPool"].attribute}
    assert pool["ceil_mode"].i == 0 and list(pool["pads"].ints) == [1, 1, 1, 1]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch_size"
    assert model.graph.output[0].name == "output"
    assert reference_forward(model, random_input(model, 3)).shape == (3, 1000)


def test_dynamo_export_shape():
    model = torchvision_resnet(18, "dynamo", input_size=64)
    assert model.ir_version == 10 and model.opset_import[0].version == 18
    ops = [n.op_type for n in model.graph.node]
    assert ops[-3:] == ["ReduceMean", "Reshape", "Gemm"]
    assert model.graph.node[0].name.startswith("node_Conv_")
    assert model.graph.node[0].input[2] == "conv1.weight_bias"
    assert {a.name: a.s for a in model.graph.node[0].attribute}["auto_pad"] == b"NOTSET"
    assert [i.name for i in model.graph.input] == ["x"] and model.graph.output[0].name == "linear"
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1


def test_bn_kept_export_and_variations():
    model = torchvision_resnet(18, "bn", input_size=64, head="matmul", dropout=True, softmax=True,
                               infer_shapes=True)
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["BatchNormalization"] == 20 and ops["Identity"] == 1
    assert ops["MatMul"] == 1 and ops["Dropout"] == 1 and ops["Softmax"] == 1 and "Gemm" not in ops
    assert all(len(n.input) == 2 for n in model.graph.node if n.op_type == "Conv")
    assert len(model.graph.value_info) > 50
    probs = reference_forward(model, random_input(model, 2))
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_folding_matches_the_unfolded_export():
    """Same seed, same random draws: the folded file computes what the BN file computes."""
    x = random_input(torchvision_resnet(18, "bn", input_size=64), 2, seed=3)
    want = reference_forward(torchvision_resnet(18, "bn", input_size=64), x)
    for exporter in ("torchscript", "dynamo"):
        model = torchvision_resnet(18, exporter, input_size=64, batch=2)
        got = reference_forward(model, x)
        assert np.max(np.abs(got - want)) <= 1e-4 * np.max(np.abs(want)), exporter


def test_grouped_bottleneck_has_torchvisions_width():
    model = torchvision_resnet("resnext50_32x4d", "torchscript", input_size=64)
    conv2 = next(n for n in model.graph.node if n.name == "/layer1/layer1.0/conv2/Conv")
    assert {a.name: a.i for a in conv2.attribute if a.name == "group"} == {"group": 32}
    weight = next(t for t in model.graph.initializer if t.name == conv2.input[1])
    assert list(weight.dims) == [128, 4, 3, 3]


def test_fixtures_are_deterministic():
    for exporter in ("torchscript", "dynamo", "bn"):
        a = torchvision_resnet(18, exporter, input_size=32, seed=5)
        b = torchvision_resnet(18, exporter, input_size=32, seed=5)
        assert a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True)
    other = torchvision_resnet(18, "bn", input_size=32, seed=6)
    assert other.graph.initializer[0].raw_data != a.graph.initializer[0].raw_data
