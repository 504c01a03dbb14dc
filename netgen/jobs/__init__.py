"""What a command runs: writing a build folder (`build.py`), the paper's networks
(`paper.py`), `convert`, `diff`, `validate` and the benchmarks.

A job composes the architecture core with the formats, so it may import `netgen.arch`,
`netgen.caffe`, `netgen.onnx`, `netgen.storage`, `netgen.errors` and other jobs. Never
`netgen.commands`: the jobs are the library, the commands only its click shell.
"""
