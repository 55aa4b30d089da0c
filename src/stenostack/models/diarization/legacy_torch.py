"""Read a legacy (pre-1.6, non-zip) ``torch.save`` file into numpy arrays, without torch.

Such a file is a run of pickles and raw bytes:

1. the magic number ``0x1950a86a20f9469cfc6c``, the protocol version ``1001`` and a dict of
   system information (byte order, type sizes), each a small pickle;
2. the saved object itself, a pickle whose tensors are ``torch._utils._rebuild_tensor_v2``
   calls over storages named by persistent ids
   ``("storage", storage_type, key, location, size, view_metadata)``;
3. a pickled list of the storage keys, in the order their data follow;
4. for each key, its element count as a little-endian int64, then its raw elements.

A pickle can call any importable function while it loads, so the unpickler here resolves
only the few globals a state dict needs; anything else is refused by name, before it runs.
"""

from __future__ import annotations

import collections
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
from numpy.typing import NDArray

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
ZIP_SIGNATURE = b"PK\x03\x04"

# Stored little-endian (checked against the file's own sys info), whatever this machine is.
STORAGE_DTYPES: dict[str, np.dtype[Any]] = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class LegacyTorchFileError(ValueError):
    """The file is not a legacy torch file this reader can read."""


class RefusedGlobalError(LegacyTorchFileError, pickle.UnpicklingError):
    """The pickle asked for a global outside the allowed few: it could run code."""

    def __init__(self, module: str, name: str) -> None:
        super().__init__(
            f"refused to load the global {module}.{name}: only tensors, storages and "
            "OrderedDict may appear in a state dict read without torch"
        )
        self.global_name = f"{module}.{name}"


@dataclass(frozen=True)
class _StorageType:
    name: str
    dtype: np.dtype[Any]


@dataclass(frozen=True)
class _StorageRef:
    """Where a tensor's elements live: a root storage, or a view at ``offset`` into one."""

    key: str
    dtype: np.dtype[Any]
    size: int
    root_key: str
    offset: int  # elements into the root storage; 0 unless a view


