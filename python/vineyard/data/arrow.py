"""pyarrow arrays, RecordBatch and Table <-> vineyard arrow objects (the reference layouts).

- ``NumericArray<T>`` (T = ``str(array.type)``: ``int64``, ``double``, ``float``, ...) and
  ``BooleanArray``: fields ``length_``, ``null_count_``, ``offset_``; members ``buffer_``,
  ``null_bitmap_`` (the empty blob when there is no validity bitmap).
- ``BaseBinaryArray<arrow::LargeStringArray>`` / ``<arrow::LargeBinaryArray>``: members
  ``buffer_offsets_`` (int64 offsets; 32-bit offsets are widened), ``buffer_data_``,
  ``null_bitmap_``. ``string``/``binary`` arrays therefore come back as ``large_*``.
- ``FixedSizeBinaryArray``: as ``NumericArray`` plus ``byte_width_``.
- ``LargeListArray`` (``list`` and ``large_list`` arrays): ``length_``, ``null_count_``,
  ``offset_``; members ``buffer_offsets_`` (int64; 32-bit offsets widened), ``null_bitmap_``
  and ``values_`` (the child array, any of these layouts). A ``list`` array comes back as a
  ``large_list`` one (as strings come back ``large_string``).
- ``DictionaryArray`` and ``StructArray`` have no layout in vineyard's clients; these follow
  its C++ arrays (header fields, blobs for buffers, one member per child array):
  ``vineyard::DictionaryArray``: ``length_``, ``null_count_``, ``ordered_``; members
  ``indices_`` and ``dictionary_`` (arrays). ``vineyard::StructArray``: ``length_``,
  ``null_count_``, ``offset_`` (0: a sliced array is written from its own first row),
  ``fields_`` (JSON list of ``{"name", "nullable"}``), ``__fields_-size`` and members
  ``__fields_-<i>`` (the child arrays), ``null_bitmap_``.
- ``pyarrow.Buffer``: a plain blob (``get`` gives a read-only memoryview over it;
  ``pa.py_buffer`` wraps that without copying).
- ``SchemaProxy``: ``schema_binary_`` = JSON ``{"bytes": [...]}`` of the IPC-serialized schema
  (string/binary/list types widened to their large variants, nested ones too).
- ``RecordBatch``: ``row_num_``, ``column_num_``, ``__columns_-<i>``, member ``schema_``;
  ``Table``: ``num_rows_``, ``num_columns_``, ``batch_num_``, ``partitions_-<i>``, ``schema_``.
- ``Table`` with ``from_polars`` (a polars frame, see polars.py): resolved to polars.
- ``Tensor<std::string>`` (numpy string/object arrays as the reference writes them): built
  here (``string_tensor_builder``, used for pandas string columns); tensor.py resolves it.

``get`` maps the blobs zero-copy into arrow buffers (read-only).
"""
from __future__ import annotations

import itertools
import json
import pickle
from typing import Any, Optional

import numpy as np
import pyarrow as pa

from .. import _C
from ..core.object import PendingObject
from .pickle import pickle_builder
from .utils import blob_list, build_buffer, from_json, to_json

_ARROW_TYPES = {"float": pa.float32(), "double": pa.float64(), "halffloat": pa.float16(),
                "half": pa.float16(), "int": pa.int32(), "int32_t": pa.int32(),
                "int64_t": pa.int64(), "uint32_t": pa.uint32(), "uint64_t": pa.uint64(),
                "long": pa.int64(), "float32": pa.float32(), "float64": pa.float64()}


def _arrow_type(name: str) -> pa.DataType:
    name = name.strip()
    if name in _ARROW_TYPES:
        return _ARROW_TYPES[name]
    return pa.type_for_alias(name)


def _buffer(client: Any, buffer: Optional[pa.Buffer]) -> Any:
    """A BlobBuilder with the buffer's bytes, or the empty blob for a missing/empty buffer."""
    if buffer is None or buffer.size == 0:
        return _C.Blob.empty()
    return build_buffer(client, memoryview(buffer))


