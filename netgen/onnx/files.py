"""An ONNX model as the bytes of its file(s), with external data for models over protobuf's 2 GB.

Returning bytes instead of writing keeps the build's write-everything-atomically logic in
one place (netgen.jobs.build) for every kind of file.
"""

from __future__ import annotations

import onnx

# protobuf refuses to serialise a message of 2 GiB or more; leave room for the graph itself.
EXTERNAL_DATA_THRESHOLD = 1_800_000_000
ALIGNMENT = 4096  # offsets aligned so that the data file can be memory-mapped per tensor


def initializer_bytes(model: onnx.ModelProto) -> int:
    return sum(len(t.raw_data) for t in model.graph.initializer)


def model_files(model: onnx.ModelProto, name: str = "model.onnx",
                external_data: bool | None = None) -> dict[str, bytes]:
    """{name: bytes} or, with external data, {name: graph bytes, name + '.data': tensors}.

    external_data=None decides by size. The location written into the model is the data
    file's bare name, so the pair can be moved together.
    """
    if external_data is None:
        external_data = initializer_bytes(model) > EXTERNAL_DATA_THRESHOLD
    if not external_data:
        return {name: model.SerializeToString(deterministic=True)}
    data_name = name + ".data"
    stripped = onnx.ModelProto()
    stripped.CopyFrom(model)
    chunks: list[bytes] = []
    offset = 0
    for tensor in stripped.graph.initializer:
        if not tensor.HasField("raw_data"):
            continue
        padding = (-offset) % ALIGNMENT
        if padding:
            chunks.append(b"\0" * padding)
            offset += padding
        raw = tensor.raw_data
        chunks.append(raw)
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        del tensor.external_data[:]
        for key, value in (("location", data_name), ("offset", str(offset)),
                           ("length", str(len(raw)))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        offset += len(raw)
    return {name: stripped.SerializeToString(deterministic=True), data_name: b"".join(chunks)}
