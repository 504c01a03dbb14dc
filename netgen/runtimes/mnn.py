"""MNN (Alibaba's mobile inference engine): its Caffe converter, then its CPU runtime.

The converter is the compiled `_tools.mnnconvert` of the `mnn` wheel, never the wheel's
`mnnconvert` script: that script carries a usage logger that pip-installs a package and
reaches the network. Both run in a child process (netgen.runtimes.mnn_child): the converter
kills its process on a file it rejects (SE's stock two-bottom Scale: a failed check, then a
segmentation fault), and MNN prints to stdout as it loads.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from netgen.runtimes import RuntimeFailed, RuntimeMissing, installed_version

EXTRA = "pip install 'netgen[mnn]'"
TIMEOUT_SECONDS = 600


def version() -> str:
    found = installed_version("mnn", "MNN", "_tools")
    if found is None:
        raise RuntimeMissing(f"MNN is not installed; {EXTRA}")
    return found


_CLOCK = re.compile(r"^\[\d\d:\d\d:\d\d\]\s*(:\d+:\s*)?")  # "[02:47:51] :144: "


def _last_words(text: str) -> str:
    """The converter's or runtime's own message: its last line that says something, without
    the clock time and source line MNN's log puts before it."""
    lines = [_CLOCK.sub("", line.strip()) for line in text.splitlines() if line.strip()
             and not line.startswith("The device supports")]
    for line in reversed(lines):
        if "failed" in line.lower() or "error" in line.lower():
            return line
    return lines[-1] if lines else "no message"


def run_caffe(deploy: Path, caffemodel: Path, inputs: dict[str, np.ndarray],
              outputs: list[str], work: Path, winograd: bool = False) -> dict[str, np.ndarray]:
    """Convert deploy + caffemodel with MNN's Caffe converter into work/, run the model on
    MNN's CPU backend at high precision and return the blobs `outputs` (Caffe top names).

    Without `winograd` MNN computes 3x3 convolutions densely: its Winograd transforms lose
    about a digit (a refilled timm SE-ResNet-50: 2.7e-4 of the largest output, 1e-6 dense),
    which says nothing about the file; OpenCV's check turns its own Winograd off alike."""
    version()
    work.mkdir(parents=True, exist_ok=True)
    feed, result = work / "mnn_inputs.npz", work / "mnn_outputs.npz"
    np.savez(feed, **inputs)
    command = [sys.executable, "-m", "netgen.runtimes.mnn_child", "on" if winograd else "off",
               str(deploy), str(caffemodel),
               str(work / "model.mnn"), str(feed), str(result), *outputs]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    except subprocess.TimeoutExpired:
        raise RuntimeFailed(f"MNN did not finish in {TIMEOUT_SECONDS} s") from None
    said = done.stdout + done.stderr
    if done.returncode != 0 or not result.is_file():
        stage = "runtime" if "netgen-mnn: converted" in done.stdout else "Caffe converter"
        how = (f"killed by signal {-done.returncode}" if done.returncode < 0
               else f"exit {done.returncode}")
        raise RuntimeFailed(f"MNN's {stage} failed ({how}): {_last_words(said)}")
    with np.load(result) as found:
        return {name: found[name] for name in found.files}
