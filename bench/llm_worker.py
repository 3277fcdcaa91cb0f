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
    ap.add_argument("--cache-per-prompt", action="store_true",
                    help="a new cache (llm_cache_object_name) for each prompt length")
    args = ap.parse_args()

    from vineyard.llm import FileCacheConfig, KVCache, KVTensor, VineyardCacheConfig

    L, T = args.layers, args.tensor_nbytes
    token_bytes = L * 2 * T
    def make_cache(name):
        if args.root:
            config = FileCacheConfig(chunk_size=args.block_size, hash_chunk_size=2,
                                     root=args.root)
        else:
            config = VineyardCacheConfig(socket=args.socket, block_size=args.block_size,
                                         llm_cache_object_name=name)
        return KVCache(config, tensor_nbytes=T, cache_capacity=args.capacity, layer=L)

    cache = make_cache("llm_cache_object")
    lengths = [int(x) for x in args.prompts.split(",")]
    rng = np.random.default_rng(7)
    out = {"prompts": [], "lookup": []}

    def kv_list(buf, n):
        base = buf.ctypes.data
        return [[(KVTensor(base + ((i * L + j) * 2) * T, T),
                  KVTensor(base + ((i * L + j) * 2 + 1) * T, T)) for j in range(L)]
                for i in range(n)]

    # Two buffers of the largest prompt, reused: a prompt's tensors, and the
    # caller's buffers a query copies into (also the memcpy's destination).
    most = max(lengths) * token_bytes
    src_all = np.empty(most, np.uint8)
    dst_all = np.ones(most, np.uint8)

    def randomize(view):
        step = 256 << 20
        for at in range(0, view.size, step):
            part = view[at:at + step]
            part[:] = rng.integers(0, 255, size=part.size, dtype=np.uint8)

    def one_prompt(n, next_token):
        nonlocal cache
        if args.cache_per_prompt:
            cache = make_cache(f"llm_cache_object_{n}")
        half = n // 2
        src, dst = src_all[:n * token_bytes], dst_all[:n * token_bytes]
        randomize(src)
        kv = kv_list(src, n)
        shared = list(range(next_token, next_token + half))
        next_token += half
        timings = []
        for second in (False, True):  # two prompts sharing their first half (and its tensors)
            if second:
                randomize(src[half * token_bytes:])
            tokens = shared + list(range(next_token, next_token + n - half))
            next_token += n - half
            t0 = time.perf_counter()
            updated = cache.update(None, tokens, kv)
            timings.append((time.perf_counter() - t0, updated))
        # query the second prompt into caller buffers (a copy), twice: the first
        # query also maps the server's pages into this process (page faults).
        # The published shared-memory backend only hands back its own memory.
        dst.fill(1)
        dkv = kv_list(dst, n)
        cold_s = query_s = None
        matched, correct, error = 0, False, None
        try:
            t0 = time.perf_counter()
            cache.query(None, tokens, dkv)
            cold_s = time.perf_counter() - t0
            dst.fill(1)
            t0 = time.perf_counter()
            matched = cache.query(None, tokens, dkv)
            query_s = time.perf_counter() - t0
            correct = bool(matched == n and np.array_equal(dst, src))
        except Exception as e:  # noqa: BLE001
            error = str(e).splitlines()[0][:200]
        zero_s, zmatched = 0.0, 0
        if not args.root:
            zero_s = float("inf")
            for _ in range(3):  # the best of 3, as one sample of a short call is noisy
                zkv = [[(KVTensor(0, 0), KVTensor(0, 0)) for _ in range(L)] for _ in range(n)]
                t0 = time.perf_counter()
                zmatched = cache.query(None, tokens, zkv)
                zero_s = min(zero_s, time.perf_counter() - t0)
            if error is not None:  # check the bytes through the views instead
                dst.fill(1)
                for i in range(zmatched):
                    for j in range(L):
                        for side in range(2):
                            at = ((i * L + j) * 2 + side) * T
                            dst[at:at + T] = np.frombuffer(zkv[i][j][side], np.uint8)
                correct = bool(zmatched == n and np.array_equal(dst, src))
            del zkv
        t0 = time.perf_counter()
        np.copyto(dst, src)
        memcpy_s = time.perf_counter() - t0
        out["prompts"].append({
            "tokens": n, "bytes": n * token_bytes,
            "update_new_s": timings[0][0], "update_new_tokens": timings[0][1],
            "update_half_shared_s": timings[1][0], "update_half_shared_tokens": timings[1][1],
            "query_copy_s": query_s, "query_copy_cold_s": cold_s, "query_matched": matched,
            "query_copy_error": error, "query_correct": correct, "query_zero_copy_s": zero_s,
            "query_zero_copy_matched": zmatched, "memcpy_s": memcpy_s,
        })
        del kv, dkv
        return next_token

    next_token = 1
    for n in lengths:
        try:
            next_token = one_prompt(n, next_token)
        except Exception as e:  # noqa: BLE001 (e.g. the server is full)
            out["prompts"].append({"tokens": n, "error": str(e).splitlines()[0][:200]})
            next_token += 2 * n

    # lookup latency against prefix length: the prompt of the longest length is
    # cached; query the block after a prefix of p tokens (matches are whole blocks)
    n = lengths[-1]
    if args.cache_per_prompt:
        cache = make_cache("llm_cache_object_lookup")
    tokens = list(range(next_token, next_token + n))
    src = src_all[:n * token_bytes]
    randomize(src)
    cache.update(None, tokens, kv_list(src, n))
    B = args.block_size
    one = dst_all[:B * token_bytes]
    copies = all(p.get("query_copy_error") is None for p in out["prompts"])
    out["lookup_copies"] = copies
    for p in sorted({0, 256, 1024, n // 2, n - B}):
        if p + B > n:
            continue
        samples = []
        try:
            for _ in range(20):
                kv = kv_list(one, B) if copies else [[(KVTensor(0, 0), KVTensor(0, 0))
                                                       for _ in range(L)] for _ in range(B)]
                t0 = time.perf_counter()
                m = cache.query(tokens[:p] or None, tokens[p:p + B], kv)
                samples.append(time.perf_counter() - t0)
        except Exception as e:  # noqa: BLE001
            out["lookup_error"] = str(e).splitlines()[0][:200]
            break
        samples.sort()
        out["lookup"].append({"prefix": p, "p50_us": samples[len(samples) // 2] * 1e6,
                              "matched": m})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
