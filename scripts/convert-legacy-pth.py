#!/usr/bin/env python3
"""Convert a legacy (non-zip) PyTorch checkpoint to safetensors with the standard library only.

Usage: convert-legacy-pth.py IN.pth OUT.safetensors

No torch, no numpy: CI fetches real weights on a fresh machine with only python3 and pip.

The legacy format (torch.save with _use_new_zipfile_serialization=False, torch/serialization.py
`_legacy_save`) is a sequence of pickles followed by raw storages:
  1. pickle: magic number 0x1950a86a20f9469cfc6c
  2. pickle: protocol version (1001)
  3. pickle: sys_info dict (endianness, type sizes)
  4. pickle: the object (here a state dict); every tensor storage is a persistent id
     ('storage', storage_type, key, location, numel[, view_metadata]) and tensors are rebuilt by
     torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks)
  5. pickle: the list of storage keys, in the order their data follows
  6. per key: u64 little-endian element count, then numel * element size raw bytes.
Only the state-dict case (an OrderedDict of tensors, possibly nested in a dict under
'state_dict') is handled (strided tensors are gathered into row-major order); anything else is an error, not a guess.
"""

import collections
import json
import pickle
import struct
import sys

MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOL = 1001

# torch storage class name -> (safetensors dtype, bytes per element)
STORAGE_TYPES = {
    "FloatStorage": ("F32", 4),
    "DoubleStorage": ("F64", 8),
    "HalfStorage": ("F16", 2),
    "BFloat16Storage": ("BF16", 2),
    "LongStorage": ("I64", 8),
    "IntStorage": ("I32", 4),
    "ShortStorage": ("I16", 2),
    "CharStorage": ("I8", 1),
    "ByteStorage": ("U8", 1),
    "BoolStorage": ("BOOL", 1),
}


class StorageType:
    def __init__(self, name):
        if name not in STORAGE_TYPES:
            raise ValueError(f"unsupported storage type torch.{name}")
        self.name = name
        self.dtype, self.itemsize = STORAGE_TYPES[name]


class Storage:
    def __init__(self, key, storage_type, numel):
        self.key = key
        self.type = storage_type
        self.numel = numel


class TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.storage = storage
        self.offset = offset
        self.size = tuple(size)
        self.stride = tuple(stride)

    def is_contiguous(self):
        acc = 1
        for dim, stride in zip(reversed(self.size), reversed(self.stride)):
            if dim > 1 and stride != acc:
                return False
            acc *= dim
        return True

    def tobytes(self, data, name):
        """The tensor's elements in row-major order (strided tensors are gathered)."""
        itemsize = self.storage.type.itemsize
        raw = data[self.storage.key]
        numel = 1
        for d in self.size:
            numel *= d
        if self.is_contiguous():
            start = self.offset * itemsize
            chunk = raw[start : start + numel * itemsize]
            if len(chunk) != numel * itemsize:
                raise ValueError(f"{name}: storage too small for shape {self.size}")
            return chunk
        out = bytearray()
        index = [0] * len(self.size)
        for _ in range(numel):
            pos = self.offset + sum(i * s for i, s in zip(index, self.stride))
            if (pos + 1) * itemsize > len(raw):
                raise ValueError(f"{name}: storage too small for shape {self.size}")
            out += raw[pos * itemsize : (pos + 1) * itemsize]
            for axis in reversed(range(len(index))):
                index[axis] += 1
                if index[axis] < self.size[axis]:
                    break
                index[axis] = 0
        return bytes(out)


def rebuild_tensor_v2(storage, offset, size, stride, *_rest):
    return TensorRef(storage, offset, size, stride)


def rebuild_parameter(data, *_rest):
    return data


class LegacyUnpickler(pickle.Unpickler):
    def __init__(self, f):
        super().__init__(f)
        self.storages = {}

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return rebuild_parameter
        if module == "torch" and name.endswith("Storage"):
            return StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"unsupported global {module}.{name} in the checkpoint")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid[:5]
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        if key not in self.storages:
            self.storages[key] = Storage(key, storage_type, numel)
        return self.storages[key]


def read_legacy(path):
    """Returns ({name: TensorRef}, {key: bytes})."""
    with open(path, "rb") as f:
        if f.read(2) == b"PK":
            raise ValueError(f"{path} is a zip-format checkpoint, not the legacy format")
        f.seek(0)
        if pickle.load(f) != MAGIC:
            raise ValueError(f"{path}: not a legacy torch checkpoint (bad magic number)")
        if pickle.load(f) != PROTOCOL:
            raise ValueError(f"{path}: unsupported protocol version")
        sys_info = pickle.load(f)
        if not sys_info.get("little_endian", True):
            raise ValueError(f"{path}: big-endian checkpoints are not supported")
        unpickler = LegacyUnpickler(f)
        obj = unpickler.load()
        if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
            obj = obj["state_dict"]
        if not isinstance(obj, dict):
            raise ValueError(f"{path}: the checkpoint holds a {type(obj).__name__}, not a state dict")
        keys = pickle.load(f)
        data = {}
        for key in keys:
            (numel,) = struct.unpack("<Q", f.read(8))
            storage = unpickler.storages[key]
            nbytes = numel * storage.type.itemsize
            raw = f.read(nbytes)
            if len(raw) != nbytes:
                raise ValueError(f"{path}: truncated storage {key}")
            data[key] = raw
    tensors = {}
    for name, t in obj.items():
        if not isinstance(t, TensorRef):
            raise ValueError(f"{path}: entry {name} is not a tensor")
        tensors[name] = t
    return tensors, data


def write_safetensors(tensors, data, out):
    header, chunks, pos = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        chunk = t.tobytes(data, name)
        header[name] = {
            "dtype": t.storage.type.dtype,
            "shape": list(t.size),
            "data_offsets": [pos, pos + len(chunk)],
        }
        chunks.append(chunk)
        pos += len(chunk)
    header["__metadata__"] = {"format": "pt"}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for chunk in chunks:
            f.write(chunk)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2])
    tensors, data = read_legacy(sys.argv[1])
    write_safetensors(tensors, data, sys.argv[2])
    print(f"{sys.argv[2]}: {len(tensors)} tensors", file=sys.stderr)


if __name__ == "__main__":
    main()
