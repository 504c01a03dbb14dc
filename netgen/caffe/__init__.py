"""Caffe's formats: the caffe.proto subset (`proto.py`, `caffe.proto`), the prototxt
emitter (`prototxt.py`, over the jinja2 templates), the binary weights (`caffemodel.py`)
and the reader of prototxt and caffemodel files (`reader.py`).

May import: `netgen.arch`, `netgen.storage`, `netgen.errors`. Never `netgen.onnx`: the two
formats meet only in the IR, so either can change without the other noticing.
"""
