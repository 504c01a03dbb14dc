"""ONNX: the emitter (`export.py`), the reader (`reader.py`) with the ONNX -> ONNX passes it
runs first (`normalize/`), the counts read off a graph (`count.py`), the bytes of a model
file with or without external data (`files.py`) and ONNX Runtime sessions (`runtime.py`).

May import: `netgen.arch`, `netgen.storage`, `netgen.errors`. Never `netgen.caffe`: the two
formats meet only in the IR. Inside this package `import onnx` is the onnx library
(absolute imports), not this folder.
"""
