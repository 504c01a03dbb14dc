"""Every shortcut option and both datasets load in OpenCV's independent Caffe importer."""

from __future__ import annotations

import numpy as np
import pytest

from netgen.arch.spec import make_spec
from netgen.jobs.build import write_build

cv2 = pytest.importorskip("cv2")

CASES = [("imagenet", 18, "A", False), ("imagenet", 18, "B", False), ("imagenet", 18, "C", False),
         ("imagenet", 18, None, True), ("imagenet", 50, "A", False), ("imagenet", 50, "B", False),
         ("imagenet", 50, "C", False), ("cifar10", 20, "A", False), ("cifar10", 20, "B", False),
         ("cifar10", 20, "C", False), ("cifar10", 20, None, True), ("cifar10", 110, "A", False)]


@pytest.mark.parametrize(("dataset", "depth", "shortcut", "plain"), CASES)
def test_deploy_and_caffemodel_run_in_cv2(tmp_path, dataset, depth, shortcut, plain):
    spec = make_spec(dataset, depth, shortcut, plain)
    write_build(spec, tmp_path / "net", weights=True, onnx=False)
    net = cv2.dnn.readNetFromCaffe(str(tmp_path / "net/deploy.prototxt"),
                                   str(tmp_path / "net/model.caffemodel"))
    x = np.random.default_rng(0).standard_normal((2, 3, spec.input_size, spec.input_size)).astype(np.float32)
    net.setInput(x)
    prob = net.forward("prob")
    assert prob.shape == (2, spec.num_classes)
    assert np.isfinite(prob).all()
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, atol=1e-5)
    assert not np.allclose(prob[0], prob[1])  # the input reaches the output
