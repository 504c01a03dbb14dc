"""Plain `netgen convert` of the real hand-written CIFAR exports (tests/fixtures/exports/,
written by torch.onnx.export itself): akamaster's ResNet-20..110 with option A (zeros on
both sides of the shortcut, `out.view(out.size(0), -1)`) from both exporters and without
constant folding, kuangliu's ResNet-18..152, PreActResNet-18 and ResNeXt29.

Each converts to Caffe files that OpenCV runs and to ONNX again (`convert` of the Caffe
files) that ONNX Runtime runs, and both compute what ONNX Runtime computes on the source:
relative error at most 1e-4.
"""

from __future__ import annotations

import pytest
import real_exports
from caffe_roundtrip import relative_error, to_caffe_and_back

from netgen.caffe.reader import read_prototxt
from netgen.onnx.runtime import create_session, random_batch

cv2 = pytest.importorskip("cv2")

# The hand-written CIFAR code's exports (SE networks are another importer's matter).
FILES = [r["file"] for r in real_exports.manifest()
         if r["source"] in ("hand-written CIFAR", "kuangliu-style") and "senet" not in r["model"]]
# The largest take 6-10 s each: run with --slow.
SLOW = ("resnet101", "resnet152")


@pytest.mark.parametrize("file", [pytest.param(f, marks=pytest.mark.slow)
                                  if any(s in f for s in SLOW) else f for f in FILES])
def test_hand_written_cifar_export_converts_and_computes_the_same(tmp_path, run_cli, file):
    record = real_exports.record(file)
    model = real_exports.load(file)
    target, back = to_caffe_and_back(tmp_path, run_cli, model, file,
                                     random_batch(record["input_shape"], 7))
    net = read_prototxt(target)
    types = {l.type for l in net.layers}
    assert not types & {"Reshape", "Flatten"}  # the view before the fc is the fc's own
    if record["model"].startswith("cifar_resnet"):  # option A: planes // 4 zeros each side
        slices = [l for l in net.layers if l.type == "Slice"]
        assert [(l.top_shapes[0][1], l.top_shapes[1][1]) for l in slices] == [(8, 8), (16, 16)]

    if model.graph.input[0].type.tensor_type.shape.dim[0].dim_param:
        # a symbolic batch stays symbolic: the files hold for a batch of 3 too
        x3 = random_batch([3] + record["input_shape"][1:], 8)
        want3 = create_session(model, device="cpu").run_list(x3)[0]
        assert relative_error(create_session(back, device="cpu").run_list(x3)[0], want3) <= 1e-4
