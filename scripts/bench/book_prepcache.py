"""Baseline: the book's `prepcache` (p2ch12 LunaPrepCacheApp), timed.

A DataLoader over the series-sorted LunaDataset with the book's batch size
(1024) and `--workers` processes; each `__getitem__` computes the crop through
the diskcache-memoized function, which stores it (see book_luna.py). Prints
one JSON line: candidates, seconds, bytes on disk, CT loads.

    python scripts/bench/book_prepcache.py DATA_DIR CACHE_DIR [--workers 2] [--batch-size 1024]
"""

import argparse
import json
import os
import sys
import time

from torch.utils.data import DataLoader

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import book_luna  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("cache")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=1024)
    args = ap.parse_args()
    if os.path.exists(args.cache) and os.listdir(args.cache):
        sys.exit(f"{args.cache} is not empty: the baseline must fill a fresh cache")

    book_luna.configure(args.data, args.cache)
    start = time.perf_counter()
    dataset = book_luna.LunaDataset(sort_by_series=True)
    loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers)
    done = 0
    for candidates, *_ in loader:
        done += len(candidates)
    seconds = time.perf_counter() - start
    book_luna.close()
    print(
        json.dumps(
            dict(
                candidates=done,
                seconds=seconds,
                disk_bytes=book_luna.cache_dir_bytes(args.cache),
                workers=args.workers,
                batch_size=args.batch_size,
            )
        )
    )


if __name__ == "__main__":
    main()
