"""The click shell: `cli.py` (the `netgen` group, its error handling and exit codes) and
one module per command.

May import everything below it; nothing imports this package, so the library (`arch`,
`caffe`, `onnx`, `jobs`) works without click's conventions leaking in.
"""
