"""The architecture core: what a residual network is, independent of any file format.

The spec (`spec.py`, the paper's Table 1 as data), the builder that turns it into the
graph IR (`builder.py`, `ir.py`), Caffe's shape arithmetic (`shapes.py`), exact counts
(`counting.py`), deterministic initial weights (`weights.py`), the paper's printed
figures (`paper_figures.py`) and the rules both readers share (`stages.py`).

May import: `netgen.errors` and each other. Never a format (`caffe/`, `onnx/`), a job
(`jobs/`), the file helpers or the CLI: every other folder builds on this one.
"""