def _arrow_buffer(blob: Any) -> Optional[pa.Buffer]:
    """A zero-copy arrow buffer over a mapped blob (None for the empty blob)."""
    if blob is None or blob.is_empty or blob.size == 0:
        return None
    return pa.py_buffer(memoryview(blob))


def _array_meta(typename: str, array: pa.Array) -> Any:
    meta = _C.ObjectMeta()
    meta.typename = typename
    meta["length_"] = len(array)
    meta["null_count_"] = int(array.null_count)
    meta["offset_"] = int(array.offset)
    meta.nbytes = int(array.nbytes)
    return meta


def _fixed_width_builder(typename: str, client: Any, array: pa.Array) -> PendingObject:
    meta = _array_meta(typename, array)
    null_bitmap = _buffer(client, array.buffers()[0])
    buffer = _buffer(client, array.buffers()[1])
    meta.add_member("buffer_", buffer)
    meta.add_member("null_bitmap_", null_bitmap)
    return PendingObject(meta, blob_list(buffer) + blob_list(null_bitmap))


def numeric_array_builder(client: Any, array: pa.Array, **kw: Any) -> PendingObject:
    return _fixed_width_builder("vineyard::NumericArray<%s>" % array.type, client, array)


def boolean_array_builder(client: Any, array: pa.BooleanArray, **kw: Any) -> PendingObject:
    return _fixed_width_builder("vineyard::BooleanArray", client, array)


def fixed_size_binary_array_builder(client: Any, array: pa.FixedSizeBinaryArray,
                                    **kw: Any) -> PendingObject:
    built = _fixed_width_builder("vineyard::FixedSizeBinaryArray", client, array)
    built.meta["byte_width_"] = int(array.type.byte_width)
    return built


def _int64_offsets(array: pa.Array, offsets: Optional[pa.Buffer]) -> Optional[pa.Buffer]:
    """The offsets buffer of a binary/list array as int64 (32-bit offsets widened)."""
    if offsets is None or array.type.id in _LARGE_OFFSET_TYPES:
        return offsets
    count = array.offset + len(array) + 1
    return pa.py_buffer(np.frombuffer(offsets, dtype=np.int32, count=count).astype(np.int64))


def _binary_builder(typename: str, client: Any, array: pa.Array) -> PendingObject:
    meta = _array_meta(typename, array)
    buffers = array.buffers()
    offsets = _int64_offsets(array, buffers[1])
    null_bitmap = _buffer(client, buffers[0])
    buffer_offsets = _buffer(client, offsets)
    buffer_data = _buffer(client, buffers[2])
    meta.add_member("buffer_offsets_", buffer_offsets)
    meta.add_member("buffer_data_", buffer_data)
    meta.add_member("null_bitmap_", null_bitmap)
    return PendingObject(meta, blob_list(buffer_offsets) + blob_list(buffer_data)
                         + blob_list(null_bitmap))


def string_array_builder(client: Any, array: pa.Array, **kw: Any) -> PendingObject:
    return _binary_builder("vineyard::BaseBinaryArray<arrow::LargeStringArray>", client, array)


def binary_array_builder(client: Any, array: pa.Array, **kw: Any) -> PendingObject:
    return _binary_builder("vineyard::BaseBinaryArray<arrow::LargeBinaryArray>", client, array)


def list_array_builder(client: Any, array: pa.Array, builder: Any = None,
                       **kw: Any) -> PendingObject:
    meta = _array_meta("vineyard::LargeListArray", array)
    null_bitmap = _buffer(client, array.buffers()[0])
    buffer_offsets = _buffer(client, _int64_offsets(array, array.buffers()[1]))
    meta.add_member("null_bitmap_", null_bitmap)
    meta.add_member("buffer_offsets_", buffer_offsets)
    meta.add_member("values_", client.nest_all([_build_column(client, array.values, builder)])[0])
    return PendingObject(meta, blob_list(null_bitmap) + blob_list(buffer_offsets))


