"""Baseline: one training epoch the book's way, end to end, timed.

The book's p2ch12 training phase: a DataLoader over LunaDataset (balanced
ratio 1, all five augmentations per sample on the CPU in the workers)
reading the diskcache that book_prepcache.py filled, feeding LunaModel with
SGD (lr 0.001, momentum 0.99) and CrossEntropyLoss(reduction='none'), the
per-sample loss and probabilities kept for the epoch's metrics as the
book's computeBatchLoss does. One epoch of `--samples` samples (the book's
epoch is 200,000; `train --epoch-samples` shortens ours the same way). The
clock runs from creating the DataLoader iterator (worker start-up included,
as in `train`'s epoch time) to the last optimizer step. Also reports how
long the loop waited for batches. Prints one JSON line.

    python scripts/bench/book_train_epoch.py DATA_DIR BOOK_CACHE_DIR [--samples 1024] [--workers 2] [--threads 2]
"""

import argparse
import json
import os
import sys
import time

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
import book_luna  # noqa: E402
from luna_model import LunaModel  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("cache")
    ap.add_argument("--samples", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if not os.path.isdir(args.cache):
        sys.exit(f"{args.cache}: no book cache; run book_prepcache.py first")

    torch.set_num_threads(args.threads)
    loader = book_luna.training_loader(args.data, args.cache, args.batch_size, args.workers, args.seed)
    model = LunaModel(bias_init="book")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.99)
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    batches = -(-args.samples // args.batch_size)
    metrics = torch.zeros(3, batches * args.batch_size)

    model.train()
    start = time.perf_counter()
    waited = 0.0
    samples = 0
    it = iter(loader)
    for ndx in range(batches):
        asked = time.perf_counter()
        input_t, label_t, _uid, _irc = next(it)
        waited += time.perf_counter() - asked
        optimizer.zero_grad()
        logits, probability = model(input_t)
        loss = loss_fn(logits, label_t[:, 1])
        lo = ndx * args.batch_size
        hi = lo + label_t.size(0)
        metrics[0, lo:hi] = label_t[:, 1].detach()
        metrics[1, lo:hi] = probability[:, 1].detach()
        metrics[2, lo:hi] = loss.detach()
        loss.mean().backward()
        optimizer.step()
        samples += label_t.size(0)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            dict(
                samples=samples,
                seconds=seconds,
                samples_per_s=samples / seconds,
                waited_s=waited,
                wait_fraction=waited / seconds,
                batch_size=args.batch_size,
                workers=args.workers,
                threads=args.threads,
                torch=torch.__version__,
            )
        )
    )


if __name__ == "__main__":
    main()
