"""Minimal GGUF v3 writer for reference tests (written from the GGUF specification; only
struct and numpy). Contract: metadata and tensors are written in insertion order; every tensor's
data starts at a multiple of `alignment` from the start of the data section, and the data section
itself starts at a multiple of `alignment` in the file.

File layout (all little-endian):
  u32 magic "GGUF", u32 version 3, u64 tensor_count, u64 metadata_kv_count,
  kv*: string key, u32 value_type, value       (string = u64 length + UTF-8 bytes, no NUL)
  tensor_info*: string name, u32 n_dims, u64 ne[n_dims] (ne[0] = contiguous dim), u32 ggml_type,
                u64 offset (relative to the data section)
  padding to alignment, then the tensor data (each padded to alignment).
"""

import struct

import numpy as np

# Metadata value types (gguf_metadata_value_type).
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)

_SCALAR_FMT = {
    UINT8: "<B", INT8: "<b", UINT16: "<H", INT16: "<h", UINT32: "<I", INT32: "<i",
    FLOAT32: "<f", BOOL: "<?", UINT64: "<Q", INT64: "<q", FLOAT64: "<d",
}

# Tensor types (ggml_type) this writer can produce: F32 = 0, F16 = 1.
GGML_F32 = 0
GGML_F16 = 1
_TENSOR_DTYPE = {GGML_F32: np.float32, GGML_F16: np.float16}


def _string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _value(vtype, value):
    if vtype == STRING:
        return _string(value)
    if vtype == ARRAY:
        item_type, items = value
        out = [struct.pack("<IQ", item_type, len(items))]
        out += [_value(item_type, v) for v in items]
        return b"".join(out)
    return struct.pack(_SCALAR_FMT[vtype], value)


class GgufWriter:
    def __init__(self, alignment=32, write_alignment_key=True):
        self.alignment = alignment
        self.kv = []        # (key, vtype, value)
        self.tensors = []   # (name, ggml_type, ne list, bytes)
        if write_alignment_key:
            self.add("general.alignment", UINT32, alignment)

    # -- metadata -------------------------------------------------------------------------------
    def add(self, key, vtype, value):
        self.kv.append((key, vtype, value))

    def add_string(self, key, v):
        self.add(key, STRING, v)

    def add_u32(self, key, v):
        self.add(key, UINT32, int(v))

    def add_f32(self, key, v):
        self.add(key, FLOAT32, float(v))

    def add_bool(self, key, v):
        self.add(key, BOOL, bool(v))

    def add_array(self, key, item_type, items):
        self.add(key, ARRAY, (item_type, list(items)))

    # -- tensors --------------------------------------------------------------------------------
    def add_tensor(self, name, array, ggml_type=GGML_F32):
        """array: numpy array in row-major order with shape [..., ne1, ne0] (PyTorch order);
        stored with ne = reversed(array.shape), so a Linear weight [out, in] gets ne = [in, out]."""
        a = np.ascontiguousarray(np.asarray(array), dtype=_TENSOR_DTYPE[ggml_type])
        ne = list(reversed(a.shape))
        self.tensors.append((name, ggml_type, ne, a.astype(a.dtype.newbyteorder("<")).tobytes()))

    # -- output ---------------------------------------------------------------------------------
    def _pad(self, n):
        return (self.alignment - n % self.alignment) % self.alignment

    def to_bytes(self):
        head = [b"GGUF", struct.pack("<IQQ", 3, len(self.tensors), len(self.kv))]
        for key, vtype, value in self.kv:
            head.append(_string(key) + struct.pack("<I", vtype) + _value(vtype, value))
        offset = 0
        offsets = []
        for name, ttype, ne, data in self.tensors:
            offsets.append(offset)
            head.append(_string(name) + struct.pack("<I", len(ne)))
            head.append(struct.pack("<%dQ" % len(ne), *ne))
            head.append(struct.pack("<IQ", ttype, offset))
            offset += len(data) + self._pad(len(data))
        out = b"".join(head)
        out += b"\0" * self._pad(len(out))
        body = []
        for (name, ttype, ne, data), off in zip(self.tensors, offsets):
            body.append(data + b"\0" * self._pad(len(data)))
        return out + b"".join(body)

    def write(self, path):
        with open(path, "wb") as f:
            f.write(self.to_bytes())