def dictionary_array_builder(client: Any, array: pa.DictionaryArray, builder: Any = None,
                             **kw: Any) -> PendingObject:
    meta = _C.ObjectMeta()
    meta.typename = "vineyard::DictionaryArray"
    meta["length_"] = len(array)
    meta["null_count_"] = int(array.null_count)
    meta["ordered_"] = bool(array.type.ordered)
    meta.nbytes = int(array.nbytes)
    members = client.nest_all([_build_column(client, array.indices, builder),
                               _build_column(client, array.dictionary, builder)])
    meta.add_member("indices_", members[0])
    meta.add_member("dictionary_", members[1])
    return PendingObject(meta)


def struct_array_builder(client: Any, array: pa.StructArray, builder: Any = None,
                         **kw: Any) -> PendingObject:
    meta = _array_meta("vineyard::StructArray", array)
    meta["offset_"] = 0
    fields = [array.type.field(i) for i in range(array.type.num_fields)]
    meta["fields_"] = to_json([{"name": f.name, "nullable": f.nullable} for f in fields])
    meta["__fields_-size"] = len(fields)
    # children as field(i) sees them (sliced to this array), the validity from row 0
    validity = array.is_valid().buffers()[1] if array.null_count else None
    null_bitmap = _buffer(client, validity)
    meta.add_member("null_bitmap_", null_bitmap)
    children = client.nest_all([_build_column(client, array.field(i), builder)
                                for i in range(len(fields))])
    for i, member in enumerate(children):
        meta.add_member("__fields_-%d" % i, member)
    return PendingObject(meta, blob_list(null_bitmap))


def buffer_builder(client: Any, buffer: pa.Buffer, **kw: Any) -> Any:
    from .sequence import bytes_builder
    return bytes_builder(client, memoryview(buffer))


def null_array_builder(client: Any, array: pa.NullArray, **kw: Any) -> PendingObject:
    meta = _C.ObjectMeta()
    meta.typename = "vineyard::NullArray"
    meta["length_"] = len(array)
    meta.nbytes = 0
    return PendingObject(meta)


_LARGE_OFFSET_TYPES = {pa.large_string().id, pa.large_binary().id, pa.large_list(pa.int8()).id}


def _large_type(t: pa.DataType) -> pa.DataType:
    """The type an array of type ``t`` has once read back."""
    if t == pa.string():
        return pa.large_string()
    if t == pa.binary():
        return pa.large_binary()
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.large_list(_large_field(t.value_field))
    if pa.types.is_struct(t):
        return pa.struct([_large_field(t.field(i)) for i in range(t.num_fields)])
    if pa.types.is_dictionary(t):
        return pa.dictionary(t.index_type, _large_type(t.value_type), t.ordered)
    return t


def _large_field(f: pa.Field) -> pa.Field:
    return pa.field(f.name, _large_type(f.type), f.nullable, f.metadata)


def schema_builder(client: Any, schema: pa.Schema, **kw: Any) -> PendingObject:
    resized = pa.schema([_large_field(f) for f in schema], schema.metadata)
    serialized = resized.serialize()
    meta = _C.ObjectMeta()
    meta.typename = "vineyard::SchemaProxy"
    meta["schema_binary_"] = json.dumps({"bytes": list(memoryview(serialized).cast("B"))})
    meta.nbytes = int(serialized.size)
    return PendingObject(meta)


def _build_column(client: Any, column: pa.Array, builder: Any) -> Any:
    if builder is not None:
        return builder.run(client, column)
    return _ARRAY_BUILDERS(column)(client, column)


_schema_tokens = itertools.count()