@dataclass(frozen=True)
class _TensorRef:
    """A tensor met in the pickle, built once the storages' bytes (after it) are read."""

    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(
    storage: object, offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: object
) -> _TensorRef:
    # The trailing arguments (requires_grad, backward hooks, metadata) mean nothing without torch.
    if not isinstance(storage, _StorageRef):
        raise LegacyTorchFileError(f"a tensor over {type(storage).__name__}, not a storage")
    if len(size) != len(stride):
        raise LegacyTorchFileError(f"a tensor of shape {size} with strides {stride}")
    return _TensorRef(storage, int(offset), tuple(map(int, size)), tuple(map(int, stride)))


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only what a legacy state dict holds; storages come back as references."""

    def __init__(self, file: IO[bytes]) -> None:
        super().__init__(file)
        self.storages: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name, STORAGE_DTYPES[name])
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise RefusedGlobalError(module, name)

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not isinstance(pid, tuple) or len(pid) != 6 or pid[0] != "storage":
            kind = pid[0] if isinstance(pid, tuple) and pid else pid
            raise LegacyTorchFileError(f"unsupported persistent id {kind!r}: not a state dict")
        _, storage_type, key, _location, size, view = pid
        if not isinstance(storage_type, _StorageType):
            raise LegacyTorchFileError(f"storage {key!r} of unknown type {storage_type!r}")
        root = self.storages.setdefault(
            str(key), _StorageRef(str(key), storage_type.dtype, int(size), str(key), 0)
        )
        if view is None:
            return root
        # Old torch saved a slice of a storage as a view: (view key, offset, size) of its root.
        view_key, offset, view_size = view
        return self.storages.setdefault(
            str(view_key),
            _StorageRef(str(view_key), root.dtype, int(view_size), root.key, int(offset)),
        )


def _load_pickle(file: IO[bytes], what: str) -> tuple[Any, _RestrictedUnpickler]:
    unpickler = _RestrictedUnpickler(file)
    try:
        return unpickler.load(), unpickler
    except LegacyTorchFileError:
        raise
    except Exception as error:  # whatever a malformed pickle trips over inside pickle
        # pickle says EOFError at a clean end, "pickle data was truncated" within an opcode.
        if isinstance(error, EOFError) or "truncated" in str(error):
            raise LegacyTorchFileError(f"the file is truncated within {what}") from error
        raise LegacyTorchFileError(f"{what} is not a valid pickle: {error}") from error


def _read_storages(
    file: IO[bytes], keys: list[str], storages: dict[str, _StorageRef], file_size: int
) -> dict[str, NDArray[Any]]:
    data: dict[str, NDArray[Any]] = {}
    for key in keys:
        storage = storages.get(key)
        if storage is None or storage.root_key != key:
            raise LegacyTorchFileError(f"the file lists data for an unknown storage {key!r}")
        header = file.read(8)
        if len(header) < 8:
            raise LegacyTorchFileError(f"the file is truncated before storage {key!r}")
        (count,) = struct.unpack("<q", header)
        if count != storage.size:
            raise LegacyTorchFileError(
                f"storage {key!r} holds {count} elements, its tensors say {storage.size}"
            )
        nbytes = count * storage.dtype.itemsize
        # Checked before reading: a forged count must not make read() allocate gigabytes.
        if count < 0 or nbytes > file_size - file.tell():
            raise LegacyTorchFileError(f"the file is truncated within storage {key!r}")
        raw = file.read(nbytes)
        if len(raw) < nbytes:
            raise LegacyTorchFileError(f"the file is truncated within storage {key!r}")
        data[key] = np.frombuffer(raw, dtype=storage.dtype)
    return data


def _materialise(tensor: _TensorRef, data: dict[str, NDArray[Any]]) -> NDArray[Any]:
    storage = tensor.storage
    buffer = data.get(storage.root_key)
    if buffer is None:
        raise LegacyTorchFileError(f"no data in the file for storage {storage.key!r}")
    buffer = buffer[storage.offset : storage.offset + storage.size]
    shape, stride = tensor.shape, tensor.stride
    if any(n < 0 for n in shape) or any(s < 0 for s in stride) or tensor.offset < 0:
        raise LegacyTorchFileError(f"a tensor of shape {shape}, strides {stride}")
    # Check the last element the strides reach, or as_strided would read past the buffer.
    last = tensor.offset + sum((n - 1) * s for n, s in zip(shape, stride, strict=True))
    if 0 not in shape and last >= len(buffer):
        raise LegacyTorchFileError(
            f"a tensor of shape {shape} at {tensor.offset} runs past its storage of "
            f"{len(buffer)} elements"
        )
    if 0 in shape:
        return np.zeros(shape, dtype=buffer.dtype.newbyteorder("="))
    view = np.lib.stride_tricks.as_strided(
        buffer[tensor.offset :],
        shape=shape,
        strides=tuple(s * buffer.itemsize for s in stride),
        writeable=False,
    )
    # A contiguous copy in native byte order: callers own it, and the file's buffer is freed.
    return np.array(view, dtype=buffer.dtype.newbyteorder("="), order="C", copy=True)


def _resolve(obj: Any, data: dict[str, NDArray[Any]]) -> Any:
    if isinstance(obj, _TensorRef):
        return _materialise(obj, data)
    if isinstance(obj, dict):
        return {key: _resolve(value, data) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_resolve(value, data) for value in obj]
    if isinstance(obj, tuple):
        return tuple(_resolve(value, data) for value in obj)
    if isinstance(obj, _StorageRef):
        raise LegacyTorchFileError(f"a bare storage {obj.key!r}: not a state dict")
    return obj


def read_legacy_torch_file(path: Path) -> dict[str, Any]:
    """The dict saved in a legacy ``torch.save`` file, its tensors as numpy arrays (copies).

    OrderedDicts come back as plain dicts (in order). Raises ``LegacyTorchFileError``
    (a ``ValueError``) if the file is of the newer zip format, truncated or not a torch file,
    and ``RefusedGlobalError`` if it names any global but tensors, storages and OrderedDict.
    """
    with path.open("rb") as file:
        head = file.peek(4)[:4]
        if head == ZIP_SIGNATURE:
            raise LegacyTorchFileError(
                f"{path} is a zip-format torch file (torch >= 1.6), which this reader does not "
                "read: re-save it with torch.save(..., _use_new_zipfile_serialization=False)"
            )
        if not head:
            raise LegacyTorchFileError(f"{path} is empty")
        try:
            magic, _ = _load_pickle(file, "the magic number")
        except RefusedGlobalError:
            raise
        except LegacyTorchFileError as error:  # not even a pickle: some other kind of file
            raise LegacyTorchFileError(f"{path} is not a legacy torch file: {error}") from error
        if magic != MAGIC_NUMBER:
            raise LegacyTorchFileError(f"{path} is not a legacy torch file: no magic number")
        version, _ = _load_pickle(file, "the protocol version")
        if version != PROTOCOL_VERSION:
            raise LegacyTorchFileError(f"{path} has protocol version {version}, not 1001")
        sys_info, _ = _load_pickle(file, "the system information")
        if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
            raise LegacyTorchFileError(f"{path} was not saved little-endian: {sys_info!r}")
        saved, unpickler = _load_pickle(file, "the saved object")
        keys, _ = _load_pickle(file, "the list of storages")
        if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
            raise LegacyTorchFileError(f"{path} has no list of storage keys after its object")
        data = _read_storages(file, keys, unpickler.storages, path.stat().st_size)
    result = _resolve(saved, data)
    if not isinstance(result, dict):
        raise LegacyTorchFileError(f"{path} holds a {type(result).__name__}, not a dict")
    return cast(dict[str, Any], result)
