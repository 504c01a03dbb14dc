"""The residual family: pre-activation ResNets, ResNeXt and Wide ResNets in the spec and builder.

Counts are checked twice: against the published figures (torchvision's parameter counts and
multiply-adds, the ResNeXt paper's 4.2 x 10^9, the pre-activation paper's 1.7M and 10.2M)
and against closed-form counts written here block by block, independently of the builder.
"""

from __future__ import annotations

import json

import pytest

from netgen.arch import ir
from netgen.arch.builder import BLOCK_KINDS, build
from netgen.arch.counting import count, layer_params
from netgen.arch.paper_figures import figures_for
from netgen.arch.spec import FAMILY_NAMES, ArchSpec, is_network_name, make_spec, spec_from_name
from netgen.arch.weights import initial_weights, residual_scales
from netgen.errors import NetgenError

# torchvision's published parameter counts (weights' meta "num_params") and multiply-adds
# ("_ops", G) of its ResNet class with groups / width_per_group.
TORCHVISION = {
    "resnext50-32x4d": ((3, 4, 6, 3), 32, 4, 25_028_904, "4.23"),
    "resnext101-32x8d": ((3, 4, 23, 3), 32, 8, 88_791_336, "16.414"),
    "resnext101-64x4d": ((3, 4, 23, 3), 64, 4, 83_455_272, "15.46"),
    "wide-resnet50-2": ((3, 4, 6, 3), 1, 128, 68_883_240, "11.398"),
    "wide-resnet101-2": ((3, 4, 23, 3), 1, 128, 126_886_696, "22.753"),
}