def _record_batch(client: Any, batch: pa.RecordBatch, builder: Any, schema: Any) -> PendingObject:
    """A RecordBatch whose member ``schema_`` is ``schema``: an ObjectID, a pending
    ObjectMeta, or a str token of a schema shared within the same put."""
    meta = _C.ObjectMeta()
    meta.typename = "vineyard::RecordBatch"
    meta["row_num_"] = batch.num_rows
    meta["column_num_"] = batch.num_columns
    meta["__columns_-size"] = batch.num_columns
    columns = client.nest_all([_build_column(client, batch.column(i), builder)
                               for i in range(batch.num_columns)])
    if isinstance(schema, str):
        meta.add_shared_member("schema_", schema)
    else:
        meta.add_member("schema_", schema)
    for i, member in enumerate(columns):
        meta.add_member("__columns_-%d" % i, member)
    meta.nbytes = int(batch.nbytes)
    return PendingObject(meta)


_NATIVE_COLUMN_BUILDERS = {pa.types.is_boolean: "boolean_array_builder",
                           pa.types.is_string: "string_array_builder",
                           pa.types.is_large_string: "string_array_builder",
                           pa.types.is_binary: "binary_array_builder",
                           pa.types.is_large_binary: "binary_array_builder",
                           pa.types.is_integer: "numeric_array_builder",
                           pa.types.is_floating: "numeric_array_builder"}


def _native_put(client: Any, value: Any, schema: pa.Schema, builder: Any,
                as_batch: bool, fields: Optional[dict] = None) -> Any:
    """The Table (or RecordBatch) put by one native call (_C.Client.put_arrow: the tree
    these builders make, from Arrow's C stream), when every column is of a type it writes
    and the builders that would run are these; else None."""
    native = getattr(client, "native", None)
    if not getattr(client, "is_ipc", False) or not hasattr(native, "put_arrow"):
        return None
    for field in schema:
        t = field.type
        name = next((n for test, n in _NATIVE_COLUMN_BUILDERS.items() if test(t)), None)
        if name is None:
            return None
        if builder is not None:  # a context: the array builder it would run must be ours
            chunk_type = type(pa.array([], type=t))
            if builder.find(chunk_type) is not globals()[name]:
                return None
    serialized = pa.schema([_large_field(f) for f in schema], schema.metadata).serialize()
    stream = (pa.RecordBatchReader.from_batches(schema, [value]) if as_batch else value)
    put = native.put_arrow(stream.__arrow_c_stream__(),
                           json.dumps({"bytes": list(memoryview(serialized).cast("B"))}),
                           int(serialized.size), as_batch=as_batch,
                           fields=json.dumps(fields or {}))
    if put is None:
        return None
    oid, made = put
    for member in made:  # undone with the put this value is part of, if that fails
        client.adopt_created(member)
    client.adopt_created(oid)
    return oid


def record_batch_builder(client: Any, batch: pa.RecordBatch, builder: Any = None,
                         **kw: Any) -> Any:
    oid = _native_put(client, batch, batch.schema, builder, True)
    if oid is not None:
        return oid
    schema = client.nest_all([schema_builder(client, batch.schema)])[0]
    return _record_batch(client, batch, builder, schema)


