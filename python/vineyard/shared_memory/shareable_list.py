"""``ShareableList``: a fixed-length list of scalars packed into a vineyard ``SharedMemory``.

Items may be ``int`` (signed 64-bit), ``float`` (IEEE double), ``bool``, ``str`` (UTF-8),
``bytes`` and ``None``, as in :class:`multiprocessing.shared_memory.ShareableList`.  Unlike
the standard library's layout, ``str``/``bytes`` carry an explicit length, so trailing
``\\x00`` characters survive the round trip.

Byte layout (little-endian; every section starts 8-byte aligned)::

    offset 0   8 bytes        magic b"VYSLIST\\x01"
    offset 8   u64            n, the number of items
    offset 16  (n+1) x u64    slot offsets, relative to the data area: slot i is
                              [off[i], off[i+1]); off[0] = 0, off[n] = data size
    then       n x u8         type tag of each item, zero-padded to a multiple of 8:
                              0 None, 1 bool, 2 int, 3 float, 4 str, 5 bytes
    then       data area      slot i holds item i:
                                None   nothing
                                bool   u8 (0/1)
                                int    i64
                                float  f64
                                str    u64 length + UTF-8 bytes
                                bytes  u64 length + raw bytes

A slot is 8 bytes for a scalar and ``8 + round_up_8(len)`` for ``str``/``bytes``; before
``freeze()`` an item may be replaced by any value whose encoding fits in its slot
(``ValueError`` otherwise), as with the standard library.
"""
from __future__ import annotations

import struct
from typing import Any, Iterable, List, Optional, Tuple

from . import SharedMemory

__all__ = ["ShareableList"]

MAGIC = b"VYSLIST\x01"
_HEADER = struct.Struct("<8sQ")
_U64 = struct.Struct("<Q")
_SCALARS = {1: struct.Struct("<?"), 2: struct.Struct("<q"), 3: struct.Struct("<d")}
_NONE, _BOOL, _INT, _FLOAT, _STR, _BYTES = range(6)
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1


def _round8(n: int) -> int:
    return (n + 7) & ~7


def _encode(value: Any) -> Tuple[int, bytes]:
    """(type tag, slot payload) of a storable value; TypeError/OverflowError otherwise."""
    if value is None:
        return _NONE, b""
    if isinstance(value, bool):
        return _BOOL, _SCALARS[_BOOL].pack(value)
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise OverflowError(f"int {value} does not fit in a signed 64-bit ShareableList item")
        return _INT, _SCALARS[_INT].pack(int(value))
    if isinstance(value, float):
        return _FLOAT, _SCALARS[_FLOAT].pack(float(value))
    if isinstance(value, str):
        data = value.encode("utf-8")
        return _STR, _U64.pack(len(data)) + data
    if isinstance(value, bytes):
        return _BYTES, _U64.pack(len(value)) + bytes(value)
    raise TypeError("a ShareableList item must be int, float, bool, str, bytes or None, got "
                    f"{type(value).__name__}")


def _capacity(tag: int, payload: bytes) -> int:
    return 8 if tag in (_NONE, _BOOL, _INT, _FLOAT) else _round8(len(payload))


