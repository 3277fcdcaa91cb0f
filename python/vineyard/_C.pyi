"""
Native bindings of the vineyard C++ client (ids, metadata, blobs, IPC and RPC clients).
"""

from collections.abc import Iterator, Mapping, Sequence
from typing import overload

from typing_extensions import CapsuleType


class VineyardException(Exception):
    """
    Base class of every error raised by vineyard; `code` is the StatusCode.
    """

    code: int = -1

class InvalidException(VineyardException):
    code: int = 1

class KeyErrorException(VineyardException, KeyError):
    code: int = 2

class TypeErrorException(VineyardException, TypeError):
    code: int = 3

class IOErrorException(VineyardException, OSError):
    code: int = 4

class EndOfFileException(VineyardException):
    code: int = 5

class NotImplementedException(VineyardException, NotImplementedError):
    code: int = 6

class AssertionFailedException(VineyardException, AssertionError):
    code: int = 7

class UserInputErrorException(VineyardException):
    code: int = 8

class ObjectExistsException(VineyardException):
    code: int = 11

class ObjectNotExistsException(VineyardException, KeyError):
    code: int = 12

class ObjectSealedException(VineyardException):
    code: int = 13

class ObjectNotSealedException(VineyardException):
    code: int = 14

class ObjectIsBlobException(VineyardException):
    code: int = 15

class ObjectTypeErrorException(VineyardException):
    code: int = 16

class ObjectSpilledException(VineyardException):
    code: int = 17

class ObjectNotSpilledException(VineyardException):
    code: int = 18

class MetaTreeInvalidException(VineyardException):
    code: int = 21

class MetaTreeTypeInvalidException(VineyardException):
    code: int = 22

class MetaTreeTypeNotExistsException(VineyardException):
    code: int = 23

class MetaTreeNameInvalidException(VineyardException):
    code: int = 24

class MetaTreeNameNotExistsException(VineyardException):
    code: int = 25

class MetaTreeLinkInvalidException(VineyardException):
    code: int = 26

class MetaTreeSubtreeNotExistsException(VineyardException):
    code: int = 27

class VineyardServerNotReadyException(VineyardException):
    code: int = 31

class ArrowErrorException(VineyardException):
    code: int = 32

class ConnectionFailedException(VineyardException, ConnectionError):
    code: int = 33

class ConnectionErrorException(VineyardException, ConnectionError):
    code: int = 34

class EtcdErrorException(VineyardException):
    code: int = 35

class AlreadyStoppedException(VineyardException):
    code: int = 36

class RedisErrorException(VineyardException):
    code: int = 37

class NotEnoughMemoryException(VineyardException, MemoryError):
    code: int = 41

class StreamDrainedException(VineyardException):
    code: int = 42

class StreamFailedException(VineyardException):
    code: int = 43

class InvalidStreamStateException(VineyardException):
    code: int = 44

class StreamOpenedException(VineyardException):
    code: int = 45

class GlobalObjectInvalidException(VineyardException):
    code: int = 51

class UnknownErrorException(VineyardException):
    code: int = 255

def exception_for_code(code: int) -> object:
    """The exception class raised for a StatusCode number."""

def status_to_exception(code: int, message: str) -> object:
    """
    An exception instance for a StatusCode number and message (not raised).
    """

class ObjectID:
    """Opaque 64-bit id of a vineyard object or blob; repr is 'o<16 hex>'."""

    @overload
    def __init__(self, value: int) -> None: ...

    @overload
    def __init__(self, value: str) -> None: ...

    @overload
    def __init__(self, value: ObjectID) -> None: ...

    def __repr__(self) -> str: ...

    def __str__(self) -> str: ...

    def __int__(self) -> int: ...

    def __index__(self) -> int: ...

    def __hash__(self) -> int: ...

    def __eq__(self, arg: ObjectID, /) -> bool: ...

    def __ne__(self, arg: ObjectID, /) -> bool: ...

    def __lt__(self, arg: ObjectID, /) -> bool: ...

    def __le__(self, arg: ObjectID, /) -> bool: ...

    def __gt__(self, arg: ObjectID, /) -> bool: ...

    def __ge__(self, arg: ObjectID, /) -> bool: ...

    def __getstate__(self) -> int: ...

    def __setstate__(self, arg: int, /) -> None: ...

    @property
    def is_blob(self) -> bool:
        """True for blob ids (top bit set)."""

    @staticmethod
    def empty_blob() -> ObjectID:
        """The id of the empty blob."""

    @staticmethod
    def invalid() -> ObjectID:
        """The id of metadata not yet created."""