def table_builder(client: Any, table: pa.Table, builder: Any = None,
                  fields: Optional[dict] = None, **kw: Any) -> Any:
    """One schema object for the table and all its batches; inside an IPC put the whole
    table (batches, columns, bytes) is created by one request (two with large chunks):
    natively (``_native_put``) when its columns allow. ``fields``: more fields of the
    Table (JSON values; e.g. ``from_polars``)."""
    oid = _native_put(client, table, table.schema, builder, False, fields)
    if oid is not None:
        return oid
    meta = _C.ObjectMeta()
    meta.typename = "vineyard::Table"
    meta["num_rows_"] = table.num_rows
    meta["num_columns_"] = table.num_columns
    batches = table.to_batches()
    meta["batch_num_"] = len(batches)
    meta["partitions_-size"] = len(batches)
    schema = client.nest_all([schema_builder(client, table.schema)])[0]
    if isinstance(schema, _C.ObjectMeta):  # created with the table: shared by token
        token = "arrow-schema-%d" % next(_schema_tokens)
        schema.share(token)
        meta.add_member("schema_", schema)
        schema = token
    else:
        meta.add_member("schema_", schema)
    parts = client.nest_all([_record_batch(client, b, builder, schema) for b in batches])
    for i, member in enumerate(parts):
        meta.add_member("partitions_-%d" % i, member)
    meta.nbytes = int(table.nbytes)
    for key, value in (fields or {}).items():
        meta[key] = value
    return PendingObject(meta)


def _ARRAY_BUILDERS(array: pa.Array) -> Any:  # noqa: N802 - used like a table
    t = array.type
    if pa.types.is_boolean(t):
        return boolean_array_builder
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return string_array_builder
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return binary_array_builder
    if pa.types.is_null(t):
        return null_array_builder
    if pa.types.is_fixed_size_binary(t):
        return fixed_size_binary_array_builder
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return list_array_builder
    if pa.types.is_dictionary(t):
        return dictionary_array_builder
    if pa.types.is_struct(t):
        return struct_array_builder
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return numeric_array_builder
    return pickle_builder


def _direct_string_array(client: Any, value: np.ndarray) -> Optional[PendingObject]:
    """A large object array of str/None encoded straight into blobs of an IPC client (no
    intermediate buffers): the ``BaseBinaryArray<arrow::LargeStringArray>`` of
    ``string_array_builder``; None when that does not apply."""
    if not value.dtype.hasobject or not getattr(client, "is_ipc", False) \
            or len(value) < 4096:
        return None
    direct = _C.encode_str_array_into(value, client.native)
    if direct is None:
        return None
    validity, offsets, data, nulls = direct
    blobs = [offsets, data] + ([validity] if validity is not None else [])
    client.adopt_builders(blobs)
    meta = _C.ObjectMeta()
    meta.typename = "vineyard::BaseBinaryArray<arrow::LargeStringArray>"
    meta["length_"] = len(value)
    meta["null_count_"] = int(nulls)
    meta["offset_"] = 0
    meta.nbytes = sum(w.size for w in blobs)
    meta.add_member("buffer_offsets_", offsets)
    meta.add_member("buffer_data_", data)
    meta.add_member("null_bitmap_", validity if validity is not None else _C.Blob.empty())
    return PendingObject(meta, blobs)


def string_tensor_builder(client: Any, value: np.ndarray, **kw: Any) -> Optional[PendingObject]:
    """A 1-d numpy string/object array of str (None allowed) -> ``Tensor<std::string>`` over
    a large-string array, as the reference writes it; None when not representable."""
    if value.ndim != 1:
        return None
    meta = _C.ObjectMeta()
    meta.typename = "vineyard::Tensor<std::string>"
    meta["shape_"] = to_json([int(d) for d in value.shape])
    meta["partition_index_"] = to_json(list(kw.get("partition_index", [])))
    meta["order_"] = to_json("C")
    meta["value_type_"] = "string"
    meta["value_type_meta_"] = "str"
    meta.nbytes = int(value.nbytes)
    array = _direct_string_array(client, value)
    if array is not None:
        meta.add_member("buffer_", client.nest_all([array])[0])
        return PendingObject(meta)
    encoded = _C.encode_str_array(value) if value.dtype.hasobject else None
    if encoded is not None:  # str/None objects, straight to the arrow buffers
        validity, offsets, data, nulls = encoded
        array = pa.Array.from_buffers(
            pa.large_string(), len(value),
            [None if validity is None else pa.py_buffer(validity), pa.py_buffer(offsets),
             pa.py_buffer(data)], nulls)
    else:
        try:
            array = pa.array(value, type=pa.large_string())
        except (pa.ArrowException, TypeError, ValueError):
            return None
        if array.null_count and value.dtype.hasobject \
                and any(v is not None for v in value[np.asarray(array.is_null())]):
            return None  # NaN etc. would not come back as themselves
    meta.add_member("buffer_", client.nest_all([string_array_builder(client, array)])[0])
    return PendingObject(meta)


