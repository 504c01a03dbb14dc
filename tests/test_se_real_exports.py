"""Real torch.onnx.export files of SE and ResNet-C/D nets (timm's seresnet18/50,
seresnext50_32x4d, resnet18d/26d/50d, resnet50c; the hand-written CIFAR SENet-18), both
exporters, converted with plain `netgen convert`: OpenCV on the Caffe files and ONNX Runtime
on the ONNX written back from them, against ONNX Runtime on the source, relative error <= 1e-4.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
import real_exports
from caffe_roundtrip import caffe_and_back_errors, relative_error

from netgen.onnx.reader import import_model
from netgen.onnx.runtime import create_session

TOLERANCE = 1e-4
MODELS = {  # model -> (SE units, ResNet-D pooled projections, deep stem)
    "timm_seresnet18": (8, 0, False), "timm_seresnet50": (16, 0, False),
    "timm_seresnext50_32x4d": (16, 0, False), "timm_resnet18d": (0, 3, True),
    "timm_resnet26d": (0, 3, True), "timm_resnet50d": (0, 3, True),
    "timm_resnet50c": (0, 0, True), "kuangliu_senet18": (8, 0, False),
}
FILES = [r["file"] for r in real_exports.manifest() if r["model"] in MODELS]

def test_every_se_and_d_export_is_here():
    assert sorted({r["model"] for r in real_exports.manifest() if r["model"] in MODELS}) == \
        sorted(MODELS)
    assert len(FILES) == 2 * len(MODELS)


@pytest.mark.parametrize("file", FILES)
def test_export_converts_exactly(tmp_path, file):
    record = real_exports.record(file)
    se_units, pooled, deep = MODELS[record["model"]]
    model = real_exports.load(file)
    graph, _ = import_model(model)
    types = Counter(layer.type for layer in graph.layers)
    assert types["Axpy"] == se_units and types["Sigmoid"] == se_units
    blocks = 16 if "50" in record["model"] else 8  # 3,4,6,3 or 2,2,2,2
    assert types["Axpy"] + types["Eltwise"] == blocks  # every residual sum, SE's as Axpy
    d_pools = [l for l in graph.layers if l.type == "Pooling" and l.param.pool == "AVE"
               and l.param.kernel == (2, 2)]
    assert len(d_pools) == pooled
    assert all((p.param.stride, p.param.pad, p.param.round_mode) == ((2, 2), (0, 0), "CEIL")
               for p in d_pools)
    if deep:  # three 3x3 convolutions (32 stride 2, 32, 64) before the max pooling
        convs = [l for l in graph.layers if l.type == "Convolution"][:3]
        assert [(c.param.kernel, c.param.num_output) for c in convs] == \
            [((3, 3), 32), ((3, 3), 32), ((3, 3), 64)]
        assert convs[0].param.stride == (2, 2)

    x = np.random.default_rng(0).standard_normal(record["input_shape"]).astype(np.float32)
    # plain netgen convert: stock Caffe layers, OpenCV and the ONNX written back like ORT
    by_opencv, by_onnx, types = caffe_and_back_errors(tmp_path, model, x)
    assert "Axpy" not in types
    assert by_opencv <= TOLERANCE and by_onnx <= TOLERANCE


LIKE = {"timm_seresnet18": "seresnet18", "timm_seresnet50": "seresnet50",
        "timm_seresnext50_32x4d": "seresnext50-32x4d", "timm_resnet18d": "resnet18d",
        "timm_resnet26d": "resnet26d", "timm_resnet50d": "resnet50d",
        "timm_resnet50c": "resnet50c"}


@pytest.mark.parametrize("model", sorted(LIKE))
def test_timm_exports_are_netgens_named_nets(tmp_path, run_cli, model):
    """timm's seresnet50 is netgen's seresnet50 (and so on): diff finds them EQUIVALENT, and
    convert --like puts the file's weights on netgen's own build, whose model.onnx computes
    the file's logits."""
    file = f"{model}.torchscript.onnx"
    source = tmp_path / file
    onnx.save(real_exports.load(file), str(source))
    result = run_cli("diff", source, LIKE[model])
    assert result.code == 0 and "verdict: EQUIVALENT" in result.out, result.out + result.err
    result = run_cli("convert", source, "--like", LIKE[model], "-o", tmp_path / "like")
    assert result.code == 0, result.err
    x = np.random.default_rng(2).standard_normal((1, 3, 224, 224)).astype(np.float32)
    want = next(iter(create_session(onnx.load(str(source)), "cpu").run(x).values()))
    got = create_session(onnx.load(str(tmp_path / "like" / "model.onnx")), "cpu").run(x)["fc1000"]
    assert relative_error(got, want) <= TOLERANCE
