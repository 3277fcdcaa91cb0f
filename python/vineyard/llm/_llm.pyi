"""
Native layer of vineyard.llm: the KV cache over shared memory and files.
"""



class KVTensor:
    """
    A K or V tensor of one token at one layer: an address and a size (a buffer: numpy.frombuffer(t, dtype) reads it).
    """

    def __init__(self, data: int, length: int) -> None: ...

    @property
    def data(self) -> int: ...

    @data.setter
    def data(self, arg: int, /) -> None: ...

    @property
    def length(self) -> int: ...

    @length.setter
    def length(self, arg: int, /) -> None: ...

    @property
    def address(self) -> int: ...

    @property
    def nbytes(self) -> int: ...

    @property
    def cached(self) -> bool:
        """
        True when it points into the cache (read-only, kept alive by this object).
        """

    def __repr__(self) -> str: ...

class KVCacheCore:
    def __init__(self, *, tensor_nbytes: int, cache_capacity: int, layer: int, shared_memory: bool = False, socket: str = '', block_size: int = 16, llm_cache_object_name: str = 'llm_cache_object', filesystem: bool = False, chunk_size: int = 16, root: str = '', hash_chunk_size: int = 2, gc_interval: int = 1800, ttl: int = 1800) -> None: ...

    def update(self, prefix: object | None, tokens: object, kv_cache_list: object) -> int: ...

    def query(self, prefix: object | None, tokens: object, kv_cache_list: object) -> int: ...

    def close(self) -> None: ...

    @property
    def index_name(self) -> str: ...

    @property
    def block_size(self) -> int: ...

    def collect_garbage(self, min_orphan_age: int = 60) -> int: ...