# --------------------------------------------------------------------------- resolvers


def _header(obj: Any) -> tuple:
    meta = obj.meta
    return int(meta["length_"]), int(meta["null_count_"]), int(meta["offset_"])


def numeric_array_resolver(obj: Any, **kw: Any) -> pa.Array:
    name = obj.typename.split("<", 1)[1].rsplit(">", 1)[0]
    length, null_count, offset = _header(obj)
    return pa.Array.from_buffers(_arrow_type(name), length,
                                 [_arrow_buffer(obj.member("null_bitmap_")),
                                  _arrow_buffer(obj.member("buffer_"))], null_count, offset)


def boolean_array_resolver(obj: Any, **kw: Any) -> pa.Array:
    length, null_count, offset = _header(obj)
    return pa.Array.from_buffers(pa.bool_(), length,
                                 [_arrow_buffer(obj.member("null_bitmap_")),
                                  _arrow_buffer(obj.member("buffer_"))], null_count, offset)


def _binary_resolver(obj: Any, dtype: pa.DataType) -> pa.Array:
    length, null_count, offset = _header(obj)
    offsets = _arrow_buffer(obj.member("buffer_offsets_"))
    if offsets is None:  # zero-length array written without offsets
        offsets = pa.py_buffer(np.zeros(offset + length + 1, dtype=np.int64))
    data = _arrow_buffer(obj.member("buffer_data_")) or pa.py_buffer(b"")
    return pa.Array.from_buffers(dtype, length,
                                 [_arrow_buffer(obj.member("null_bitmap_")), offsets, data],
                                 null_count, offset)


def string_array_resolver(obj: Any, **kw: Any) -> pa.Array:
    return _binary_resolver(obj, pa.large_string())


def binary_array_resolver(obj: Any, **kw: Any) -> pa.Array:
    return _binary_resolver(obj, pa.large_binary())


def fixed_size_binary_array_resolver(obj: Any, **kw: Any) -> pa.Array:
    length, null_count, offset = _header(obj)
    return pa.Array.from_buffers(pa.binary(int(obj.meta["byte_width_"])), length,
                                 [_arrow_buffer(obj.member("null_bitmap_")),
                                  _arrow_buffer(obj.member("buffer_"))], null_count, offset)


def list_array_resolver(obj: Any, resolver: Any = None, **kw: Any) -> pa.Array:
    length, null_count, offset = _header(obj)
    values = resolver.run(obj.member("values_"))
    offsets = _arrow_buffer(obj.member("buffer_offsets_"))
    if offsets is None:  # zero-length array written without offsets
        offsets = pa.py_buffer(np.zeros(offset + length + 1, dtype=np.int64))
    return pa.Array.from_buffers(pa.large_list(values.type), length,
                                 [_arrow_buffer(obj.member("null_bitmap_")), offsets],
                                 null_count, offset, [values])


def dictionary_array_resolver(obj: Any, resolver: Any = None, **kw: Any) -> pa.Array:
    meta = obj.meta
    return pa.DictionaryArray.from_arrays(resolver.run(obj.member("indices_")),
                                          resolver.run(obj.member("dictionary_")),
                                          ordered=bool(meta.get("ordered_", False)))


