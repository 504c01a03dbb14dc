"""timm's ResNet-RS nets by name: --stem-pool conv (timm's replace_stem_pool: a 3x3
stride-2 convolution with BN and ReLU for pool1) on ResNet-D with SE of reduction 4. Counts
are timm 1.0.31's own sum(p.numel()) of timm.create_model(name), computed in the scratch
torch venv."""

from __future__ import annotations

import pytest

from netgen.arch.builder import build
from netgen.arch.counting import count
from netgen.arch.paper_figures import figures_for
from netgen.arch.spec import FAMILY_NAMES, make_spec, spec_from_name
from netgen.errors import NetgenError

TIMM = {"resnetrs50": 35_691_912, "resnetrs101": 63_618_696, "resnetrs152": 86_621_576,
        "resnetrs200": 93_209_992}


def timm_se_width(channels: int) -> int:
    """timm.layers.SEModule(channels, rd_ratio=0.25): make_divisible(channels * 0.25, 8,
    round_limit=0.), as timm writes it."""
    v, divisor, round_limit = channels * 0.25, 8, 0.0
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


@pytest.mark.parametrize("name", sorted(TIMM))
def test_counts_equal_timms_and_names_round_trip(name):
    assert name in FAMILY_NAMES
    spec = spec_from_name(name)
    assert spec.name == name
    assert count(build(spec)).params == TIMM[name]
    assert [f.printed for f in figures_for(spec)] == [f"{TIMM[name]:,}"]
    assert spec.se_widths == tuple(timm_se_width(c) for c in spec.out_channels)


def test_the_options_make_the_named_net_and_the_stem():
    spec = make_spec(depth=50, deep_stem=True, avg_down=True, se=4, stem_pool="conv")
    assert spec == spec_from_name("resnetrs50") and spec.se_widths == (64, 128, 256, 512)
    graph = build(spec)
    names = [l.name for l in graph.layers]
    start = names.index("pool1_conv")
    stem = graph.layers[start:start + 4]
    assert [l.type for l in stem] == ["Convolution", "BatchNorm", "Scale", "ReLU"]
    conv = stem[0]
    assert conv.bottoms == ("conv1_3",) and conv.top_shapes[0] == (1, 64, 56, 56)
    assert (conv.param.num_output, conv.param.kernel, conv.param.stride, conv.param.pad,
            conv.param.bias_term) == (64, (3, 3), (2, 2), (1, 1), False)
    assert "pool1" not in names and names[start + 4] == "res2a_branch1"
    # the conv pool is one option value: on the 7x7 stem it is -convpool, no paper figure
    other = spec_from_name("resnet18-B-convpool")
    assert other.stem_pool == "conv" and figures_for(other) == []
    assert count(build(other)).params - count(build(spec_from_name("resnet18"))).params == \
        64 * 64 * 9 + 2 * 64
    # a timm layout of 200 (resnetrs200, and timm's resnet200d: 64,693,064 by timm's count)
    assert spec_from_name("resnetrs200").stages == (3, 24, 36, 3)
    resnet200d = spec_from_name("resnet200d")
    assert count(build(resnet200d)).params == 64_693_064
    assert [f.printed for f in figures_for(resnet200d)] == ["64,693,064"]


@pytest.mark.parametrize("name, message", [
    ("resnetrs50-r8", "-rR and -seWIDTH describe SE units"),
    ("seresnet50d-convpool-r4", "did you mean 'resnetrs50'"),
    ("resnetrs50d", "did you mean 'resnetrs50'"),
    ("resnetrs50-torchpool", "did you mean 'seresnet50d-r4'"),
])
def test_bad_names_fail_clearly(name, message):
    with pytest.raises(NetgenError) as err:
        spec_from_name(name)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_options_fail_clearly(run_cli, tmp_path):
    with pytest.raises(NetgenError, match="allowed: msra, torchvision, conv"):
        make_spec(depth=50, stem_pool="strided")
    result = run_cli("build", "--dataset", "cifar10", "--stem-pool", "conv", "-o", tmp_path / "a")
    assert result.code == 2 and not (tmp_path / "a").exists()
    assert result.err.count("\n") == 1 and "applies to ImageNet nets only" in result.err
    result = run_cli("build", "--depth", "50", "--deep-stem", "--avg-down", "--se", "4",
                     "--stem-pool", "conv", "--input-size", "64", "-o", tmp_path / "b")
    assert result.code == 0, result.err
    assert '"name": "resnetrs50-input64"' in (tmp_path / "b" / "summary.json").read_text()


def test_diff_names_the_stem(run_cli):
    result = run_cli("diff", "resnetrs50", "seresnet50d-r4")
    assert "verdict: DIFFERENT (1 difference)" in result.out
    assert ("  - stem: A 3x3 conv 32 /2, ReLU, 3x3 conv 32, ReLU, 3x3 conv 64, ReLU, "
            "3x3 conv 64 /2, ReLU | B 3x3 conv 32 /2, ReLU, 3x3 conv 32, ReLU, 3x3 conv 64, "
            "ReLU, 3x3 max pool /2") in result.out.splitlines()