def torchvision_counts(layers, groups, width_per_group, classes=1000, size=224):
    """torchvision.models.resnet.ResNet with Bottleneck, counted by hand: (params, macs).

    conv1 7x7/2 + BN, max pool /2; per block conv1x1 -> BN -> conv3x3 (stride, groups) -> BN
    -> conv1x1 -> BN, downsample 1x1 conv (stride) + BN in each stage's first block; fc.
    """
    h = (size + 2 * 3 - 7) // 2 + 1
    params, macs = 3 * 64 * 49 + 2 * 64, h * h * 3 * 64 * 49
    h = -(-(h - 3) // 2) + 1  # Caffe's pooling rounds up (torchvision pads 1: same 56 at 224)
    inplanes = 64
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
        width, out = int(planes * width_per_group / 64) * groups, planes * 4
        for b in range(blocks):
            stride = 2 if (b == 0 and stage > 0) else 1
            h_out = (h - 1) // stride + 1
            params += inplanes * width + 2 * width
            macs += h * h * inplanes * width
            params += width * (width // groups) * 9 + 2 * width
            macs += h_out * h_out * width * (width // groups) * 9
            params += width * out + 2 * out
            macs += h_out * h_out * width * out
            if b == 0:
                params += inplanes * out + 2 * out
                macs += h_out * h_out * inplanes * out
            inplanes, h = out, h_out
    return params + 2048 * classes + classes, macs + 2048 * classes


def preact_cifar_counts(n):
    """The pre-activation paper's CIFAR bottleneck net (resnet-1k-layers), by hand:
    (all parameters, convolution + fc weights only).

    conv1 3x3 16 (no BN after it); per block BN-ReLU-1x1, BN-ReLU-3x3, BN-ReLU-1x1 (widths
    16/32/64, outputs x4), a 1x1 projection (no BN) in each stage's first block; final BN, fc.
    """
    weights, bn = 3 * 16 * 9, 0
    c_in = 16
    for planes in (16, 32, 64):
        out = 4 * planes
        for b in range(n):
            bn += 2 * (c_in + planes + planes)
            weights += c_in * planes + planes * planes * 9 + planes * out
            if b == 0:
                weights += c_in * out
            c_in = out
    bn += 2 * 256
    weights += 256 * 10 + 10
    return weights + bn, weights


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_resnext_and_wide_counts_equal_torchvision(name):
    layers, groups, wpg, published, ops = TORCHVISION[name]
    spec = spec_from_name(name)
    assert (spec.stages, spec.groups, spec.width_per_group) == (layers, groups, wpg)
    counts = count(build(spec))
    params, macs = torchvision_counts(layers, groups, wpg)
    assert counts.params == params == published
    assert counts.macs == macs
    assert f"{macs / 1e9:.{len(ops.split('.')[1])}f}" == ops


def test_resnext50_multiply_adds_are_the_papers_4_2_g():
    macs = count(build(spec_from_name("resnext50-32x4d"))).macs
    assert round(macs / 1e9, 1) == 4.2  # ResNeXt paper, Table 1: 4.2 x 10^9
    # The same net with the stride on the first 1x1 (the paper's Caffe placement) is cheaper.
    on_1x1 = count(build(make_spec(groups=32, width_per_group=4, stride_in="1x1"))).macs
    assert on_1x1 < macs


@pytest.mark.parametrize(("name", "n", "printed"), [("cifar10-preresnet164", 18, "1.7"),
                                                     ("cifar10-preresnet1001", 111, "10.2")])
def test_preact_cifar_counts(name, n, printed):
    spec = spec_from_name(name)
    assert spec.stages == (n, n, n) and spec.block == "bottleneck" and spec.preact
    graph = build(spec)
    counts = count(graph)
    total, weights_only = preact_cifar_counts(n)
    assert counts.params == total
    # The paper's figure counts convolution and fc weights, not BN's scale and shift.
    learned = sum(layer_params(l) for l in graph.layers if l.type in ("Convolution", "InnerProduct"))
    assert learned == weights_only
    assert f"{weights_only / 1e6:.1f}" == printed
    assert 9 * n + 2 == spec.depth
    figures = figures_for(spec)
    assert figures and all(f.matches(total) for f in figures)


def test_preresnet200_layout():
    spec = spec_from_name("preresnet200")
    assert spec.stages == (3, 24, 36, 3) and spec.block == "bottleneck" and spec.preact
    assert spec.stride_in == "3x3" and not spec.conv1_bias and spec.shortcut == "B"
    graph = build(spec)
    assert graph.layer("res3b23_branch2c").top_shapes == ((1, 512, 28, 28),)
    assert graph.layer("res3a_branch2b").param.stride == (2, 2)
    assert graph.layer("res3a_branch2a").param.stride == (1, 1)
    # Stem conv1-BN-ReLU-pool as the paper's; the first block adds no BN-ReLU of its own.
    assert graph.layer("res2a_branch2a").bottoms == ("pool1",)
    assert graph.layer("res2a_branch1").bottoms == ("pool1",)
    assert [s.blocks for s in count(graph).stages] == [0, 3, 24, 36, 3, 0]


def _layer_names(graph: ir.Graph, first: str, last: str) -> list[str]:
    names = [l.name for l in graph.layers]
    return names[names.index(first): names.index(last) + 1]


def test_preact_bottleneck_wiring():
    graph = build(spec_from_name("cifar10-preresnet164"))
    # CIFAR: conv1 alone, then the first block's BN-ReLU (on a new blob: it is shared with
    # the projection, which takes the pre-activated input).
    assert graph.layers[0].name == "conv1" and graph.layers[1].name == "bn2a_branch2a"
    assert graph.layer("bn2a_branch2a").tops == ("bn2a_branch2a",)
    assert graph.layer("res2a_branch1").bottoms == ("bn2a_branch2a",)
    assert graph.layer("res2a_branch1").param.kernel == (1, 1)
    assert "bn2a_branch1" not in {l.name for l in graph.layers}  # projection without BN
    assert graph.layer("res3a_branch1").param.stride == (2, 2)
    assert graph.layer("res3a_branch2a").param.stride == (2, 2)  # resnet-1k-layers: on the 1x1
    # An identity block: BN-Scale-ReLU-conv three times, the sum, nothing after it.
    assert _layer_names(graph, "bn3b5_branch2a", "res3b5") == [
        "bn3b5_branch2a", "scale3b5_branch2a", "res3b5_branch2a_relu", "res3b5_branch2a",
        "bn3b5_branch2b", "scale3b5_branch2b", "res3b5_branch2b_relu", "res3b5_branch2b",
        "bn3b5_branch2c", "scale3b5_branch2c", "res3b5_branch2c_relu", "res3b5_branch2c",
        "res3b5"]
    assert graph.layer("bn3b5_branch2a").bottoms == ("res3b4",)
    assert graph.layer("bn3b5_branch2a").tops == ("bn3b5_branch2a",)  # res3b4 stays clean
    assert graph.layer("bn3b5_branch2b").in_place
    assert graph.layer("res3b5").bottoms == ("res3b4", "res3b5_branch2c")
    assert graph.layer("res3b6_branch2a").bottoms == ("bn3b6_branch2a",)
    assert not [l for l in graph.layers if l.name.endswith("_relu") and l.bottoms[0].startswith("res")
                and l.bottoms[0] == l.name[:-5]]  # no ReLU after any sum
    # The final BN-ReLU before global pooling.
    assert _layer_names(graph, "bn_final", "prob") == [
        "bn_final", "scale_final", "final_relu", "pool4", "fc10", "prob"]
    assert graph.layer("pool4").top_shapes == ((1, 256, 1, 1),)
    assert graph.layer("bn_final").stage == "head"
    assert [s.blocks for s in count(graph).stages] == [0, 18, 18, 18, 0]


def test_preact_basic_and_option_a():
    spec = make_spec("cifar10", 110, preact=True, shortcut="A")
    assert spec.block == "basic" and spec.name == "cifar10-preresnet110-A"
    graph = build(spec)
    # Option A's identity takes the raw input (clean), the branch its pre-activation.
    assert graph.layer("res3a_branch1_sub").bottoms == ("res2b17",)
    assert graph.layer("bn3a_branch2a").bottoms == ("res2b17",)
    assert graph.layer("res3a_branch2a").bottoms == ("bn3a_branch2a",)
    assert graph.layer("res3a").bottoms == ("res3a_branch1", "res3a_branch2b")
    # Option A has no projection: the parameters are the units', conv1's, final BN's and fc's.
    total, c_in = 3 * 16 * 9, 16
    for c in (16, 32, 64):
        for _ in range(18):
            total += 2 * c_in + c_in * c * 9 + 2 * c + c * c * 9
            c_in = c
    assert count(graph).params == total + 2 * 64 + 64 * 10 + 10


def test_resnext_and_wide_bottlenecks():
    graph = build(spec_from_name("resnext50-32x4d"))
    b = graph.layer("res2a_branch2b").param
    assert (b.num_output, b.group, b.kernel, b.stride) == (128, 32, (3, 3), (1, 1))
    assert graph.layer("res2a_branch2b").blob_shapes == ((128, 4, 3, 3),)
    assert graph.layer("res2a_branch2c").param.num_output == 256
    assert graph.layer("res3a_branch2b").param.stride == (2, 2)  # torchvision: on the 3x3
    assert graph.layer("res5c_branch2b").blob_shapes == ((1024, 32, 3, 3),)
    assert graph.layer("conv1").blob_shapes == ((64, 3, 7, 7),)  # no conv1 bias
    # The post-activation wiring is the paper's: same layer names and counts as ResNet-50.
    assert len(graph.layers) == 228
    wide = build(spec_from_name("wide-resnet50-2"))
    assert wide.layer("res5a_branch2b").blob_shapes == ((1024, 1024, 3, 3),)
    assert wide.layer("res5a_branch2c").blob_shapes == ((2048, 1024, 1, 1),)
    assert make_spec(width_factor=2) == spec_from_name("wide-resnet50-2")
    x64 = build(spec_from_name("resnext101-64x4d")).layer("res4b22_branch2b")
    assert (x64.param.group, x64.blob_shapes) == (64, ((1024, 16, 3, 3),))


def test_block_kinds_table():
    assert sorted(BLOCK_KINDS) == ["basic", "bottleneck", "improved-basic", "preact-basic",
                                   "preact-bottleneck", "res2net"]
    assert spec_from_name("iresnet50").block_kind == "improved-basic"
    assert spec_from_name("res2net50-26w-4s").block_kind == "res2net"
    assert spec_from_name("cifar10-preresnet1001").block_kind == "preact-bottleneck"
    assert spec_from_name("resnext50-32x4d").block_kind == "bottleneck"


def test_paper_networks_are_unchanged_by_the_family_fields():
    spec = make_spec("imagenet", 50)
    assert not spec.family and spec.stride_in == "1x1" and spec.conv1_bias
    assert set(spec.to_dict()) >= {"stages", "shortcut"} and "groups" not in spec.to_dict()
    assert spec_from_name("resnext50-32x4d").to_dict()["groups"] == 32


# ------------------------------------------------------------------------------ names

@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_family_names_round_trip(name):
    assert is_network_name(name)
    spec = spec_from_name(name)
    assert spec.name == name and spec.family


@pytest.mark.parametrize(("kwargs", "name"), [
    (dict(dataset="cifar10", depth=164, preact=True), "cifar10-preresnet164"),
    (dict(dataset="cifar10", depth=164, preact=True, shortcut="A"), "cifar10-preresnet164-A"),
    (dict(dataset="cifar10", depth=164, preact=True, block="basic"),
     "cifar10-preresnet164-27-27-27-basic"),
    (dict(dataset="cifar10", depth=110, preact=True), "cifar10-preresnet110"),
    (dict(dataset="cifar10", depth=110, preact=True, block="bottleneck"),
     "cifar10-preresnet110-12-12-12-bottleneck"),
    (dict(dataset="cifar10", depth=164, block="bottleneck", shortcut="B"),
     "cifar10-resnet164-18-18-18-bottleneck-B"),
    (dict(depth=50, groups=32, width_per_group=4, shortcut="C", stride_in="1x1"),
     "resnext50-32x4d-C-stride1x1"),
    (dict(depth=101, width_factor=2, shortcut="A"), "wide-resnet101-2-A"),
    (dict(depth=50, width_per_group=96), "resnext50-1x96d"),
    (dict(depth=50, preact=True), "preresnet50"),
    (dict(depth=50, preact=True, stride_in="1x1", conv1_bias=True),
     "preresnet50-stride1x1-conv1bias"),
    (dict(depth=50, preact=True, groups=32, width_per_group=4), "preresnext50-32x4d"),
    (dict(depth=50, preact=True, width_factor=2), "wide-preresnet50-2"),
    (dict(depth=50, plain=True, groups=32, width_per_group=4), "plain50-32x4d"),
    (dict(depth=50, groups=32, width_per_group=4, num_classes=100, input_size=64),
     "resnext50-32x4d-classes100-input64"),
    (dict(stages=(1, 1, 1, 1), groups=8, width_per_group=8), "resnext14-8x8d-1-1-1-1-bottleneck"),
])
def test_names_of_compositions(kwargs, name):
    spec = make_spec(**kwargs)
    assert spec.name == name
    assert spec_from_name(name) == spec
    build(spec)  # and it builds


@pytest.mark.parametrize(("name", "message"), [
    ("resnext50-32x4d-B", "did you mean 'resnext50-32x4d'"),
    ("resnext50-1x128d", "did you mean 'wide-resnet50-2'"),
    ("resnet50-32x4d", "did you mean 'resnext50-32x4d'"),
    ("resnext50", "cardinality and width per group"),
    ("preresnet50-stride3x3", "did you mean 'preresnet50'"),
    ("preresnet164", "not in Table 1 or the pre-activation paper"),
    ("wide-resnet18-2", "bottleneck"),
    ("preplain20", "not a network name"),
])
def test_bad_family_names(name, message):
    with pytest.raises(NetgenError, match=message):
        spec_from_name(name)


# ------------------------------------------------------------------------------ errors

@pytest.mark.parametrize(("args", "message"), [
    (["--depth", "18", "--groups", "32"], "BasicBlock only supports groups=1 and base_width=64"),
    (["--depth", "34", "--width-factor", "2"], "basic blocks have none"),
    (["--preact", "--plain"], "a --plain net has neither"),
    (["--width-factor", "2", "--width-per-group", "128"], "give one of them"),
    (["--dataset", "cifar10", "--preact", "--depth", "47"], "add --block bottleneck"),
    (["--dataset", "cifar10", "--preact", "--depth", "165"], "6n\\+2"),
    (["--dataset", "cifar10", "--depth", "164", "--block", "bottleneck", "--width-per-group", "1"],
     "leaves no channels"),
    (["--groups", "0"], "--groups must be a positive integer"),
    (["--preact", "--dataset", "cifar10", "--depth", "110", "--stride-in", "3x3"],
     "bottleneck blocks only"),
    (["--preact", "--depth", "300"], "allowed: 18, 34, 50, 101, 152, 200"),
    (["--stages", "2,2,2,2", "--block", "basic", "--groups", "32", "--width-per-group", "4"],
     "BasicBlock only supports"),
])
def test_nonsense_combinations_exit_2_with_one_line(run_cli, tmp_path, args, message):
    result = run_cli("build", *args, "--out", tmp_path / "x")
    assert result.code == 2, result.out
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    import re
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------------ CLI

def test_cli_build_names_the_folder_and_summary_counts(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("build", "--dataset", "cifar10", "--preact", "--depth", "164")
    assert result.code == 0, result.err
    folder = tmp_path / "generated" / "cifar10-preresnet164"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["parameters"] == preact_cifar_counts(18)[0]
    assert summary["spec"]["preact"] is True and summary["spec"]["name"] == "cifar10-preresnet164"
    assert (folder / "solver_warmup.prototxt").is_file()  # the 0.01 warm-up, as for ResNet-110
    info = json.loads(run_cli("summary", "--groups", "32", "--width-per-group", "4", "--json").out)
    assert info["name"] == "resnext50-32x4d" and info["parameters"] == 25_028_904
    text = run_cli("summary", "--width-factor", "2", "--depth", "101").out
    assert text.startswith("wide-resnet101-2:") and "126,886,696" in text


def test_list_shows_the_family_after_the_paper(run_cli):
    rows = json.loads(run_cli("list", "--json").out)
    family = [r for r in rows if r["section"] == "family"]
    assert [r["name"] for r in family] == list(FAMILY_NAMES)
    assert rows.index(family[0]) == 28  # after the paper's 28
    by_name = {r["name"]: r for r in family}
    assert by_name["wide-resnet50-2"]["parameters"] == 68_883_240
    assert by_name["cifar10-preresnet1001"]["block"] == "preact-bottleneck"
    text = run_cli("list").out
    assert text.index("resnext101-64x4d") > text.index("cifar10-plain110")


def test_help_names_the_family_options(run_cli):
    text = run_cli("build", "--help").out
    for option in ("--preact", "--groups", "--width-per-group", "--width-factor"):
        assert option in text


# ------------------------------------------------------------------------------ scale and init

def test_preresnet1001_builds_linearly_and_has_over_3000_layers():
    spec = spec_from_name("cifar10-preresnet1001")
    graph = build(spec)
    assert len(graph.layers) == 4339  # 333 blocks x 13 + 3 projections + stem, final BN, head
    assert count(graph).layer_types["Eltwise"] == 333
    assert len(graph.layers) - 3 * 111 * 13 == len(build(make_spec(
        "cifar10", stages=(1, 1, 1), block="bottleneck", preact=True)).layers) - 3 * 13


def test_init_damps_the_last_scale_of_every_preact_branch():
    graph = build(make_spec("cifar10", stages=(2, 2, 2), block="bottleneck", preact=True))
    ends = residual_scales(graph)
    # The pre-activation of the branch's last convolution; ReLU and conv are positively
    # homogeneous, so its gamma scales the whole branch.
    assert ends == {f"scale{b}_branch2c" for b in ("2a", "2b", "3a", "3b", "4a", "4b")}
    weights = initial_weights(graph)
    import numpy as np
    np.testing.assert_array_equal(weights["scale3b_branch2c"][0], np.float32(1 / np.sqrt(6)))
    np.testing.assert_array_equal(weights["scale3b_branch2b"][0], 1.0)
    np.testing.assert_array_equal(weights["bn_final"][2], 1.0)
    # The paper's blocks are untouched: the Scale right before the sum.
    assert residual_scales(build(make_spec("cifar10", 8))) == {
        "scale2a_branch2b", "scale3a_branch2b", "scale4a_branch2b"}


def test_figures_apply_to_canonical_family_names_only():
    assert [f.source for f in figures_for(spec_from_name("resnext50-32x4d"))] == [
        "torchvision", "torchvision", "ResNeXt paper, Table 1"]
    assert figures_for(spec_from_name("resnext50-32x4d-input64")) == []
    assert figures_for(spec_from_name("preresnet50")) == []
    assert isinstance(spec_from_name("preresnet200"), ArchSpec)


def test_preresnet1001_pipeline_needs_no_recursion_per_layer():
    """Build, emit, read back, export and import the 4,339-layer net under a small fixed
    recursion limit (the allowance tests/test_scale.py gives the 10,000-layer plain ResNet)."""
    from small_stack import pipeline, with_small_stack

    layers = with_small_stack(lambda: pipeline(spec_from_name("cifar10-preresnet1001")))
    assert layers[:2] == (4339, 4339) and layers[2] > 3000


def test_every_composition_has_one_name_that_parses_back():
    """Names are a bijection over a grid of the family's options with the paper's."""
    import itertools

    seen: dict[str, ArchSpec] = {}
    grid = itertools.product(
        [dict(dataset="imagenet", depth=50), dict(dataset="imagenet", depth=18),
         dict(dataset="imagenet", depth=200), dict(dataset="cifar10", depth=164),
         dict(dataset="cifar10", depth=56), dict(dataset="cifar10", depth=1001)],
        [False, True], [None, "A", "B", "C", "plain"],
        [dict(), dict(groups=32, width_per_group=4), dict(width_factor=2),
         dict(groups=1, width_per_group=64), dict(width_per_group=96)],
        [None, "1x1", "3x3"], [None, "msra", "torchvision"])
    imagenet: set[str] = set()
    for layout, preact, shortcut, width, stride, stem_pool in grid:
        kwargs = dict(layout, preact=preact, stride_in=stride, stem_pool=stem_pool, **width)
        if shortcut == "plain":
            kwargs["plain"] = True
        else:
            kwargs["shortcut"] = shortcut
        try:
            spec = make_spec(**kwargs)
        except NetgenError:
            continue
        again = spec_from_name(spec.name)
        assert again == spec, spec.name
        assert seen.setdefault(spec.name, spec) == spec, spec.name
        if spec.dataset == "imagenet" and stem_pool is None:
            imagenet.add(spec.name)  # the default stem: no suffix
            assert not spec.name.endswith(("-msrapool", "-torchpool")), spec.name
            assert spec.stem_pool == ("torchvision" if spec.family else "msra"), spec.name
        elif spec.dataset == "imagenet" and stem_pool != spec.stem_pool:
            raise AssertionError(spec.name)
    # 176 without the stem pooling (a grouped CIFAR-10 net is the ResNeXt paper's bottleneck
    # net, so depth 56 = 9n+2 takes groups too); each ImageNet net has its other stem as one
    # more name.
    assert len(seen) == 176 + len(imagenet) and len(imagenet) == 87


def test_groups_1_and_width_64_are_the_plain_bottleneck_and_allowed_on_basic_blocks():
    assert make_spec(depth=18, groups=1, width_per_group=64) == make_spec(depth=18)
    assert make_spec(depth=50, width_factor=1) == make_spec(depth=50)