def struct_array_resolver(obj: Any, resolver: Any = None, **kw: Any) -> pa.Array:
    length, null_count, offset = _header(obj)
    fields = from_json(obj.meta["fields_"])
    children = [resolver.run(obj.member("__fields_-%d" % i))
                for i in range(int(obj.meta["__fields_-size"]))]
    if len(children) != len(fields):
        raise ValueError(f"{obj.typename} {obj.id!r}: {len(fields)} fields, "
                         f"{len(children)} child arrays")
    struct = pa.struct([pa.field(f["name"], c.type, bool(f["nullable"]))
                        for f, c in zip(fields, children)])
    return pa.Array.from_buffers(struct, length, [_arrow_buffer(obj.member("null_bitmap_"))],
                                 null_count, offset, children)


def null_array_resolver(obj: Any, **kw: Any) -> pa.Array:
    return pa.nulls(int(obj.meta["length_"]))


def schema_resolver(obj: Any, **kw: Any) -> pa.Schema:
    meta = obj.meta
    if "schema_binary_" in meta:
        payload = from_json(meta["schema_binary_"])["bytes"]
        return pa.ipc.read_schema(pa.py_buffer(bytes(bytearray(payload))))
    return pa.ipc.read_schema(_arrow_buffer(obj.member("buffer_")))


def _schema_of(obj: Any, resolver: Any, schemas: dict) -> pa.Schema:
    """The schema member of ``obj``, resolved once per schema object (a table's batches
    share one)."""
    member = obj.member("schema_")
    key = int(member.id)
    schema = schemas.get(key)
    if schema is None:
        schema = schemas[key] = resolver.run(member)
    return schema


def _record_batch_of(obj: Any, resolver: Any, schemas: dict) -> pa.RecordBatch:
    schema = _schema_of(obj, resolver, schemas)
    columns = [resolver.run(obj.member("__columns_-%d" % i))
               for i in range(int(obj.meta["__columns_-size"]))]
    if len(columns) == len(schema) and any(c.type != f.type for c, f in zip(columns, schema)):
        # a schema that widened only the top level (nested strings read back large)
        schema = pa.schema([f.with_type(c.type) for c, f in zip(columns, schema)],
                           schema.metadata)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def record_batch_resolver(obj: Any, resolver: Any = None, **kw: Any) -> pa.RecordBatch:
    schemas: dict = {}
    native = _native_batches(obj, resolver, schemas)
    if native is not None:
        return native.read_next_batch()
    return _record_batch_of(obj, resolver, schemas)


_NATIVE_COLUMN_RESOLVERS = (
    ("vineyard::NumericArray<int64>", "numeric_array_resolver"),
    ("vineyard::BooleanArray", "boolean_array_resolver"),
    ("vineyard::BaseBinaryArray<arrow::LargeStringArray>", "string_array_resolver"),
    ("vineyard::BaseBinaryArray<arrow::LargeBinaryArray>", "binary_array_resolver"),
    ("vineyard::LargeStringArray", "string_array_resolver"),
    ("vineyard::LargeBinaryArray", "binary_array_resolver"))


def _native_batches(obj: Any, resolver: Any, schemas: dict) -> Optional[pa.RecordBatchReader]:
    """The batches of a got Table or RecordBatch as pyarrow reads them from one native
    call (_C.arrow_stream: zero-copy, over the mapped blobs), when the resolvers that would
    run are these and every column is of a type it reads; else None."""
    if resolver is None or not hasattr(_C, "arrow_stream") \
            or "schema_" not in obj.meta.member_names():
        return None
    if resolver.find("vineyard::RecordBatch") is not record_batch_resolver or any(
            resolver.find(t) is not globals()[name] for t, name in _NATIVE_COLUMN_RESOLVERS):
        return None
    schema = _schema_of(obj, resolver, schemas)
    capsule = _C.arrow_stream(obj.meta, schema.__arrow_c_schema__())
    return None if capsule is None else pa.RecordBatchReader._import_from_c_capsule(capsule)


