"""vineyard.llm: a KV cache for LLM serving, shared by the processes of a host.

    from vineyard.llm import KVCache, KVTensor, VineyardCacheConfig

    cache = KVCache(VineyardCacheConfig(socket="/var/run/vineyard.sock", block_size=16),
                    tensor_nbytes=k.nbytes, cache_capacity=1 << 20, layer=32)
    cache.update(None, tokens, kv_cache_list)        # kv_cache_list[i][j] = (K, V)
    matched = cache.query(None, tokens, kv_cache_list)

See docs/llm.md.
"""

from vineyard.llm.cache import FileCacheConfig
from vineyard.llm.cache import FilesystemType
from vineyard.llm.cache import KVCache
from vineyard.llm.cache import KVTensor
from vineyard.llm.cache import VineyardCacheConfig

__all__ = [
    "FileCacheConfig",
    "FilesystemType",
    "KVCache",
    "KVTensor",
    "VineyardCacheConfig",
]