class ShareableList:
    """Pattern for a mutable list-like object shareable via a shared memory block.

    Its length is fixed (no append, insert, ...).  It is writable by its creator until
    ``freeze()``, which makes it immutable and visible to other vineyard clients by
    ``shm.name``; ``ShareableList(client, name=...)`` attaches to a frozen list, read-only.

    See also :class:`multiprocessing.shared_memory.ShareableList`.
    """

    def __init__(self, vineyard_client: Any, sequence: Optional[Iterable[Any]] = None, *,
                 name: Optional[str] = None) -> None:
        if sequence is None and name is not None:
            self.shm = SharedMemory(vineyard_client, name)
            self._load()
            return
        items = [_encode(v) for v in (sequence if sequence is not None else ())]
        n = len(items)
        offsets = [0]
        for tag, payload in items:
            offsets.append(offsets[-1] + _capacity(tag, payload))
        data_start = _HEADER.size + 8 * (n + 1) + _round8(n)
        self.shm = SharedMemory(vineyard_client, name, create=True,
                                size=data_start + offsets[-1])
        buf = self.shm.buf
        _HEADER.pack_into(buf, 0, MAGIC, n)
        struct.pack_into(f"<{n + 1}Q", buf, _HEADER.size, *offsets)
        tags_at = _HEADER.size + 8 * (n + 1)
        buf[tags_at:tags_at + n] = bytes(tag for tag, _ in items)
        for (tag, payload), off in zip(items, offsets):
            buf[data_start + off:data_start + off + len(payload)] = payload
        self._n, self._offsets, self._tags_at, self._data_start = n, offsets, tags_at, data_start

    def _load(self) -> None:
        buf, size = self.shm.buf, self.shm.size
        if size < _HEADER.size + 8:
            raise ValueError(f"shared memory {self.shm.name!r} does not hold a ShareableList")
        magic, n = _HEADER.unpack_from(buf, 0)
        tags_at = _HEADER.size + 8 * (n + 1)
        data_start = tags_at + _round8(n)
        if magic != MAGIC or data_start > size:
            raise ValueError(f"shared memory {self.shm.name!r} does not hold a ShareableList")
        offsets = list(struct.unpack_from(f"<{n + 1}Q", buf, _HEADER.size))
        if offsets[0] != 0 or data_start + offsets[-1] > size or any(
                a > b for a, b in zip(offsets, offsets[1:])):
            raise ValueError(f"shared memory {self.shm.name!r} holds a corrupt ShareableList")
        self._n, self._offsets, self._tags_at, self._data_start = n, offsets, tags_at, data_start

    # ------------------------------------------------------------------ items
    def _buffer(self) -> memoryview:
        buf = self.shm.buf
        if buf is None:
            raise ValueError("the ShareableList's shared memory is closed")
        return buf

    def _position(self, position: Any) -> int:
        if not isinstance(position, int):
            raise TypeError(f"ShareableList indices must be integers or slices, not "
                            f"{type(position).__name__}")
        i = position + self._n if position < 0 else position
        if not 0 <= i < self._n:
            raise IndexError("index out of range")
        return i

    def _get(self, i: int) -> Any:
        buf = self._buffer()
        tag = buf[self._tags_at + i]
        at = self._data_start + self._offsets[i]
        if tag == _NONE:
            return None
        if tag in _SCALARS:
            return _SCALARS[tag].unpack_from(buf, at)[0]
        if tag in (_STR, _BYTES):
            (length,) = _U64.unpack_from(buf, at)
            data = bytes(buf[at + 8:at + 8 + length])
            return data.decode("utf-8") if tag == _STR else data
        raise ValueError(f"corrupt ShareableList item {i}: type tag {tag}")

    def __getitem__(self, position: Any) -> Any:
        if isinstance(position, slice):
            return [self._get(i) for i in range(*position.indices(self._n))]
        return self._get(self._position(position))

    def __setitem__(self, position: Any, value: Any) -> None:
        i = self._position(position)
        if self.shm.frozen:
            raise TypeError(f"ShareableList {self.shm.name!r} is frozen: it is read-only")
        tag, payload = _encode(value)
        if len(payload) > self._offsets[i + 1] - self._offsets[i]:
            raise ValueError("bytes/str item exceeds available storage")
        buf = self._buffer()
        at = self._data_start + self._offsets[i]
        buf[at:at + len(payload)] = payload
        buf[self._tags_at + i] = tag

    def __len__(self) -> int:
        return self._n

    def __iter__(self):
        return (self._get(i) for i in range(self._n))

    def count(self, value: Any) -> int:
        """L.count(value) -> integer -- return number of occurrences of value."""
        return sum(value == entry for entry in self)

    def index(self, value: Any) -> int:
        """L.index(value) -> integer -- return first index of value.

        Raises ValueError if the value is not present.
        """
        for position, entry in enumerate(self):
            if value == entry:
                return position
        raise ValueError(f"{value!r} not in this container")

    def freeze(self) -> "ShareableList":
        """Make the shareable list immutable and visible for other vineyard clients."""
        self.shm.freeze()
        return self

    @property
    def format(self) -> str:
        """struct-like description of the items (q int, d float, ? bool, x None, Ns str/bytes)."""
        buf = self._buffer()
        codes = {_NONE: "x", _BOOL: "?", _INT: "q", _FLOAT: "d"}
        out: List[str] = []
        for i in range(self._n):
            tag = buf[self._tags_at + i]
            out.append(codes.get(tag) or f"{self._offsets[i + 1] - self._offsets[i] - 8}s")
        return "".join(out)

    def __reduce__(self):
        raise TypeError("a vineyard ShareableList cannot be pickled: pass shm.name and attach "
                        "with ShareableList(client, name=...)")

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({list(self)}, name={self.shm.name!r})"
