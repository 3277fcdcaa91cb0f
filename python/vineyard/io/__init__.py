"""Streams and I/O drivers: ``vineyard.io.open/read/write`` and the stream types."""
from ..core.builder import default_builder_context
from ..core.resolver import default_resolver_context
from . import byte, dataframe, parallel, recordbatch, stream  # noqa: F401
from .byte import ByteStream, byte_stream_resolver
from .dataframe import DataframeStream, dataframe_stream_resolver
from .drivers import IOJob, deserialize, open, read, serialize, write
from .parallel import ParallelStream, make_parallel_stream, parallel_stream_resolver
from .recordbatch import RecordBatchStream, recordbatch_stream_resolver
from .stream import BaseStream, StreamCollection, stream_collection_resolver

__all__ = [
    "open", "read", "write", "serialize", "deserialize", "IOJob",
    "BaseStream", "StreamCollection", "ByteStream", "DataframeStream", "RecordBatchStream",
    "ParallelStream", "make_parallel_stream", "register_builtin_stream_types",
]


def register_builtin_stream_types(builder_ctx=None, resolver_ctx=None) -> None:
    if resolver_ctx is not None:
        resolver_ctx.register("vineyard::ByteStream", byte_stream_resolver)
        resolver_ctx.register("vineyard::DataframeStream", dataframe_stream_resolver)
        resolver_ctx.register("vineyard::RecordBatchStream", recordbatch_stream_resolver)
        resolver_ctx.register("vineyard::ParallelStream", parallel_stream_resolver)
        resolver_ctx.register("vineyard::StreamCollection", stream_collection_resolver)


register_builtin_stream_types(default_builder_context, default_resolver_context)
