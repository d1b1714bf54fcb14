"""Minimal GGUF (v2/v3) reader for reference tests, written from the GGUF specification.
Contract: read_gguf(path) -> (metadata dict in file order, {name: numpy array}); tensors come
back in PyTorch order (shape = reversed(ne)) as float32 for F32 and float16 for F16 (other types
raise ValueError). Used to check gguf_writer.py and to load the golden llama.cpp models."""

import struct

import numpy as np

_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
           10: "<Q", 11: "<q", 12: "<d"}
_TENSOR_DTYPE = {0: np.float32, 1: np.float16}


class _Cursor:
    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def string(self):
        n = self.take("<Q")
        s = self.buf[self.pos:self.pos + n].decode("utf-8")
        self.pos += n
        return s

    def value(self, vtype):
        if vtype == 8:
            return self.string()
        if vtype == 9:
            item_type = self.take("<I")
            n = self.take("<Q")
            return [self.value(item_type) for _ in range(n)]
        return self.take(_SCALAR[vtype])


def read_gguf(path, load_tensors=True):
    with open(path, "rb") as f:
        buf = f.read()
    c = _Cursor(buf)
    if buf[:4] != b"GGUF":
        raise ValueError("%s: bad magic %r" % (path, buf[:4]))
    c.pos = 4
    version = c.take("<I")
    if version not in (2, 3):
        raise ValueError("%s: unsupported version %d" % (path, version))
    n_tensors, n_kv = c.take("<QQ")
    meta = {}
    for _ in range(n_kv):
        key = c.string()
        meta[key] = c.value(c.take("<I"))
    infos = []
    for _ in range(n_tensors):
        name = c.string()
        n_dims = c.take("<I")
        ne = [c.take("<Q") for _ in range(n_dims)]
        ttype, offset = c.take("<IQ")
        infos.append((name, ne, ttype, offset))
    align = int(meta.get("general.alignment", 32))
    data_start = c.pos + (align - c.pos % align) % align
    tensors = {}
    for name, ne, ttype, offset in infos:
        if offset % align:
            raise ValueError("%s: tensor %s offset %d not aligned to %d" % (path, name, offset, align))
        if not load_tensors:
            continue
        if ttype not in _TENSOR_DTYPE:
            raise ValueError("%s: tensor %s has type %d (only F32/F16 supported)" % (path, name, ttype))
        count = int(np.prod(ne))
        dt = np.dtype(_TENSOR_DTYPE[ttype]).newbyteorder("<")
        start = data_start + offset
        end = start + count * dt.itemsize
        if end > len(buf):
            raise ValueError("%s: tensor %s runs past the end of the file" % (path, name))
        tensors[name] = np.frombuffer(buf, dtype=dt, count=count, offset=start).reshape(list(reversed(ne)))
    return meta, tensors
