"""Squeeze-and-excitation and the "bag of tricks" ResNet-C/D: spec, names, builder, counts.

Counts are checked against timm's published parameter counts and against closed-form counts
written here block by block (the torchvision/timm ResNet, independently of the builder).
"""

from __future__ import annotations

import pytest

from netgen.arch.builder import build
from netgen.arch.counting import count
from netgen.arch.paper_figures import figures_for
from netgen.arch.spec import (FAMILY_NAMES, make_spec, se_width_of, spec_from_name)
from netgen.arch.weights import initial_weights, residual_scales
from netgen.errors import NetgenError

# timm's parameter counts, 1000 classes (its model cards / sum(p.numel())).
TIMM = {
    "seresnet50": 28_088_024, "seresnet101": 49_326_872, "seresnet152": 66_821_848,
    "seresnext50-32x4d": 27_559_896, "seresnext101-32x4d": 48_955_416,
    "resnet18d": 11_708_744, "resnet34d": 21_816_904, "resnet26d": 16_014_408,
    "resnet50c": 25_576_264, "resnet50d": 25_576_264, "resnet101d": 44_568_392,
    "resnet152d": 60_212_040,
}
# SENet's Caffe SE-ResNet-50/101/152 (stride on the first 1x1, MSRA's pool1) and
# SE-ResNeXt-50/101 (MSRA's pool1): the same weights as timm's.
SENET = {"seresnet50-stride1x1-msrapool": "seresnet50",
         "seresnet101-stride1x1-msrapool": "seresnet101",
         "seresnet152-stride1x1-msrapool": "seresnet152",
         "seresnext50-32x4d-msrapool": "seresnext50-32x4d",
         "seresnext101-32x4d-msrapool": "seresnext101-32x4d"}
LAYOUTS = {18: ("basic", (2, 2, 2, 2)), 26: ("bottleneck", (2, 2, 2, 2)),
           34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3)),
           101: ("bottleneck", (3, 4, 23, 3)), 152: ("bottleneck", (3, 8, 36, 3))}


def make_divisible(v: float, divisor: int = 8) -> int:
    """timm.layers.make_divisible, as timm writes it."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def timm_params(depth: int, groups: int = 1, width_per_group: int = 64, se: bool = False,
                deep: bool = False, se_rule=make_divisible, classes: int = 1000) -> int:
    """timm's ResNet counted by hand: stem, blocks (BN = 2 per channel), SE, fc."""
    block, stages = LAYOUTS[depth]
    if deep:
        params = 3 * 32 * 9 + 32 * 32 * 9 + 32 * 64 * 9 + 2 * (32 + 32 + 64)
    else:
        params = 3 * 64 * 49 + 2 * 64
    c_in = 64
    for s, (n, planes) in enumerate(zip(stages, (64, 128, 256, 512))):
        for i in range(n):
            if block == "basic":
                c_out = planes
                params += c_in * planes * 9 + planes * planes * 9 + 4 * planes
            else:
                inner = planes * width_per_group // 64 * groups
                c_out = planes * 4
                params += (c_in * inner + inner * inner // groups * 9 + inner * c_out
                           + 2 * (2 * inner + c_out))
            if i == 0 and (s > 0 or c_in != c_out):
                params += c_in * c_out + 2 * c_out
            if se:
                r = se_rule(c_out / 16)
                params += 2 * c_out * r + r + c_out
            c_in = c_out
    return params + c_in * classes + classes


def test_make_divisible_rule_is_timms():
    assert [se_width_of(c, 16, "timm") for c in (64, 128, 256, 512, 2048)] == [8, 8, 16, 32, 128]
    assert [se_width_of(c, 16, "floor") for c in (64, 128, 256, 2048)] == [4, 8, 16, 128]
    for c in range(8, 4096, 8):
        for r in (4, 8, 16, 32):
            assert se_width_of(c, r, "timm") == make_divisible(c / r)


@pytest.mark.parametrize("name", sorted(TIMM))
def test_timm_counts_exact(name):
    spec = spec_from_name(name)
    assert spec.name == name
    params = count(build(spec)).params
    assert params == TIMM[name]
    depth = spec.depth
    groups = spec.groups
    assert params == timm_params(depth, groups, spec.width_per_group, se=bool(spec.se_reduction),
                                 deep=spec.deep_stem)
    assert [f.printed for f in figures_for(spec)] == [f"{TIMM[name]:,}"]


