"""The vineyard.llm API (as in vineyard 0.24) over the native KV cache (_llm)."""

import enum
import logging
import os
from typing import List
from typing import Optional
from typing import Sequence
from typing import Tuple
from typing import Union

from vineyard.llm._llm import KVCacheCore
from vineyard.llm._llm import KVTensor

logger = logging.getLogger("vineyard")

_SHM_ENV = "VINEYARD_LLM_CACHE_SHARED_MEMORY"
_FS_ENV = "VINEYARD_LLM_CACHE_FILESYSTEM"


class FilesystemType(enum.IntEnum):
    """Where FileCacheConfig's chunks live: LOCAL is a directory of this host (or one
    shared by several hosts); VINEYARD keeps them in vineyardd (the `socket` of the
    FileCacheConfig), as blocks of `chunk_size` tokens that every process of the host sees,
    and other hosts of its cluster find (fetched over RPC), named after `root`."""

    LOCAL = 0
    VINEYARD = 1


class VineyardCacheConfig:
    """The shared-memory tier: blocks in vineyardd's memory, indexed for every
    process of the host.

    `sync_interval`, `llm_cache_sync_lock` and `llm_ref_cnt_object_name` are
    accepted for compatibility and unused: a block is visible to every process
    as soon as it is written, with no periodic synchronisation.
    `llm_cache_object_name` names the cache: caches with different names on one
    server are independent.
    """

    def __init__(
        self,
        socket: str,
        block_size: int = 5,
        sync_interval: int = 3,
        llm_cache_sync_lock: str = "llmCacheSyncLock",
        llm_cache_object_name: str = "llm_cache_object",
        llm_ref_cnt_object_name: str = "llm_refcnt_object",
    ):
        self.socket = socket
        self.block_size = block_size
        self.sync_interval = sync_interval
        self.llm_cache_sync_lock = llm_cache_sync_lock
        self.llm_cache_object_name = llm_cache_object_name
        self.llm_ref_cnt_object_name = llm_ref_cnt_object_name

    def __repr__(self):
        return (
            f"VineyardCacheConfig(socket={self.socket!r}, block_size={self.block_size}, "
            f"sync_interval={self.sync_interval}, "
            f"llm_cache_object_name={self.llm_cache_object_name!r})"
        )


class FileCacheConfig:
    """The file tier: chunks of `chunk_size` tokens as files under `root`, named
    by the hash of their prefix in `hash_chunk_size` levels of directories,
    removed after `ttl` seconds unused (checked every `gc_interval` seconds).

    With `filesystem_type=FilesystemType.VINEYARD` the chunks are kept in the vineyardd
    of `socket` (or $VINEYARD_IPC_SOCKET) instead of files: the shared-memory store with
    blocks of `chunk_size` tokens, one cache per `root`, prefixes still whole chunks.
    The global-GC arguments, `rpc_endpoint` and `rdma_endpoint` are accepted for
    compatibility (the cluster finds other hosts' chunks without them).
    """

    def __init__(
        self,
        chunk_size: int = 16,
        hash_chunk_size: int = 2,
        root: str = "/tmp/vineyard/llm_cache",
        filesystem_type: FilesystemType = FilesystemType.LOCAL,
        gc_interval: int = 30 * 60,
        ttl: int = 30 * 60,
        enable_global_gc: bool = False,
        global_gc_interval: int = 3 * 60 * 60,
        global_ttl: int = 3 * 60 * 60,
        socket: str = "",
        rpc_endpoint: str = "",
        rdma_endpoint: str = "",
    ):
        self.chunk_size = chunk_size
        self.hash_chunk_size = hash_chunk_size
        self.root = root
        self.filesystem_type = filesystem_type
        self.gc_interval = gc_interval
        self.ttl = ttl
        self.enable_global_gc = enable_global_gc
        self.global_gc_interval = global_gc_interval
        self.global_ttl = global_ttl
        self.socket = socket
        self.rpc_endpoint = rpc_endpoint
        self.rdma_endpoint = rdma_endpoint

    def __repr__(self):
        return (
            f"FileCacheConfig(chunk_size={self.chunk_size}, "
            f"hash_chunk_size={self.hash_chunk_size}, root={self.root!r}, "
            f"filesystem_type={self.filesystem_type!r}, gc_interval={self.gc_interval}, "
            f"ttl={self.ttl})"
        )


