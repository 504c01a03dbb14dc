"""The builder against the paper's tables and the published MSRA naming scheme."""

from __future__ import annotations

import pytest

from netgen.arch import ir
from netgen.arch.builder import block_ids, build
from netgen.arch.counting import count
from netgen.arch.spec import make_spec
from netgen.errors import NetgenError

# DESIGN.md's exact counts (bias-free conv1): (depth, option) -> parameters.
EXACT_PARAMS = {
    (18, "A"): 11_515_688, (18, "B"): 11_689_512, (18, "C"): 12_043_816,
    (34, "A"): 21_623_848, (34, "B"): 21_797_672, (34, "C"): 22_716_840,
    (50, "A"): 22_780_456, (50, "B"): 25_557_032,
    (101, "A"): 41_772_584, (101, "B"): 44_549_160,
    (152, "A"): 57_416_232, (152, "B"): 60_192_808,
}
CIFAR_EXACT = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962,
               1202: 19_421_274}
TABLE6_PARAMS_M = {20: "0.27", 32: "0.46", 44: "0.66", 56: "0.85", 110: "1.7", 1202: "19.4"}
CIFAR_MACS_M = {20: "40.6", 32: "68.9", 44: "97.2", 56: "125.5", 110: "252.9", 1202: "2829"}
TABLE1_MACS_G = {18: "1.8", 34: "3.6", 50: "3.8", 101: "7.6", 152: "11.3"}


