"""The child process of netgen.runtimes.mnn: convert, run, save. Not a user command.

argv: on|off deploy caffemodel model.mnn inputs.npz outputs.npz OUTPUT...
"""

from __future__ import annotations

import sys

import numpy as np

# MNN's Interpreter::HintMode WINOGRAD_MEMORY_LEVEL; 0 selects dense convolution, no Winograd
WINOGRAD_MEMORY_LEVEL = 3


def main(argv: list[str]) -> int:
    winograd, deploy, caffemodel, model, feed, result, *outputs = argv
    import _tools  # the compiled converter; the wheel's mnnconvert script logs over the network

    _tools.mnnconvert(["mnnconvert", "-f", "CAFFE", "--modelFile", caffemodel, "--prototxt",
                       deploy, "--MNNModel", model, "--bizCode", "netgen"])
    print("netgen-mnn: converted", flush=True)
    import MNN

    expr = MNN.expr
    with np.load(feed) as loaded:
        inputs = {name: np.ascontiguousarray(loaded[name], np.float32) for name in loaded.files}
    manager = MNN.nn.create_runtime_manager(
        ({"backend": "CPU", "precision": "high", "numThread": 1},))
    if winograd == "off":
        manager.set_hint(WINOGRAD_MEMORY_LEVEL, 0)
    module = MNN.nn.load_module_from_file(model, list(inputs), outputs,
                                          runtime_manager=manager)
    given = [expr.convert(expr.const(array, list(array.shape), expr.NCHW), expr.NC4HW4)
             for array in inputs.values()]
    got = module.forward(given)
    arrays = {}
    for name, value in zip(outputs, got):
        value = expr.convert(value, expr.NCHW)
        arrays[name] = np.array(value.read(), np.float32).reshape(value.shape)
    np.savez(result, **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
