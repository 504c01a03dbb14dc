"""`netgen identify FILE`: the netgen name of the architecture in a file.

The reference is the file's origin: a torchvision-shaped export of resnet50 is torchvision's
ResNet-50 (`resnet50-B-stride3x3-noconv1bias-torchpool`), a real torch export of the PyTorch
CIFAR code's ResNet-34 is `cifar10-resnet34-imagenetstages`, a build folder of NAME is NAME.
The name identify prints must also build, with the command it prints, a network that diff
calls EQUIVALENT to the file.
"""

from __future__ import annotations

import json

import onnx
import pytest

import real_exports
from netgen.arch.spec import spec_from_name
from netgen.jobs.build import write_build
from netgen.jobs.identify import build_command, identify
from netgen.jobs.paper import family_specs, imagenet_stages_specs, iresnet_specs, paper_specs
from torchvision_exports import torchvision_resnet

# Every network `netgen list` shows, except the two deepest (their own tests cover them).
LISTED = [spec.name for spec in paper_specs() + family_specs() + imagenet_stages_specs()
          + iresnet_specs()
          if spec.name not in ("cifar10-resnet1202-A", "cifar10-preresnet1001", "iresnet200")]


@pytest.mark.parametrize("name", LISTED)
def test_every_listed_network_names_itself(name):
    found = identify(name)
    assert found.equivalent and found.name == name and found.findings == []
    assert found.misfits == []


@pytest.mark.parametrize("name", ["resnet50-B", "plain34", "cifar10-resnet20-A",
                                  "cifar10-preresnet164", "resnext50-32x4d-msrapool",
                                  "cifar10-resnet18-imagenetstages", "resnet18-A-classes100-input112"])
def test_a_build_folder_and_its_files_are_the_build(tmp_path, run_cli, name):
    """Folder and deploy carry netgen's seeded weights (not data): the name comes back
    exactly; the ONNX file holds them as data, where the published ResNet-50's conv1 bias
    is zeros at initialisation, so that one reads as the bias-free spelling (EQUIVALENT)."""
    write_build(spec_from_name(name), tmp_path / "b")
    for arg in (tmp_path / "b", tmp_path / "b" / "deploy.prototxt", tmp_path / "b" / "model.onnx"):
        result = run_cli("identify", arg, "--json")
        assert result.code == 0, result.err
        data = json.loads(result.out)
        want = name
        if arg.suffix == ".onnx" and name == "resnet50-B":
            want = "resnet50-B-noconv1bias"
        assert data["name"] == want and data["equivalent"] is True


TORCHVISION = [
    (18, "resnet18-B-torchpool-input64"), (34, "resnet34-B-torchpool-input64"),
    (50, "resnet50-B-stride3x3-noconv1bias-torchpool-input64"),
    ("resnext50_32x4d", "resnext50-32x4d-input64"), ("wide_resnet50_2", "wide-resnet50-2-input64")]


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo", "bn"])
@pytest.mark.parametrize("arch, name", TORCHVISION)
def test_torchvision_exports_are_named_as_convert_like_takes_them(tmp_path, run_cli, arch, name,
                                                                  exporter):
    onnx.save(torchvision_resnet(arch, exporter, input_size=64), tmp_path / "m.onnx")
    result = run_cli("identify", tmp_path / "m.onnx", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["name"] == name
    if exporter != "torchscript" or arch == "wide_resnet50_2":
        return  # the exporters alike; --like of every one is tests/test_torchvision_like.py's
    # the name identify gives is the one --like accepts
    result = run_cli("convert", tmp_path / "m.onnx", "--like", name, "-o", tmp_path / "out")
    assert result.code == 0, result.err


def test_a_caffe_stem_export_is_named_with_msras_pool1(tmp_path, run_cli):
    onnx.save(torchvision_resnet(50, "dynamo", input_size=64, stem="caffe"), tmp_path / "m.onnx")
    result = run_cli("identify", tmp_path / "m.onnx")
    assert result.code == 0
    assert result.out.splitlines()[0].endswith(": resnet50-B-stride3x3-noconv1bias-input64")
    assert result.out.splitlines()[1] == ("build: netgen build --depth 50 --input-size 64 "
                                          "--stride-in 3x3 --no-conv1-bias")
    assert "BatchNorm: A has 53 convolutions with a bias and no BatchNorm (folded)" in result.out


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_real_exports_of_the_pytorch_cifar_code(tmp_path, depth, exporter):
    file = f"kuangliu_resnet{depth}.{exporter}.onnx"
    onnx.save(real_exports.load(file), tmp_path / file)
    found = identify(str(tmp_path / file))
    assert found.name == f"cifar10-resnet{depth}-imagenetstages", found.findings


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_preactresnet18_without_final_bn_is_named_closest_with_one_difference(tmp_path, run_cli,
                                                                               exporter):
    file = f"kuangliu_preactresnet18.{exporter}.onnx"
    onnx.save(real_exports.load(file), tmp_path / file)
    result = run_cli("identify", tmp_path / file, "--json")
    assert result.code == 1, result.err
    data = json.loads(result.out)
    assert data["name"] is None and data["closest"] == "cifar10-preresnet18-imagenetstages"
    assert len(data["findings"]) == 1
    assert data["findings"][0]["text"].endswith("res5b: A nothing | B BN ReLU")
    text = run_cli("identify", tmp_path / file)
    assert text.code == 1
    assert "no netgen network; the closest is cifar10-preresnet18-imagenetstages (1 difference)" \
        in text.out


@pytest.mark.parametrize("name", ["resnet50-B-stride3x3-noconv1bias-torchpool-input64",
                                  "cifar10-resnet56-B", "wide-resnet50-2-msrapool",
                                  "resnet26-2-2-2-2-bottleneck-C-classes10", "preresnet200",
                                  "cifar10-resnet50-imagenetstages-stride1x1", "plain18"])
def test_the_build_command_makes_the_name(run_cli, name):
    argv = build_command(spec_from_name(name))
    assert argv[:2] == ["netgen", "build"]
    result = run_cli("summary", *argv[2:], "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["name"] == name


def test_bad_input_is_one_line(tmp_path, run_cli):
    for args, message in [((tmp_path / "none.onnx",), "no such file"),
                          (("resnet18-Q",), "neither a file nor a network name")]:
        result = run_cli("identify", *args)
        assert result.code == 2 and message in result.err
        assert len(result.err.strip().splitlines()) == 1
    (tmp_path / "junk.onnx").write_bytes(b"\x00\x01not onnx")
    result = run_cli("identify", tmp_path / "junk.onnx")
    assert result.code == 2 and "not a readable ONNX model" in result.err


def test_identify_reads_the_train_val_of_another_project_with_its_input_shape(tmp_path, run_cli):
    from trainval_fixtures import cifar_resnet_train_val

    path = tmp_path / "trainval.prototxt"
    path.write_text(cifar_resnet_train_val())
    result = run_cli("identify", path)
    assert result.code == 2 and "--input-shape" in result.err
    result = run_cli("identify", path, "--input-shape", "1,3,32,32")
    assert result.code == 0, result.err
    assert result.out.splitlines()[0].endswith(": cifar10-resnet20-B")
