"""What a command runs: writing a build folder (`build.py`), the paper's networks
(`paper.py`), `convert` (`convert.py`, `convert_like.py` for `--like NAME`), `diff` (the
package `diff/`: canonical form, alignment, grouped findings, text and HTML reports),
`draw` (the package `draw/`: Figure 3's layout, Figure 5's block, SVG), `validate` and the
benchmarks.

A job composes the architecture core with the formats, so it may import `netgen.arch`,
`netgen.caffe`, `netgen.onnx`, `netgen.storage`, `netgen.errors` and other jobs. Never
`netgen.commands`: the jobs are the library, the commands only its click shell.
"""