class ObjectName:
    """The name of a vineyard object (wraps a str)."""

    def __init__(self, name: str) -> None: ...

    def __repr__(self) -> str: ...

    def __str__(self) -> str: ...

    def __hash__(self) -> int: ...

    def __eq__(self, arg: ObjectName, /) -> bool: ...

    def __ne__(self, arg: ObjectName, /) -> bool: ...

    def __getstate__(self) -> str: ...

    def __setstate__(self, arg: str, /) -> None: ...

class Blob:
    """
    A sealed blob: immutable shared memory, exported as a read-only buffer (memoryview(blob), numpy.frombuffer(blob)) without copying.
    """

    @property
    def id(self) -> ObjectID: ...

    @property
    def size(self) -> int: ...

    @property
    def address(self) -> int:
        """The address of the first byte in this process."""

    @property
    def is_empty(self) -> bool: ...

    def __len__(self) -> int: ...

    def __bytes__(self) -> bytes:
        """A copy of the bytes."""

    @property
    def typename(self) -> str: ...

    @property
    def nbytes(self) -> int: ...

    def __repr__(self) -> str: ...

    @staticmethod
    def empty() -> Blob:
        """The empty blob (size 0)."""

class ObjectBuilder:
    """
    What makes one vineyard object (e.g. BlobBuilder): filled in this process, then sealed, after which it cannot change.
    """

    @property
    def issealed(self) -> bool:
        """True once sealed (or dropped)."""

    def seal(self, client: object) -> ObjectID:
        """Makes the object through `client`; returns its ObjectID."""

class BlobBuilder(ObjectBuilder):
    """
    An unsealed blob, writable by its creator (memoryview(builder) is writable) until sealed by seal() or IPCClient.put_object().
    """

    @property
    def id(self) -> ObjectID: ...

    @property
    def size(self) -> int: ...

    @property
    def address(self) -> int: ...

    @property
    def sealed(self) -> bool: ...

    @property
    def writable(self) -> bool:
        """Neither sealed nor aborted: the bytes may still be written."""

    def __len__(self) -> int: ...

    @overload
    def copy(self, offset: int, address: int, size: int, concurrency: int = 0) -> None:
        """
        Copies `size` bytes from the raw address `address` to `offset` (concurrency 0: automatic).
        """

    @overload
    def copy(self, offset: int, data: object, concurrency: int = 0) -> None:
        """Copies a bytes-like object (any C-contiguous buffer) to `offset`."""

    def shrink(self, size: int) -> None:
        """Shrinks the blob before sealing."""

    def abort(self) -> None:
        """Drops the blob (if not sealed)."""

    def seal(self, client: object | None = None) -> Blob:
        """
        Seals the blob and returns it as a read-only Blob (the client, an IPCClient or None, is accepted for compatibility; the builder knows its session).
        """

    def __repr__(self) -> str: ...

class InlineBlob:
    """
    A blob member to be made by the put in progress from byte run `index` of its buffers (vineyard.data.utils.build_buffer).
    """

    def __init__(self, index: int, size: int) -> None: ...

    @property
    def index(self) -> int: ...

    @property
    def size(self) -> int: ...

    def __repr__(self) -> str: ...

