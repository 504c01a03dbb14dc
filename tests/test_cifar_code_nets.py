"""The CIFAR-10 nets people train that issue 24 named: the PyTorch CIFAR code's
PreActResNet18 (no final BN-ReLU), SENet18 (its PreActBlock with SE, a stem BN-ReLU of its
own) and ResNeXt29_2x64d (a 1x1 conv1), and the ResNeXt paper's ResNeXt-29 (Xie et al., CVPR
2017, Section 5.3, Table 7: 8x64d 34.4M, 16x64d 68.1M parameters).

Counts are torch's own for that code (manifest.json, `sum(p.numel() for p in
model.parameters())`) and the paper's printed figures.
"""

from __future__ import annotations

import json

import pytest

import real_exports
from netgen.arch.builder import build
from netgen.arch.counting import count
from netgen.arch.spec import make_spec, spec_from_name

# name -> (the model in tests/fixtures/exports whose torch count it has, or the paper's
# figure in millions, the `netgen build` options)
NETS = {
    "cifar10-preresnet18-imagenetstages-nofinalbn":
        ("kuangliu_preactresnet18", "--dataset cifar10 --imagenet-stages --preact --no-final-bn"),
    "cifar10-preseresnet18-imagenetstages-stembn-nofinalbn":
        ("kuangliu_senet18", "--dataset cifar10 --imagenet-stages --preact --se 16 --stem-bn "
                             "--no-final-bn"),
    "cifar10-resnext29-2x64d-stem1x1":
        ("kuangliu_resnext29_2x64d", "--dataset cifar10 --groups 2 --width-per-group 64 "
                                     "--stem-kernel 1"),
    "cifar10-resnext29-8x64d": (34.4, "--dataset cifar10 --depth 29 --groups 8"),
    "cifar10-resnext29-16x64d": (68.1, "--dataset cifar10 --groups 16 --width-per-group 64"),
}


def _torch_count(model: str) -> int:
    counts = {r["parameters"] for r in real_exports.manifest() if r["model"] == model}
    assert len(counts) == 1
    return counts.pop()


@pytest.mark.parametrize("name", sorted(NETS))
def test_the_name_the_options_and_the_count(run_cli, name):
    reference, options = NETS[name]
    result = run_cli("summary", *options.split(), "--json")
    assert result.code == 0, result.err
    info = json.loads(result.out)
    assert info["name"] == name == spec_from_name(name).name
    parameters = count(build(spec_from_name(name))).params
    assert info["parameters"] == parameters
    if isinstance(reference, str):
        assert parameters == _torch_count(reference)
    else:
        # Table 7 prints the count cut to 0.1M (68,155,210 is "68.1M")
        assert parameters // 100_000 == round(reference * 10)


def test_exact_counts():
    want = {"cifar10-preresnet18-imagenetstages-nofinalbn": 11_171_146,
            "cifar10-preseresnet18-imagenetstages-stembn-nofinalbn": 11_260_354,
            "cifar10-resnext29-2x64d-stem1x1": 9_128_778,
            "cifar10-resnext29-2x64d": 9_130_314,
            "cifar10-resnext29-8x64d": 34_426_698,
            "cifar10-resnext29-16x64d": 68_155_210}
    assert {name: count(build(spec_from_name(name))).params for name in want} == want


def test_senet18_is_pre_activation_with_se_and_its_own_stem_bn_relu():
    graph = build(spec_from_name("cifar10-preseresnet18-imagenetstages-stembn-nofinalbn"))
    names = [layer.name for layer in graph.layers]
    # conv1, then its own BN-ReLU, then the first block's BN-ReLU before res2a_branch2a
    assert names[:7] == ["conv1", "bn_conv1", "scale_conv1", "conv1_relu", "bn2a_branch2a",
                         "scale2a_branch2a", "res2a_branch2a_relu"]
    sums = [layer for layer in graph.layers if layer.type in ("Axpy", "Eltwise")]
    assert [layer.type for layer in sums] == ["Axpy"] * 8  # SE on every branch, then the sum
    # nothing after a sum: the next block's BN or, after the last, the pool
    after = {graph.layers[names.index(layer.name) + 1].type for layer in sums}
    assert after == {"BatchNorm", "Pooling"} and "bn_final" not in names
    downs = [layer.param.num_output for layer in graph.layers if layer.name.endswith("_se_down")]
    assert downs == [4, 4, 8, 8, 16, 16, 32, 32]  # C // 16, the CIFAR code's planes // 16


def test_resnext29_is_the_papers_layout():
    spec = spec_from_name("cifar10-resnext29-8x64d")
    assert (spec.block, spec.stages, spec.widths, spec.out_channels, spec.inner_widths) == \
        ("bottleneck", (3, 3, 3), (64, 128, 256), (256, 512, 1024), (512, 1024, 2048))
    assert (spec.groups, spec.width_per_group, spec.shortcut, spec.stride_in) == \
        (8, 64, "B", "3x3")
    conv1 = build(spec).layers[0]
    assert conv1.param.kernel == (3, 3) and conv1.param.num_output == 64
    conv1 = build(spec_from_name("cifar10-resnext29-2x64d-stem1x1")).layers[0]
    assert conv1.param.kernel == (1, 1) and conv1.param.pad == (0, 0)
    assert make_spec(dataset="cifar10", groups=8) == spec  # depth 29 unless told


@pytest.mark.parametrize("args, message", [
    (("--dataset", "cifar10", "--no-final-bn"), "--no-final-bn drops a pre-activation net's"),
    (("--preact", "--stem-bn"), "--stem-bn gives a CIFAR-10 pre-activation net's conv1"),
    (("--dataset", "cifar10", "--stem-bn"), "use it with --dataset cifar10 --preact"),
    (("--dataset", "cifar10", "--stem-kernel", "5"), "--stem-kernel 5: allowed 3"),
    (("--stem-kernel", "1"), "--stem-kernel sets a CIFAR-10 net's conv1"),
    (("--preact", "--deep-stem"), "--deep-stem and --avg-down build post-activation nets"),
])
def test_bad_options_are_one_line_and_write_nothing(tmp_path, run_cli, args, message):
    result = run_cli("build", *args, "--out", tmp_path / "out")
    assert result.code == 2 and message in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_the_new_tokens_parse_back_and_only_canonically(run_cli):
    for name in NETS:
        assert spec_from_name(name).name == name
    result = run_cli("summary", "cifar10-preseresnet18-imagenetstages-nofinalbn-stembn")
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1


def test_the_senet18_build_validates(run_cli):
    result = run_cli("validate", "cifar10-preseresnet18-imagenetstages-stembn-nofinalbn")
    assert result.code == 0, result.out + result.err
    assert "all checks passed" in result.out
