"""timm's res2net50_26w_4s and resnetrs50 exports (both exporters, refilled by
real_exports.load) are netgen's named nets: identify names them, diff finds netgen's build
EQUIVALENT, and convert --like puts the file's weights on netgen's own build so that OpenCV
on its Caffe files and ONNX Runtime on its ONNX compute ONNX Runtime's logits of the export
within 1e-4 relative. (Plain `netgen convert` of these exports is test_real_exports'.)"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import real_exports
from caffe_roundtrip import relative_error

from netgen.onnx.runtime import create_session

TOLERANCE = 1e-4
LIKE = {"timm_res2net50_26w_4s": "res2net50-26w-4s", "timm_resnetrs50": "resnetrs50"}
FILES = [r["file"] for r in real_exports.manifest() if r["model"] in LIKE]
# the second exporter's files of the same nets: 4-6 s each, with the slow tests (CI runs them)
CASES = [pytest.param(f, marks=[pytest.mark.slow] if ".dynamo." in f else []) for f in FILES]



def test_every_export_is_here():
    assert len(FILES) == 2 * len(LIKE)
    counts = {r["model"]: r["parameters"] for r in real_exports.manifest() if r["model"] in LIKE}
    assert counts == {"timm_res2net50_26w_4s": 25_699_120, "timm_resnetrs50": 35_691_912}


@pytest.mark.parametrize("file", CASES)
def test_identify_diff_and_like(tmp_path, run_cli, file):
    name = LIKE[real_exports.record(file)["model"]]
    source = tmp_path / file
    onnx.save(real_exports.load(file), str(source))
    result = run_cli("identify", source)
    assert result.code == 0 and result.out.splitlines()[0] == f"{source}: {name}", \
        result.out + result.err
    result = run_cli("diff", source, name)
    assert result.code == 0 and "verdict: EQUIVALENT" in result.out, result.out + result.err
    result = run_cli("convert", source, "--like", name, "-o", tmp_path / "like")
    assert result.code == 0, result.err
    x = np.random.default_rng(2).standard_normal((1, 3, 224, 224)).astype(np.float32)
    want = next(iter(create_session(onnx.load(str(source)), "cpu").run(x).values()))
    got = create_session(onnx.load(str(tmp_path / "like" / "model.onnx")), "cpu").run(x)["fc1000"]
    assert relative_error(got, want) <= TOLERANCE
    cv2 = pytest.importorskip("cv2")
    deploy = tmp_path / "like" / "deploy.prototxt"
    reader = cv2.dnn.readNetFromCaffe(str(deploy), str(deploy.with_name("model.caffemodel")))
    reader.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    reader.enableWinograd(False)
    reader.setInput(x)
    got = np.asarray(reader.forward("fc1000")).reshape(want.shape)
    assert relative_error(got, want) <= TOLERANCE