class ObjectMeta:
    """
    The metadata of a vineyard object: typename, fields, members, and (from IPCClient.get_object_meta) its mapped blobs.
    """

    def __init__(self, global_: bool = False) -> None: ...

    @property
    def id(self) -> ObjectID: ...

    @id.setter
    def id(self, arg: ObjectID, /) -> None: ...

    @property
    def typename(self) -> str: ...

    @typename.setter
    def typename(self, arg: str, /) -> None: ...

    @property
    def nbytes(self) -> int: ...

    @nbytes.setter
    def nbytes(self, arg: int, /) -> None: ...

    @property
    def signature(self) -> int: ...

    @property
    def instance_id(self) -> int: ...

    @property
    def isglobal(self) -> bool: ...

    @property
    def islocal(self) -> bool:
        """
        True if the object lives on the instance it was read from (not global).
        """

    @property
    def ispersist(self) -> bool: ...

    @property
    def memory_usage(self) -> int:
        """Bytes of the blobs in the tree (mapped size, else the recorded size)."""

    def set_global(self, global_: bool = True) -> None: ...

    def __getitem__(self, key: str) -> object: ...

    def get(self, key: str, default: object | None = None) -> object: ...

    def __setitem__(self, key: str, value: object) -> None: ...

    def __contains__(self, arg: str, /) -> bool: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator:
        """
        Iterates over the keys of the tree (fields, members and standard keys).
        """

    def keys(self) -> list: ...

    def items(self) -> list:
        """(key, value) pairs: field values, and an ObjectMeta per member."""

    def field_names(self) -> list[str]:
        """Plain fields, without members and standard keys (id, typename, ...)."""

    def member_names(self) -> list[str]: ...

    @overload
    def add_member(self, key: str, value: ObjectMeta) -> None: ...

    @overload
    def add_member(self, key: str, value: Blob) -> None: ...

    @overload
    def add_member(self, key: str, value: BlobBuilder) -> None: ...

    @overload
    def add_member(self, key: str, value: ObjectID) -> None: ...

    @overload
    def add_member(self, key: str, value: InlineBlob) -> None: ...

    def add_remote_blob(self, blob: RemoteBlob) -> None:
        """
        Attaches the bytes of a RemoteBlob (fetched or created over RPC) to the blob member of the same id, so that get_buffer and the resolvers read it.
        """

    def add_inline_blob(self, key: str, index: int, size: int) -> None:
        """
        A blob member made by the put from byte run `index` of its `buffers` (sent in the put request when small).
        """

    def add_shared_member(self, key: str, token: str) -> None:
        """
        A member that is the new object marked share(token) elsewhere in the same put: one object, held in several places.
        """

    def share(self, token: str) -> None:
        """
        Marks this new object as the one add_shared_member(key, token) refers to.
        """

    def get_member(self, key: str) -> object:
        """
        The member's ObjectMeta; None if absent; KeyError if `key` is a plain field.
        """

    def member(self, key: str) -> object: ...

    def get_buffer(self, blob_id: ObjectID) -> Blob:
        """The mapped Blob `blob_id` of this tree (after get_object_meta)."""

    def blob_ids(self) -> list[ObjectID]:
        """Every blob id of the tree, depth first, without repeats."""

    def mapped_blobs(self) -> list:
        """
        (id as int, address, size) of every blob of the tree mapped in this process.
        """

    def to_json(self) -> str:
        """The tree as compact JSON text."""

    def to_dict(self) -> object:
        """The tree as nested dicts."""

    def __repr__(self) -> str: ...

    def __str__(self) -> str: ...

    def __copy__(self) -> ObjectMeta: ...

    def __deepcopy__(self, memo: object) -> ObjectMeta: ...

    def __getstate__(self) -> str: ...

    def __setstate__(self, arg: str, /) -> None: ...

class SpillStatus:
    """What vineyardd has spilled to disk (--spill_path)."""

    @property
    def enabled(self) -> bool:
        """Whether --spill_path is set."""

    @property
    def path(self) -> str:
        """The spill directory."""

    @property
    def spilled_bytes(self) -> int:
        """Data bytes on disk now."""

    @property
    def spilled_blobs(self) -> int:
        """Blobs on disk now."""

    @property
    def disk_bytes(self) -> int:
        """Bytes the spill files occupy."""

    @property
    def spills(self) -> int:
        """Blobs written out since start."""

    @property
    def loads(self) -> int:
        """Blobs loaded back since start."""

    @property
    def spill_failures(self) -> int:
        """Spill attempts the disk refused since start."""

