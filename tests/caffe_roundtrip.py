"""The check an import test makes of a source ONNX file: `netgen convert` it to Caffe, run
the Caffe files in OpenCV (an importer that is not ours) and the ONNX that `convert` makes
of those Caffe files in ONNX Runtime, both against ONNX Runtime on the source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from torchvision_exports import relative_error

from netgen.onnx.runtime import create_session

TOLERANCE = 1e-4


def ort_output(model: onnx.ModelProto | Path, x: np.ndarray) -> np.ndarray:
    return create_session(model, device="cpu").run_list(x)[0]


def to_caffe_and_back(tmp_path: Path, run_cli, model: onnx.ModelProto, name: str,
                      x: np.ndarray) -> tuple[Path, Path]:
    """(deploy.prototxt, back.onnx) after asserting that both compute the source's output
    on `x` within TOLERANCE."""
    import cv2

    source = tmp_path / name
    onnx.save(model, source)
    target = tmp_path / "caffe" / "deploy.prototxt"
    result = run_cli("convert", source, "-o", target)
    assert result.code == 0, result.err
    want = ort_output(model, x)
    caffe = cv2.dnn.readNetFromCaffe(str(target), str(target.parent / "model.caffemodel"))
    caffe.setInput(x)
    assert relative_error(caffe.forward(), want) <= TOLERANCE
    back = tmp_path / "back.onnx"
    result = run_cli("convert", target, target.parent / "model.caffemodel", "-o", back)
    assert result.code == 0, result.err
    assert relative_error(ort_output(back, x), want) <= TOLERANCE
    return target, back


def opencv_output(deploy: Path, x: np.ndarray, layer: str | None = None) -> np.ndarray:
    """OpenCV's output of `layer` (default: the deploy file's last) with the model.caffemodel
    beside the file, Winograd off: the independent importer's figure, at float32's
    precision."""
    import cv2

    from netgen.caffe.reader import read_prototxt

    if layer is None:
        caffe = read_prototxt(deploy)
        layer = next(l.name for l in reversed(caffe.layers) if caffe.outputs[0] in l.tops)
    reader = cv2.dnn.readNetFromCaffe(str(deploy), str(deploy.with_name("model.caffemodel")))
    reader.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    reader.enableWinograd(False)
    reader.setInput(x)
    return np.asarray(reader.forward(layer))


def caffe_and_back_errors(tmp_path: Path, model: onnx.ModelProto,
                          x: np.ndarray) -> tuple[float, float, set[str]]:
    """`netgen convert` of `model` to Caffe and of that back to ONNX: the relative errors of
    OpenCV on the Caffe files (the last layer's output, Winograd off) and of ONNX Runtime on
    the ONNX written back against ONNX Runtime on `model`, and the Caffe layer types used."""
    from netgen.caffe import proto as caffe_proto
    from netgen.jobs.convert import convert

    source = tmp_path / "source.onnx"
    onnx.save(model, str(source))
    deploy = tmp_path / "caffe" / "deploy.prototxt"
    convert(source, None, deploy)
    types = {layer.type for layer in caffe_proto.parse_net(deploy.read_text(), "deploy").layer}
    want = ort_output(model, x)
    by_opencv = relative_error(opencv_output(deploy, x).reshape(want.shape), want)
    back = tmp_path / "back.onnx"
    convert(deploy, deploy.with_name("model.caffemodel"), back)
    by_onnx = relative_error(ort_output(back, x).reshape(want.shape), want)
    return by_opencv, by_onnx, types
