"""OpenVINO (Intel's inference runtime): an ONNX file read and compiled for its CPU device.

Compiled with INFERENCE_PRECISION_HINT f32: on CPUs with bfloat16 units (AVX-512 BF16, AMX)
OpenVINO otherwise runs in bfloat16 by default, about two digits off, which says nothing
about the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from netgen.runtimes import RuntimeFailed, RuntimeMissing, installed_version

EXTRA = "pip install 'netgen[openvino]'"


def version() -> str:
    found = installed_version("openvino", "openvino")
    if found is None:
        raise RuntimeMissing(f"OpenVINO is not installed; {EXTRA}")
    return found


def run_onnx(model: Path, inputs: dict[str, np.ndarray],
             outputs: list[str]) -> dict[str, np.ndarray]:
    """model.onnx compiled for OpenVINO's CPU device in float32; the tensors `outputs`."""
    version()
    import openvino

    try:
        core = openvino.Core()
        compiled = core.compile_model(core.read_model(str(model)), "CPU",
                                      {"INFERENCE_PRECISION_HINT": "f32"})
        found = compiled(inputs)
        return {name: np.asarray(found[compiled.output(name)]) for name in outputs}
    except RuntimeError as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise RuntimeFailed(f"OpenVINO cannot run {model.name}: "
                            f"{lines[0] if lines else type(exc).__name__}") from None