@pytest.mark.parametrize("name", sorted(SENET))
def test_senet_layout_counts_equal_timms(name):
    spec = spec_from_name(name)
    assert spec.stem_pool == "msra" and not spec.conv1_bias
    assert spec.stride_in == ("1x1" if "resnext" not in name else "3x3")
    assert count(build(spec)).params == TIMM[SENET[name]]
    assert figures_for(spec)[0].matches(TIMM[SENET[name]])


def test_se_width_rule_changes_basic_nets_only():
    timm18, floor18 = spec_from_name("seresnet18"), spec_from_name("seresnet18-sefloor")
    assert timm18.se_widths == (8, 8, 16, 32) and floor18.se_widths == (4, 8, 16, 32)
    assert count(build(timm18)).params == timm_params(18, se=True)
    assert count(build(floor18)).params == timm_params(18, se=True, se_rule=lambda v: int(v))
    assert count(build(timm18)).params - count(build(floor18)).params == 2 * (2 * 64 * 4 + 4)
    # Where both rules give the same widths the name is the default one: one net, one name.
    assert make_spec(depth=50, se=16, se_width="floor").name == "seresnet50"
    with pytest.raises(NetgenError, match="canonical"):
        spec_from_name("seresnet50-sefloor")
    # CIFAR-10's default is the hand-written code's C // 16.
    assert spec_from_name("cifar10-seresnet20").se_widths == (1, 2, 4)
    assert spec_from_name("cifar10-seresnet20-setimm").se_widths == (8, 8, 8)
    assert spec_from_name("seresnet50-r8").se_widths == (32, 64, 128, 256)


@pytest.mark.parametrize("name", [n for n in FAMILY_NAMES if n.startswith("se") or
                                  n.endswith(("c", "d", "msrapool")) and "resnet" in n])
def test_family_names_round_trip(name):
    assert spec_from_name(name).name == name


def test_se_unit_layers_and_wiring():
    graph = build(spec_from_name("seresnet50-stride1x1-msrapool"))
    names = [layer.name for layer in graph.layers]
    i = names.index("scale2a_branch2c")
    assert names[i + 1:i + 7] == ["res2a_se_pool", "res2a_se_down", "res2a_se_down_relu",
                                  "res2a_se_up", "res2a_se_prob", "res2a"]
    pool = graph.layer("res2a_se_pool")
    assert pool.param.pool == "AVE" and pool.param.global_pooling
    down, up = graph.layer("res2a_se_down"), graph.layer("res2a_se_up")
    assert down.param.bias_term and up.param.bias_term and down.param.kernel == (1, 1)
    assert down.top_shapes[0] == (1, 16, 1, 1) and up.top_shapes[0] == (1, 256, 1, 1)
    prob = graph.layer("res2a_se_prob")
    assert prob.type == "Sigmoid" and prob.tops == prob.bottoms == ("res2a_se_up",)
    axpy = graph.layer("res2a")
    assert axpy.type == "Axpy"
    assert axpy.bottoms == ("res2a_se_up", "res2a_branch2c", "res2a_branch1")
    assert axpy.top_shapes[0] == (1, 256, 56, 56)
    types = count(graph).layer_types
    assert types["Axpy"] == 16 and types["Sigmoid"] == 16 and "Eltwise" not in types
    assert types["Convolution"] == 53 + 32
    # SENet: stride on the first 1x1; pool1 pad 0 rounding up
    assert graph.layer("res3a_branch2a").param.stride == (2, 2)
    assert graph.layer("pool1").param.pad == (0, 0)
    # init: each branch's last Scale is damped, the SE convolutions are He-initialised
    assert len(residual_scales(graph)) == 16
    weights = initial_weights(graph)
    assert float(weights["scale2a_branch2c"][0][0]) == pytest.approx(1 / 4)
    assert weights["res2a_se_down"][1].shape == (16,)