def table_resolver(obj: Any, resolver: Any = None, **kw: Any) -> pa.Table:
    meta = obj.meta
    schemas: dict = {}
    native = _native_batches(obj, resolver, schemas)
    table = native.read_all() if native is not None else _python_table(obj, resolver, schemas)
    if meta.get("from_polars", False):  # put from polars, as the reference marks it
        try:
            from .polars import to_polars
        except ImportError:  # no polars here: the Table
            return table
        return to_polars(table, meta)
    return table


def _python_table(obj: Any, resolver: Any, schemas: dict) -> pa.Table:
    meta = obj.meta
    batch_resolver = resolver.find("vineyard::RecordBatch")
    batches = []
    for i in range(int(meta["batch_num_"])):
        member = obj.member("partitions_-%d" % i)
        if batch_resolver is record_batch_resolver:  # the built-in one: schemas shared
            batches.append(_record_batch_of(member, resolver, schemas))
        else:
            batches.append(resolver.run(member))
    schema = _schema_of(obj, resolver, schemas) if "schema_" in meta.member_names() else None
    if schema is None:
        return pa.Table.from_batches(batches)
    return pa.Table.from_batches(batches, schema=schema)


def object_tensor_resolver(obj: Any, **kw: Any) -> Any:
    """``Tensor<object>``: the reference's pickled object arrays."""
    return pickle.loads(memoryview(obj.member("buffer_")), fix_imports=True)


def register(builder_ctx: Any = None, resolver_ctx: Any = None) -> None:
    if builder_ctx is not None:
        builder_ctx.register((pa.NumericArray,), numeric_array_builder)
        builder_ctx.register(pa.BooleanArray, boolean_array_builder)
        builder_ctx.register((pa.StringArray, pa.LargeStringArray), string_array_builder)
        builder_ctx.register((pa.BinaryArray, pa.LargeBinaryArray), binary_array_builder)
        builder_ctx.register(pa.NullArray, null_array_builder)
        builder_ctx.register(pa.FixedSizeBinaryArray, fixed_size_binary_array_builder)
        builder_ctx.register((pa.ListArray, pa.LargeListArray), list_array_builder)
        builder_ctx.register(pa.DictionaryArray, dictionary_array_builder)
        builder_ctx.register(pa.StructArray, struct_array_builder)
        builder_ctx.register(pa.Buffer, buffer_builder)
        builder_ctx.register(pa.Schema, schema_builder)
        builder_ctx.register(pa.RecordBatch, record_batch_builder)
        builder_ctx.register(pa.Table, table_builder)
        builder_ctx.register(pa.Array, pickle_builder)  # the other array types, pickled
    if resolver_ctx is not None:
        resolver_ctx.register("vineyard::NumericArray", numeric_array_resolver)
        resolver_ctx.register("vineyard::BooleanArray", boolean_array_resolver)
        resolver_ctx.register("vineyard::BaseBinaryArray<arrow::LargeStringArray>",
                              string_array_resolver)
        resolver_ctx.register("vineyard::BaseBinaryArray<arrow::LargeBinaryArray>",
                              binary_array_resolver)
        resolver_ctx.register("vineyard::LargeStringArray", string_array_resolver)
        resolver_ctx.register("vineyard::LargeBinaryArray", binary_array_resolver)
        resolver_ctx.register("vineyard::NullArray", null_array_resolver)
        resolver_ctx.register("vineyard::FixedSizeBinaryArray", fixed_size_binary_array_resolver)
        resolver_ctx.register("vineyard::LargeListArray", list_array_resolver)
        resolver_ctx.register("vineyard::DictionaryArray", dictionary_array_resolver)
        resolver_ctx.register("vineyard::StructArray", struct_array_resolver)
        resolver_ctx.register("vineyard::SchemaProxy", schema_resolver)
        resolver_ctx.register("vineyard::RecordBatch", record_batch_resolver)
        resolver_ctx.register("vineyard::Table", table_resolver)
        resolver_ctx.register("vineyard::Tensor<object>", object_tensor_resolver)
