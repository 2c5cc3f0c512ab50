"""Baseline: the book's training-time data loading, timed.

A DataLoader over LunaDataset (balanced, ratio 1; all five augmentations done
per sample on the CPU in `__getitem__`, as the book does) reading the
diskcache that book_prepcache.py filled. Batch 32, `--workers` processes,
shuffled per epoch like the book's train loop. The first `--warmup` batches
(worker start-up) are not timed. Prints one JSON line.

    python scripts/bench/book_loader.py DATA_DIR BOOK_CACHE_DIR [--batches 60] [--workers 2]
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import book_luna  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("cache")
    ap.add_argument("--batches", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if not os.path.isdir(args.cache):
        sys.exit(f"{args.cache}: no book cache; run book_prepcache.py first")

    loader = book_luna.training_loader(args.data, args.cache, args.batch_size, args.workers, args.seed)
    batches = iter(loader)
    for _ in range(args.warmup):
        next(batches)
    start = time.perf_counter()
    samples = 0
    for _ in range(args.batches):
        candidates, *_ = next(batches)
        samples += len(candidates)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            dict(
                samples=samples,
                seconds=seconds,
                samples_per_s=samples / seconds,
                batch_size=args.batch_size,
                workers=args.workers,
                batches=args.batches,
                warmup_batches=args.warmup,
            )
        )
    )


if __name__ == "__main__":
    main()