def test_resnet_d_projection_and_c_stem():
    graph = build(spec_from_name("resnet50d"))
    names = [layer.name for layer in graph.layers]
    assert names[:12] == ["conv1_1", "bn_conv1_1", "scale_conv1_1", "conv1_1_relu",
                          "conv1_2", "bn_conv1_2", "scale_conv1_2", "conv1_2_relu",
                          "conv1_3", "bn_conv1_3", "scale_conv1_3", "conv1_3_relu"]
    assert [graph.layer(f"conv1_{i}").param.num_output for i in (1, 2, 3)] == [32, 32, 64]
    assert graph.layer("conv1_1").param.stride == (2, 2)
    assert graph.layer("pool1").top_shapes[0] == (1, 64, 56, 56)
    # conv2_x does not downsample: its projection is the 1x1 alone
    assert "res2a_branch1_pool" not in names
    assert graph.layer("res2a_branch1").param.stride == (1, 1)
    for block, size in (("3a", 28), ("4a", 14), ("5a", 7)):
        pool = graph.layer(f"res{block}_branch1_pool")
        assert (pool.param.pool, pool.param.kernel, pool.param.stride, pool.param.pad,
                pool.param.round_mode) == ("AVE", (2, 2), (2, 2), (0, 0), "CEIL")
        assert pool.top_shapes[0][2:] == (size, size)
        conv = graph.layer(f"res{block}_branch1")
        assert conv.bottoms == pool.tops and conv.param.stride == (1, 1)
        assert graph.layer(f"res{block}_branch2b").param.stride == (2, 2)  # timm: on the 3x3
    assert "res3a_branch1_pool" not in [l.name for l in build(spec_from_name("resnet50c")).layers]
    # Odd maps: input 200 gives 25x25 after conv3_x; the pooled shortcut rounds up to 13 as
    # the strided 3x3 of the main path does, so the sum's shapes agree.
    odd = build(make_spec(depth=50, deep_stem=True, avg_down=True, input_size=200))
    assert odd.layer("res3d").top_shapes[0][2:] == (25, 25)
    for block, size in (("4a", 13), ("5a", 7)):
        pool = odd.layer(f"res{block}_branch1_pool")
        assert pool.top_shapes[0][2:] == (size, size)
        assert odd.layer(f"res{block}_branch2c").top_shapes[0][2:] == (size, size)


@pytest.mark.parametrize("kwargs, message", [
    (dict(se=16, plain=True), "--plain"),
    (dict(deep_stem=True, preact=True), "--preact"),
    (dict(avg_down=True, preact=True), "--preact"),
    (dict(se=0), "positive"),
    (dict(se_width="timm"), "give --se R"),
    (dict(se=16, se_width="round"), "allowed: floor"),
    (dict(se=128, depth=18, se_width="floor"), "leaves no channel"),
    (dict(deep_stem=True, dataset="cifar10"), "CIFAR-10"),
    (dict(avg_down=True, shortcut="A"), "option A"),
    (dict(avg_down=True, plain=True), "plain"),
])
def test_bad_combinations_fail_clearly(kwargs, message):
    with pytest.raises(NetgenError, match=message):
        make_spec(**kwargs)


@pytest.mark.parametrize("name, message", [
    ("resnet50-r8", "starts with se"),
    ("resnet50d-avgdown", "already means"),
    ("seresnet50-stride3x3", "canonical"),
    ("resnet26", "not in Table 1"),
])
def test_bad_names_fail_clearly(name, message):
    with pytest.raises(NetgenError, match=message):
        spec_from_name(name)


def test_cli_options(run_cli):
    result = run_cli("summary", "--depth", "50", "--se", "16", "--deep-stem", "--avg-down")
    assert result.code == 0
    assert result.out.startswith("seresnet50d:") and "SE units of reduction 16" in result.out
    assert "28,107,256" in result.out
    result = run_cli("summary", "--depth", "18", "--se", "16", "--se-width", "floor")
    assert result.out.startswith("seresnet18-sefloor:")
    result = run_cli("build", "--depth", "18", "--deep-stem", "--preact", "-o", "/nonexistent/x")
    assert result.code == 2 and "--preact" in result.err
    text = run_cli("list").out
    for name in ("seresnet152-stride1x1-msrapool", "resnet26d", "resnet50c"):
        assert name in text