def _printed(value: float, printed: str) -> bool:
    """Equal to the paper's figure at the paper's printed precision."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return f"{value:.{decimals}f}" == printed


def _within_last_digit(value: float, printed: str) -> bool:
    """Within one unit of the figure's last printed digit.

    Table 1 prints 3.8 for ResNet-50, whose exact count is 3.858 x 10^9 (DESIGN.md): the paper
    truncated there and rounded for 101 (7.570 -> 7.6), so neither rounding rule fits all five.
    """
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return abs(value - float(printed)) < 10 ** -decimals


@pytest.mark.parametrize(("depth", "shortcut"), sorted(EXACT_PARAMS))
def test_imagenet_parameters_equal_design_exact_counts(depth, shortcut):
    spec = make_spec("imagenet", depth, shortcut)
    bias = 64 if depth == 50 else 0  # the published ResNet-50's conv1 bias, kept by default
    assert spec.conv1_bias == bool(bias)
    assert count(build(spec)).params == EXACT_PARAMS[(depth, shortcut)] + bias
    assert count(build(make_spec("imagenet", depth, shortcut, conv1_bias=False))).params == \
        EXACT_PARAMS[(depth, shortcut)]


def test_plain_nets_have_option_a_parameter_counts():
    for depth in (18, 34, 50):
        spec = make_spec("imagenet", depth, plain=True, conv1_bias=False)
        assert count(build(spec)).params == EXACT_PARAMS[(depth, "A")]


def test_published_resnet50_conv1_bias_adds_64_parameters():
    graph = build(make_spec("imagenet", 50))
    assert graph.layer("conv1").blob_shapes == ((64, 3, 7, 7), (64,))
    assert count(graph).params == 25_557_096
    assert build(make_spec("imagenet", 101)).layer("conv1").blob_shapes == ((64, 3, 7, 7),)


@pytest.mark.parametrize("depth", sorted(TABLE1_MACS_G))
def test_multiply_adds_match_table1(depth):
    # Table 1's 18/34 figures are the parameter-free nets, 50/101/152 option B.
    shortcut = "A" if depth < 50 else "B"
    macs = count(build(make_spec("imagenet", depth, shortcut))).macs
    assert _within_last_digit(macs / 1e9, TABLE1_MACS_G[depth])


@pytest.mark.parametrize(("depth", "stride_in", "expected"), [
    (50, "1x1", "3.858"), (101, "1x1", "7.570"), (152, "1x1", "11.282"),
    (50, "3x3", "4.089"), (101, "3x3", "7.801"), (152, "3x3", "11.514"),
    (18, "1x1", "1.814"), (34, "1x1", "3.664")])
def test_option_b_multiply_adds_exact(depth, stride_in, expected):
    spec = make_spec("imagenet", depth, "B", stride_in=stride_in) if depth >= 50 else make_spec("imagenet", depth, "B")
    counts = count(build(spec))
    assert _printed(counts.macs / 1e9, expected)
    if depth == 50:
        assert counts.params == 25_557_096  # stride placement moves no parameter
        bias_free = make_spec("imagenet", 50, "B", stride_in=stride_in, conv1_bias=False)
        assert count(build(bias_free)).params == 25_557_032


@pytest.mark.parametrize("depth", sorted(CIFAR_EXACT))
def test_cifar_parameters_match_table6_and_exact(depth):
    counts = count(build(make_spec("cifar10", depth)))
    assert counts.params == CIFAR_EXACT[depth]
    assert _printed(counts.params / 1e6, TABLE6_PARAMS_M[depth])
    assert _printed(counts.macs / 1e6, CIFAR_MACS_M[depth])


@pytest.mark.parametrize(("depth", "total", "by_type"), [
    (50, 228, {"Convolution": 53, "BatchNorm": 53, "Scale": 53, "ReLU": 49, "Pooling": 2,
               "Eltwise": 16, "InnerProduct": 1, "Softmax": 1}),
    (101, 449, {"Convolution": 104, "BatchNorm": 104, "Scale": 104, "ReLU": 100, "Pooling": 2,
                "Eltwise": 33, "InnerProduct": 1, "Softmax": 1}),
    (152, 670, {"Convolution": 155, "BatchNorm": 155, "Scale": 155, "ReLU": 151, "Pooling": 2,
                "Eltwise": 50, "InnerProduct": 1, "Softmax": 1}),
])
def test_msra_layer_counts(depth, total, by_type):
    graph = build(make_spec("imagenet", depth))
    assert len(graph.layers) == total
    assert count(graph).layer_types == dict(sorted(by_type.items()))


def test_block_identifiers_follow_the_published_files():
    assert block_ids((3, 4, 6, 3)) == [list("abc"), list("abcd"), list("abcdef"), list("abc")]
    ids101 = block_ids((3, 4, 23, 3))
    assert ids101[1] == ["a", "b1", "b2", "b3"]
    assert ids101[2] == ["a"] + [f"b{i}" for i in range(1, 23)]
    assert ids101[0] == ids101[3] == list("abc")
    ids152 = block_ids((3, 8, 36, 3))
    assert ids152[1][-1] == "b7" and ids152[2][-1] == "b35"


def test_bottleneck_block_wiring_and_names():
    graph = build(make_spec("imagenet", 101))
    names = [layer.name for layer in graph.layers]
    block = names[names.index("res4b22_branch2a") - 1: names.index("res4b22_relu") + 1]
    assert block == ["res4b21_relu", "res4b22_branch2a", "bn4b22_branch2a", "scale4b22_branch2a",
                     "res4b22_branch2a_relu", "res4b22_branch2b", "bn4b22_branch2b",
                     "scale4b22_branch2b", "res4b22_branch2b_relu", "res4b22_branch2c",
                     "bn4b22_branch2c", "scale4b22_branch2c", "res4b22", "res4b22_relu"]
    eltwise = graph.layer("res4b22")
    assert eltwise.bottoms == ("res4b21", "res4b22_branch2c")
    assert graph.layer("bn4b22_branch2a").in_place
    assert graph.layer("res5a").bottoms == ("res5a_branch1", "res5a_branch2c")
    assert graph.layer("pool5").param == ir.PoolingParam("AVE", (7, 7), (1, 1))
    assert graph.layer("pool5").top_shapes == ((1, 2048, 1, 1),)
    assert graph.outputs == ("prob",)


@pytest.mark.parametrize("stride_in", ["1x1", "3x3"])
def test_stride_placement(stride_in):
    graph = build(make_spec("imagenet", 50, stride_in=stride_in))
    for block in ("3a", "4a", "5a"):
        a, b = graph.layer(f"res{block}_branch2a").param, graph.layer(f"res{block}_branch2b").param
        assert (a.stride, b.stride) == (((2, 2), (1, 1)) if stride_in == "1x1" else ((1, 1), (2, 2)))
        assert b.kernel == (3, 3) and b.pad == (1, 1)
        assert graph.layer(f"res{block}_branch1").param.stride == (2, 2)
    assert graph.layer("res2a_branch2a").param.stride == (1, 1)


@pytest.mark.parametrize(("spec_args", "stage_shapes"), [
    (("imagenet", 18), [(64, 56, 56), (64, 56, 56), (128, 28, 28), (256, 14, 14), (512, 7, 7)]),
    (("imagenet", 152), [(64, 56, 56), (256, 56, 56), (512, 28, 28), (1024, 14, 14), (2048, 7, 7)]),
    (("cifar10", 56), [(16, 32, 32), (16, 32, 32), (32, 16, 16), (64, 8, 8)]),
])
def test_stage_output_sizes(spec_args, stage_shapes):
    stages = count(build(make_spec(*spec_args))).stages
    assert [s.output_size for s in stages[:-1]] == stage_shapes


def test_option_c_projects_every_block_and_b_only_where_shapes_change():
    b = build(make_spec("imagenet", 34, "B"))
    c = build(make_spec("imagenet", 34, "C"))
    projections = lambda g: sorted(l.name for l in g.layers if l.name.endswith("_branch1") and l.type == "Convolution")
    assert projections(b) == ["res3a_branch1", "res4a_branch1", "res5a_branch1"]
    assert len(projections(c)) == 16


def test_option_a_uses_stock_layers_and_no_parameters():
    graph = build(make_spec("cifar10", 20))
    sub = graph.layer("res3a_branch1_sub")
    assert sub.fixed and sub.param.group == 16 and sub.param.kernel == (1, 1) and sub.param.stride == (2, 2)
    assert sub.top_shapes == ((1, 16, 16, 16),)
    assert graph.layer("res3a_branch1_zeros").param == ir.PowerParam(scale=0.0)
    concat = graph.layer("res3a_branch1")
    assert concat.bottoms == ("res3a_branch1_sub", "res3a_branch1_zeros")
    assert concat.top_shapes == ((1, 32, 16, 16),)
    # bottleneck 64 -> 256 without a resolution change pads three copies of zeros
    r50a = build(make_spec("imagenet", 50, "A"))
    assert r50a.layer("res2a_branch1").bottoms == ("pool1",) + ("res2a_branch1_zeros",) * 3


def test_plain_nets_have_no_shortcuts():
    graph = build(make_spec("cifar10", 20, plain=True))
    assert not [l for l in graph.layers if l.type in ("Eltwise", "Concat", "Power")]
    assert graph.layer("res2a_branch2a").bottoms == ("conv1",)


def test_custom_layout():
    spec = make_spec("imagenet", stages=(3, 24, 36, 3), block="bottleneck")
    assert spec.depth == 200 and spec.name == "resnet200-3-24-36-3-bottleneck-B"
    graph = build(spec)
    assert graph.layer("res3b23_branch2c").top_shapes == ((1, 512, 28, 28),)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"dataset": "imagenet", "depth": 7}, "not in Table 1"),
    ({"dataset": "cifar10", "depth": 21}, r"6n\+2"),
    ({"dataset": "imagenet", "shortcut": "D"}, "allowed: A, B, C"),
    ({"dataset": "imagenet", "shortcut": "A", "plain": True}, "--plain nets"),
    ({"dataset": "imagenet", "depth": -50}, "positive"),
    ({"dataset": "mnist"}, "allowed: imagenet, cifar10"),
    ({"dataset": "imagenet", "stages": (3, 0, 6, 3)}, "positive"),
    ({"dataset": "imagenet", "depth": 18, "stride_in": "3x3"}, "bottleneck"),
    ({"dataset": "imagenet", "input_size": 16}, "too small"),
    ({"dataset": "imagenet", "stages": (3, 4, 6)}, "4 stages"),
])
def test_spec_errors_name_what_is_allowed(kwargs, message):
    with pytest.raises(NetgenError, match=message):
        make_spec(**kwargs)


@pytest.mark.parametrize("name", ["resnet50-B", "resnet50-A", "plain34", "cifar10-resnet110-A",
                                  "resnet50-B-stride3x3", "resnet50-B-noconv1bias",
                                  "resnet101-B-conv1bias", "resnet18-A-classes100-input112", "cifar10-resnet20-A-classes100", "resnet50-A-stride3x3-noconv1bias", "resnet200-3-24-36-3-bottleneck-B"])
def test_names_round_trip(name):
    from netgen.arch.spec import spec_from_name
    assert spec_from_name(name).name == name


def test_conv1_bias_override_shows_in_the_name():
    spec = make_spec("imagenet", 50, conv1_bias=False)
    assert spec.name == "resnet50-B-noconv1bias"
    assert count(build(spec)).params == 25_557_032