def _from_env(prefix: str, fields):
    config = {}
    for name, kind in fields:
        value = os.environ.get(f"{prefix}_{name.upper()}")
        if value is not None:
            config[name] = kind(value)
    return config


def _configs_from_env():
    configs = []
    if _SHM_ENV in os.environ or f"{_SHM_ENV}_SOCKET" in os.environ:
        config = _from_env(
            _SHM_ENV, [("socket", str), ("block_size", int), ("sync_interval", int)]
        )
        config.setdefault("socket", os.environ.get("VINEYARD_IPC_SOCKET", ""))
        configs.append(VineyardCacheConfig(**config))
    if _FS_ENV in os.environ or f"{_FS_ENV}_ROOT" in os.environ:
        config = _from_env(
            _FS_ENV,
            [
                ("chunk_size", int),
                ("hash_chunk_size", int),
                ("root", str),
                ("gc_interval", int),
                ("ttl", int),
            ],
        )
        configs.append(FileCacheConfig(**config))
    return configs


KVCacheList = List[List[Tuple[KVTensor, KVTensor]]]


class KVCache:  # pylint: disable=too-many-instance-attributes
    """The KV cache: `update` stores the K and V tensors of tokens, `query`
    finds how many tokens of a sequence are cached and hands them back.

    `cache_config` is a VineyardCacheConfig (shared memory), a FileCacheConfig
    (files), or a list of both (shared memory first, then files: blocks evicted
    from memory are written to files and read back on a hit). None reads the
    VINEYARD_LLM_CACHE_SHARED_MEMORY_* / VINEYARD_LLM_CACHE_FILESYSTEM_*
    environment variables (both set: both tiers).

    `tensor_nbytes` is the size of one K (or V) tensor of one token at one
    layer; `cache_capacity` the number of tokens the shared memory holds
    (least recently used blocks are evicted beyond it); `layer` the number of
    layers. With `rank` and `world_size`, files go to root/<world_size>-<rank>.
    """

    def __init__(
        self,
        cache_config: Optional[
            Union[VineyardCacheConfig, FileCacheConfig, Sequence[object]]
        ] = None,
        tensor_nbytes: int = 1024,
        cache_capacity: int = 1024,
        layer: int = 1,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
        **kwargs,
    ):
        self.kv_cache_manager = None
        if cache_config is None:
            configs = _configs_from_env()
        elif isinstance(cache_config, (list, tuple)):
            configs = list(cache_config)
        else:
            configs = [cache_config]
        if not configs or not all(
            isinstance(c, (VineyardCacheConfig, FileCacheConfig)) for c in configs
        ):
            raise ValueError(
                "The cache_config should be VineyardCacheConfig or FileCacheConfig."
            )
        memory = [c for c in configs if isinstance(c, VineyardCacheConfig)]
        files = [c for c in configs if isinstance(c, FileCacheConfig)]
        if len(memory) > 1 or len(files) > 1:
            raise ValueError("at most one VineyardCacheConfig and one FileCacheConfig")
        for name, value in (
            ("tensor_nbytes", tensor_nbytes),
            ("cache_capacity", cache_capacity),
            ("layer", layer),
        ):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")

        options = dict(tensor_nbytes=tensor_nbytes, cache_capacity=cache_capacity, layer=layer)
        if memory:
            m = memory[0]
            options.update(
                shared_memory=True,
                socket=m.socket,
                block_size=m.block_size,
                llm_cache_object_name=m.llm_cache_object_name,
            )
        self._chunk_size = 0  # > 0: prefixes must be whole chunks of it (checked here)
        if files:
            f = files[0]
            root = f.root
            if rank is not None and world_size is not None:
                root = os.path.join(root, f"{world_size}-{rank}")
            if f.filesystem_type not in (FilesystemType.LOCAL, FilesystemType.VINEYARD):
                raise ValueError(f"unknown filesystem_type {f.filesystem_type!r}: use "
                                 "FilesystemType.LOCAL or FilesystemType.VINEYARD")
        if files and f.filesystem_type == FilesystemType.VINEYARD:
            if memory:
                raise ValueError("a FileCacheConfig with FilesystemType.VINEYARD keeps its "
                                 "chunks in vineyardd already: give it or a "
                                 "VineyardCacheConfig, not both")
            socket = f.socket or os.environ.get("VINEYARD_IPC_SOCKET", "")
            if not socket:
                raise ValueError("FilesystemType.VINEYARD keeps the chunks in vineyardd: give "
                                 "FileCacheConfig(socket=...) or set VINEYARD_IPC_SOCKET")
            options.update(shared_memory=True, socket=socket, block_size=f.chunk_size,
                           llm_cache_object_name=f"llm_cache_files:{root}")
            self._chunk_size = f.chunk_size
        elif files:
            options.update(
                filesystem=True,
                chunk_size=f.chunk_size,
                root=root,
                hash_chunk_size=f.hash_chunk_size,
                gc_interval=f.gc_interval,
                ttl=f.ttl,
            )
        self.cache_config = configs[0] if len(configs) == 1 else configs
        self.tensor_nbytes = tensor_nbytes
        self.cache_capacity = cache_capacity
        self.layer = layer
        logger.info("vineyard llm cache: %r", self.cache_config)
        self.kv_cache_manager = KVCacheCore(**options)
        self.chunk_size = self.kv_cache_manager.block_size

    def __repr__(self):
        return (
            f"KVCache(cache_config={self.cache_config!r}, "
            f"tensor_nbytes={self.tensor_nbytes}, cache_capacity={self.cache_capacity}, "
            f"layer={self.layer})"
        )

    def update(
        self, prefix: Optional[List[int]], tokens: List[int], kv_cache_list: KVCacheList
    ) -> int:
        """Stores kv_cache_list[i][j] = (K, V) of tokens[i] at layer j, after
        `prefix` (whose tensors must be cached already; for the file tier its
        length must be a multiple of the chunk size). Returns how many tokens
        of `tokens` are cached afterwards."""
        if self._chunk_size and prefix and len(prefix) % self._chunk_size:
            raise ValueError(f"the prefix has {len(prefix)} tokens; the file cache needs a "
                             f"multiple of chunk_size ({self._chunk_size})")
        return self.kv_cache_manager.update(prefix or [], tokens, kv_cache_list)

    def query(
        self, prefix: Optional[List[int]], tokens: List[int], kv_cache_list: KVCacheList
    ) -> int:
        """Returns how many tokens of `tokens`, after `prefix`, are cached, and
        fills kv_cache_list[i] for them: a KVTensor(0, 0) is pointed at the
        cached bytes (read-only, no copy; the KVTensor keeps them alive), any
        other KVTensor is a buffer of tensor_nbytes the bytes are copied into."""
        return self.kv_cache_manager.query(prefix or [], tokens, kv_cache_list)

    def batched_update(self, tokens: List[int], kv_cache_list: KVCacheList) -> int:
        """update(None, tokens, kv_cache_list): every call is batched already."""
        return self.kv_cache_manager.update([], tokens, kv_cache_list)

    def batched_query(self, tokens: List[int], kv_cache_list: KVCacheList) -> int:
        """query(None, tokens, kv_cache_list)."""
        return self.kv_cache_manager.query([], tokens, kv_cache_list)

    @property
    def index_name(self) -> str:
        """The shared-memory segment of the host-wide index ("" without it)."""
        return self.kv_cache_manager.index_name

    def collect_garbage(self, min_orphan_age: int = 60) -> int:
        """Removes now the file tier's chunks unused for `ttl` seconds, and the
        shared-memory blocks (older than `min_orphan_age` seconds) that writers
        killed mid-update left outside the index. Returns how many went."""
        return self.kv_cache_manager.collect_garbage(min_orphan_age)

    def close(self):
        if self.kv_cache_manager is not None:
            self.kv_cache_manager.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # pylint: disable=broad-except
            pass