class InstanceStatus:
    """Identity, memory and load of the connected vineyardd instance."""

    @property
    def instance_id(self) -> int: ...

    @property
    def deployment(self) -> str: ...

    @property
    def memory_usage(self) -> int: ...

    @property
    def memory_limit(self) -> int: ...

    @property
    def deferred_requests(self) -> int: ...

    @property
    def ipc_connections(self) -> int: ...

    @property
    def rpc_connections(self) -> int: ...

    @property
    def spill(self) -> SpillStatus:
        """Blobs spilled to disk (--spill_path)."""

    def __repr__(self) -> str: ...

    def __str__(self) -> str: ...

class ClientBase:
    """
    What IPC and RPC sessions share: metadata, names, deletion, persistence and the instance's status.
    """

    @property
    def instance_id(self) -> int: ...

    @property
    def ipc_socket(self) -> str: ...

    @property
    def rpc_endpoint(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def whole_tree_put(self) -> bool:
        """
        The server creates a whole tree in one put (inline bytes, new members).
        """

    @property
    def endpoint(self) -> str:
        """What this client dialled: the socket path, or host:port."""

    @property
    def connected(self) -> bool: ...

    def close(self) -> None:
        """Ends the session; later requests raise ConnectionErrorException."""

    @overload
    def create_metadata(self, metadata: list) -> list:
        """Creates several metadata in one request; returns the list."""

    @overload
    def create_metadata(self, metadata: object) -> object:
        """
        Creates the metadata (its members must exist) and fills in its id, signature and instance_id; returns the same ObjectMeta.
        """

    def get_meta(self, object_id: ObjectID, sync_remote: bool = False, wait: bool = False) -> ObjectMeta:
        """The metadata tree (no blobs mapped)."""

    def get_metas(self, object_ids: Sequence[ObjectID], sync_remote: bool = False, wait: bool = False) -> list[ObjectMeta]: ...

    def list_metadatas(self, pattern: str, regex: bool = False, limit: int = 5) -> list[ObjectMeta]:
        """Metadata of objects whose typename matches the glob (or regex)."""

    @overload
    def delete(self, object_ids: Sequence[ObjectID], force: bool = False, deep: bool = True, memory_trim: bool = False) -> None: ...

    @overload
    def delete(self, object_id: ObjectID, force: bool = False, deep: bool = True, memory_trim: bool = False) -> None: ...

    @overload
    def delete(self, object_meta: ObjectMeta, force: bool = False, deep: bool = True, memory_trim: bool = False) -> None: ...

    def exists(self, object_id: ObjectID) -> bool: ...

    @overload
    def persist(self, object_id: ObjectID) -> None: ...

    @overload
    def persist(self, object_meta: ObjectMeta) -> None: ...

    def if_persist(self, object_id: ObjectID) -> bool: ...

    def is_persisted(self, object_id: ObjectID) -> bool: ...

    def shallow_copy(self, object_id: ObjectID, extra_metadata: object | None = None) -> ObjectID:
        """
        A new object sharing the members of `object_id`, with `extra_metadata` fields.
        """

    @overload
    def label(self, object_id: ObjectID, key: str, value: str) -> None: ...

    @overload
    def label(self, object_id: ObjectID, labels: Mapping[str, str]) -> None: ...

    @overload
    def put_name(self, object_id: ObjectID, name: ObjectName) -> None: ...

    @overload
    def put_name(self, object_meta: ObjectMeta, name: ObjectName) -> None: ...

    def get_name(self, name: ObjectName, wait: bool = False) -> ObjectID:
        """
        The id named `name` (ObjectNotExistsException if none); `wait`: block until it appears.
        """

    def drop_name(self, name: ObjectName) -> None: ...

    def list_names(self, pattern: str = '*', regex: bool = False, limit: int = 5) -> dict:
        """{name: ObjectID} of names matching the glob (or regex)."""

    def clear(self) -> None:
        """Deletes every object of the instance."""

    def reset(self) -> None:
        """Alias of clear()."""

    def memory_trim(self) -> bool:
        """Returns unused memory to the kernel; True if any was released."""

    def sync_meta(self) -> None:
        """
        Waits until everything persisted in the cluster before the call is visible through this instance (a read barrier); EtcdError if the cluster is out of reach.
        """

    def migrate(self, object_id: ObjectID) -> ObjectID:
        """
        Copies a remote object's blobs to this instance; returns the local object's id (the same id when it is local already).
        """

    @property
    def status(self) -> InstanceStatus: ...

    @property
    def meta(self) -> dict:
        """Cluster metadata: {instance_id: {field: value}}."""

    def create_stream(self, id: ObjectID) -> None:
        """Makes the object `id` (its metadata created first) a stream."""

    def open_stream(self, id: ObjectID, mode: object) -> None:
        """
        Takes the read ('r') or write ('w') side of a stream: one reader and one writer at a time (StreamOpenedException otherwise).
        """

    def push_chunk(self, stream_id: ObjectID, chunk: ObjectID) -> None:
        """
        Queues the existing object `chunk` on the stream (deleted once read past).
        """

    def next_chunk_id(self, stream_id: ObjectID) -> ObjectID:
        """
        The next chunk's id, waiting for one; StreamDrainedException after the last, StreamFailedException when the stream failed.
        """

    def stop_stream(self, stream_id: ObjectID, failed: bool) -> None:
        """
        Ends the stream: its reader drains what is queued (or fails, with failed=True).
        """

    def drop_stream(self, stream_id: ObjectID) -> None:
        """Fails the stream and frees its queued chunks."""

    def evict(self, object_ids: Sequence[ObjectID]) -> None:
        """
        Spills these objects' blobs to disk now (vineyardd --spill_path). Raises if one is in use by a client or pinned, or spilling is off; nothing is spilled then.
        """

    def load(self, object_ids: Sequence[ObjectID], pin: bool = False) -> None:
        """
        Loads these objects' spilled blobs back into memory; pin: they stay there until unpin.
        """

    def unpin(self, object_ids: Sequence[ObjectID]) -> None:
        """Lets pinned objects be spilled again."""

    def is_spilled(self, object_id: ObjectID) -> bool:
        """Whether any of the object's blobs is on disk."""

    def is_in_use(self, object_id: ObjectID) -> bool:
        """Whether a client maps or references any of the object's blobs."""

class IPCClient(ClientBase):
    """
    A session with vineyardd over its UNIX socket (make one with connect_ipc). Thread-safe: requests are serialised.
    """

    @property
    def is_ipc(self) -> bool: ...

    @property
    def is_rpc(self) -> bool: ...

    def __repr__(self) -> str: ...

    @overload
    def create_blob(self, size: int) -> BlobBuilder:
        """Allocates an unsealed blob of `size` bytes."""

    @overload
    def create_blob(self, sizes: Sequence[int]) -> list:
        """Allocates one unsealed blob per size, in one request."""

    def create_empty_blob(self) -> Blob: ...

    def get_blob(self, object_id: ObjectID, unsafe: bool = False) -> Blob:
        """The sealed blob, mapped read-only (`unsafe`: unsealed ones too)."""

    def get_blobs(self, object_ids: Sequence[ObjectID], unsafe: bool = False) -> list[Blob]: ...

    def put_object(self, meta: ObjectMeta, builders: list = [], persist: bool = False, name: str | None = None, buffers: list = []) -> ObjectID:
        """
        Seals `builders`, makes blobs of the byte runs `buffers` that the tree names (add_inline_blob), creates `meta` with its new members (filling in its id), and optionally persists and names it: one round trip (two when a run is large). Returns the ObjectID.
        """

    def put_tree(self, meta: ObjectMeta, builders: list = [], persist: bool = False, name: str | None = None, buffers: list = []) -> tuple[ObjectID, list[ObjectID]]:
        """
        put_object(), returning (id, [ids of the blobs and new members it made]).
        """

    def get_object_meta(self, object_id: ObjectID) -> ObjectMeta:
        """
        The metadata with every local blob of the tree mapped (meta.get_buffer(id)): one round trip.
        """

    def get_object_metas(self, object_ids: Sequence[ObjectID]) -> list[ObjectMeta]: ...

    def new_buffer_chunk(self, stream: ObjectID, size: int) -> object:
        """
        The writer's next chunk: a writable memoryview of `size` bytes, queued for the reader at the next call or at stop_stream; waits while the stream's chunks in flight exceed the server's --stream_threshold.
        """

    def next_buffer_chunk(self, stream: ObjectID) -> object:
        """
        The reader's next chunk of a byte stream: a read-only memoryview (zero copy).
        """

    def put_ndarray(self, array: object, persist: bool = False, name: str | None = None) -> object:
        """
        Puts a C-contiguous numeric numpy array as vineyard::Tensor<T> in one call (a small one in one round trip); None when the array needs the Python builder.
        """

    def get_fast(self, object_id: ObjectID) -> object:
        """
        (meta, array, blob): the object's metadata in one round trip and, for a C-ordered numeric tensor, its zero-copy read-only array (else None).
        """

    def put_arrow(self, stream: object, schema_binary: str, schema_nbytes: int, as_batch: bool = False, persist: bool = False, name: str | None = None, fields: str = '{}') -> object:
        """
        Puts the batches of an Arrow C stream capsule (Table.__arrow_c_stream__()) as a vineyard::Table (or, `as_batch`, its one RecordBatch) in one whole-tree put: (id, [ids of the blobs and members made with it]), with `fields` (JSON text of an object) added to its root; None, with nothing made, when a column's type is not a numeric, bool, string or binary one.
        """

    def blob_arena(self, max_bytes: int = 0) -> BlobArena:
        """
        A BlobArena of this session (a put_arrow of this session claims its blobs); allocations past `max_bytes` held at once (0: no bound) are refused.
        """

    def flush_releases(self) -> None:
        """Gives back blob references released locally but not yet sent."""

def connect_ipc(socket: str = '', username: str = '', password: str = '') -> IPCClient:
    """
    Connects to vineyardd at `socket` (empty: $VINEYARD_IPC_SOCKET). ConnectionFailedException if nobody answers there.
    """

def encode_str_array(array: object) -> object:
    """
    A 1-d numpy object array of str/None as the buffers of an Arrow large_string array: (validity bytes or None, int64 offsets, UTF-8 data, null count); None when an element is neither str nor None.
    """

def encode_str_array_into(array: object, client: object) -> object:
    """
    encode_str_array() written straight into new blobs of an IPC client: (validity BlobBuilder or None, offsets BlobBuilder, data BlobBuilder, null count), unsealed; None when an element is neither str nor None, the array is small or all empty, or it changed meanwhile.
    """

def arrow_stream(meta: ObjectMeta, schema: object) -> object:
    """
    An Arrow C stream capsule over the batches of a got vineyard::Table or vineyard::RecordBatch (zero-copy), with `schema` (an 'arrow_schema' capsule, taken over); None when a column is not one it reads.
    """

class BlobArena:
    """
    Shared memory for another allocator: each allocation an unsealed blob of this client. A put of a pyarrow Table or RecordBatch whose buffers start such blobs seals them into the object instead of copying (vineyard._arrow_pool makes an Arrow memory pool of it).
    """

    def capsule(self) -> CapsuleType:
        """
        The arena's functions for a module that does not link the client (a PyCapsule named 'vineyard.blob_arena'; it keeps the arena alive).
        """

    @property
    def live(self) -> int:
        """Allocations not yet freed (sealed into objects or not)."""

    @property
    def live_bytes(self) -> int:
        """Their bytes."""

class RemoteBlob(Blob):
    """
    A blob fetched over TCP into this process: a read-only buffer (memoryview, numpy.frombuffer) like Blob.
    """

    @property
    def instance_id(self) -> int:
        """The instance the blob lives on."""

    def __repr__(self) -> str: ...

class RemoteBlobBuilder:
    """
    The bytes of a blob to create over TCP, built in this process (memoryview(builder) is writable), then sent by RPCClient.create_remote_blob.
    """

    def __init__(self, size: int) -> None: ...

    @overload
    @staticmethod
    def wrap(data: int, size: int) -> RemoteBlobBuilder:
        """
        A builder over `size` bytes at the raw address `data`, without copying them: they must stay alive until the builder is sent.
        """

    @overload
    @staticmethod
    def wrap(data: object, size: int | None = None) -> RemoteBlobBuilder:
        """
        A builder over the memory of a bytes-like object (its first `size` bytes; all by default), without copying it; the builder keeps it alive. Writable through the builder only if the object is.
        """

    @property
    def size(self) -> int: ...

    @property
    def writable(self) -> bool:
        """False when it wraps read-only bytes."""

    @property
    def address(self) -> int: ...

    @property
    def aborted(self) -> bool: ...

    def __len__(self) -> int: ...

    @overload
    def copy(self, offset: int, address: int, size: int, concurrency: int = 0) -> None:
        """Copies `size` bytes from the raw address `address` to `offset`."""

    @overload
    def copy(self, offset: int, data: object, concurrency: int = 0) -> None:
        """Copies a bytes-like object (any C-contiguous buffer) to `offset`."""

    def abort(self) -> None:
        """Frees the bytes; the builder cannot be sent."""

    def __repr__(self) -> str: ...

class RPCClient(ClientBase):
    """
    A session with vineyardd over TCP (make one with connect_rpc). Thread-safe: requests are serialised.
    """

    @property
    def is_ipc(self) -> bool: ...

    @property
    def is_rpc(self) -> bool: ...

    @property
    def remote_instance_id(self) -> int:
        """The instance id of the connected vineyardd."""

    @property
    def compression(self) -> bool:
        """zstd on the wire for blob bytes (only if the server offers it)."""

    @compression.setter
    def compression(self, arg: bool, /) -> None: ...

    def is_fetchable(self, meta: ObjectMeta) -> bool:
        """True if the object's blobs live on the connected instance."""

    def __repr__(self) -> str: ...

    @overload
    def create_remote_blob(self, blob_builder: RemoteBlobBuilder) -> ObjectMeta:
        """
        Sends the builder's bytes; returns the new blob's ObjectMeta (use it as a member).
        """

    @overload
    def create_remote_blob(self, blob_builders: list) -> list[ObjectMeta]:
        """Sends several builders in one request."""

    def create_remote_blobs_from(self, buffers: list) -> list[ObjectMeta]:
        """
        Creates one blob per bytes-like object, sending the bytes without copying them first; returns the blobs' ObjectMeta.
        """

    def get_remote_blob(self, object_id: ObjectID, unsafe: bool = False) -> RemoteBlob:
        """Fetches the blob's bytes into this process."""

    def get_remote_blobs(self, object_ids: Sequence[ObjectID], unsafe: bool = False) -> list[RemoteBlob]:
        """Fetches several blobs in one request."""

    def put_object(self, meta: ObjectMeta, builders: list = [], persist: bool = False, name: str | None = None) -> ObjectID:
        """
        Creates `meta` (filling in its id), and optionally persists and names it: one round trip. Returns the ObjectID.
        """

    def get_object_meta(self, object_id: ObjectID) -> ObjectMeta:
        """
        The metadata with every blob of the tree fetched (meta.get_buffer(id)).
        """

    def get_object_metas(self, object_ids: Sequence[ObjectID]) -> list[ObjectMeta]: ...

def connect_rpc(host: str, port: int, username: str = '', password: str = '', tls_ca: str = '') -> RPCClient:
    """
    Connects to the RPC endpoint host:port. ConnectionFailedException names it if nobody answers there. tls_ca: speak TLS, trusting the CA certificates of this PEM file ('system': the system store; empty: $VINEYARD_RPC_TLS_CA, else plain TCP).
    """
