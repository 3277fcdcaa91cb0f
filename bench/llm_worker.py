"""One side of the KV cache benchmark (bench/llm_section.py): runs the workload
against the vineyard.llm importable in this interpreter (ours, or the published
vineyard-llm 0.24.2) and the vineyardd at --socket, and prints JSON.

Uses the vineyard 0.24 API only, so the same file runs under both.
"""
import argparse
import json
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket")
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--tensor-nbytes", type=int, default=8192)
    ap.add_argument("--block-size", type=int, default=16)
    ap.add_argument("--prompts", default="1024,2048,4096,8192")
    ap.add_argument("--capacity", type=int, default=1 << 16)
    ap.add_argument("--root", help="the file backend in this directory (no --socket needed)")
    args = ap.parse_args()

    from vineyard.llm import FileCacheConfig, KVCache, KVTensor, VineyardCacheConfig

    L, T = args.layers, args.tensor_nbytes
    token_bytes = L * 2 * T
    if args.root:
        config = FileCacheConfig(chunk_size=args.block_size, hash_chunk_size=2, root=args.root)
    else:
        config = VineyardCacheConfig(socket=args.socket, block_size=args.block_size)
    cache = KVCache(config, tensor_nbytes=T, cache_capacity=args.capacity, layer=L)
    lengths = [int(x) for x in args.prompts.split(",")]
    rng = np.random.default_rng(7)
    out = {"prompts": [], "lookup": []}

    def kv_list(buf, n):
        base = buf.ctypes.data
        return [[(KVTensor(base + ((i * L + j) * 2) * T, T),
                  KVTensor(base + ((i * L + j) * 2 + 1) * T, T)) for j in range(L)]
                for i in range(n)]

    next_token = 1
    for n in lengths:
        shared = list(range(next_token, next_token + n // 2))
        next_token += n // 2
        pair = []
        shared_bytes = rng.integers(0, 255, size=(n // 2) * token_bytes, dtype=np.uint8)
        for _ in range(2):  # two prompts sharing their first half (and its tensors)
            tokens = shared + list(range(next_token, next_token + n - n // 2))
            next_token += n - n // 2
            src = rng.integers(0, 255, size=n * token_bytes, dtype=np.uint8)
            src[:shared_bytes.size] = shared_bytes
            kv = kv_list(src, n)
            t0 = time.perf_counter()
            updated = cache.update(None, tokens, kv)
            pair.append((time.perf_counter() - t0, updated, tokens, src))
        # query the second prompt into caller buffers (a copy), twice: the first
        # query also maps the server's pages into this process (page faults)
        _, _, tokens, src = pair[1]
        dst = np.ones_like(src)  # touched: the caller's buffers exist already
        kv = kv_list(dst, n)
        t0 = time.perf_counter()
        cache.query(None, tokens, kv)
        cold_s = time.perf_counter() - t0
        dst.fill(1)
        t0 = time.perf_counter()
        matched = cache.query(None, tokens, kv)
        query_s = time.perf_counter() - t0
        correct = bool(matched == n and np.array_equal(dst, src))
        zero_s, zmatched = 0.0, 0
        if not args.root:
            zkv = [[(KVTensor(0, 0), KVTensor(0, 0)) for _ in range(L)] for _ in range(n)]
            t0 = time.perf_counter()
            zmatched = cache.query(None, tokens, zkv)
            zero_s = time.perf_counter() - t0
            del zkv
        copy = np.ones_like(src)
        t0 = time.perf_counter()
        np.copyto(copy, src)
        memcpy_s = time.perf_counter() - t0
        out["prompts"].append({
            "tokens": n, "bytes": n * token_bytes,
            "update_new_s": pair[0][0], "update_new_tokens": pair[0][1],
            "update_half_shared_s": pair[1][0], "update_half_shared_tokens": pair[1][1],
            "query_copy_s": query_s, "query_copy_cold_s": cold_s, "query_matched": matched, "query_correct": correct,
            "query_zero_copy_s": zero_s, "query_zero_copy_matched": zmatched,
            "memcpy_s": memcpy_s,
        })
        del pair, src, dst, copy

    # lookup latency against prefix length: the prompt of the longest length is
    # cached; query the block after a prefix of p tokens (matches are whole blocks)
    n = lengths[-1]
    tokens = list(range(next_token, next_token + n))
    src = rng.integers(0, 255, size=n * token_bytes, dtype=np.uint8)
    cache.update(None, tokens, kv_list(src, n))
    B = args.block_size
    one = np.empty(B * token_bytes, np.uint8)
    for p in sorted({0, 256, 1024, n // 2, n - B}):
        if p + B > n:
            continue
        samples = []
        for _ in range(20):
            kv = kv_list(one, B)
            t0 = time.perf_counter()
            m = cache.query(tokens[:p], tokens[p:p + B], kv)
            samples.append(time.perf_counter() - t0)
        samples.sort()
        out["lookup"].append({"prefix": p, "p50_us": samples[len(samples) // 2] * 1e6,
                              "matched": m})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
