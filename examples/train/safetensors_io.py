"""safetensors reading and writing for the training scripts (numpy only, no safetensors package).

Format: u64 little-endian header length N, N bytes of JSON header (padded with spaces to a
multiple of 8), then the raw little-endian row-major tensor data, back to back in the order
given. data_offsets are [begin, end) byte offsets into the data section. The C++ reader is
examples/common/safetensors.hpp.
"""

import json
import os
import struct

import numpy as np

DTYPES = {np.dtype("<f4"): "F32", np.dtype("int8"): "I8", np.dtype("<i4"): "I32"}
NUMPY = {"F32": "<f4", "I8": "i1", "I32": "<i4"}


def write_safetensors(path, tensors, metadata):
    """tensors: name -> numpy array of dtype float32, int8 or int32 (written in this order);
    metadata: str -> value (stored as str). Written to path.tmp, then renamed."""
    header = {"__metadata__": {k: str(v) for k, v in metadata.items()}}
    blobs, off = [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        if a.dtype not in DTYPES:
            raise ValueError(f"{name}: dtype {a.dtype} (F32, I8 or I32 only)")
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        b = a.tobytes(order="C")
        header[name] = {"dtype": DTYPES[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_safetensors(path):
    """Independent reader, to check written files: (name -> numpy array in its stored dtype,
    metadata, names in data order). Rejects gaps, overlaps, size mismatches and trailing bytes."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    if n % 8:
        raise ValueError(f"{path}: header length {n} is not a multiple of 8")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {})
    out, order, pos = {}, [], 0
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, e = info["data_offsets"]
        if b != pos:
            raise ValueError(f"{path}: {name}: gap or overlap at {b} (expected {pos})")
        dt = np.dtype(NUMPY[info["dtype"]])
        if e - b != dt.itemsize * int(np.prod(info["shape"], dtype=np.int64)):
            raise ValueError(f"{path}: {name}: size mismatch")
        out[name] = np.frombuffer(data[b:e], dtype=dt).reshape(info["shape"]).copy()
        order.append(name)
        pos = e
    if pos != len(data):
        raise ValueError(f"{path}: data section is {len(data)} bytes, tensors end at {pos}")
    return out, meta, order
