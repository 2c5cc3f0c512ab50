"""Baseline: one training step of the book's LunaModel in PyTorch on the CPU.

The book's LunaModel (BatchNorm3d tail, four conv blocks 1->8->16->
32->64, Linear(1152, 2), softmax), SGD lr 0.001 momentum 0.99,
CrossEntropyLoss(reduction='none').mean(). Random input of shape
(N, 1, 32, 48, 48): the step's cost does not depend on the values.
torch.set_num_threads(--threads). Times forward+backward+step after
`--warmup` steps; prints one JSON line per batch size.

    python scripts/bench/torch_train_step.py [--batch-sizes 32,128] [--steps 5] [--threads 2]
"""

import argparse
import json
import os
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from luna_model import LunaModel  # noqa: E402  (the project's PyTorch LunaModel)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-sizes", default="32,128")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = LunaModel(bias_init="book")
    params = sum(p.numel() for p in model.parameters())
    assert params == 222220, params
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.99)
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        x = torch.randn(batch, 1, 32, 48, 48)
        y = torch.randint(0, 2, (batch,))

        def step():
            optimizer.zero_grad()
            logits, _ = model(x)
            loss_fn(logits, y).mean().backward()
            optimizer.step()

        for _ in range(args.warmup):
            step()
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        seconds = time.perf_counter() - start
        print(
            json.dumps(
                dict(
                    batch_size=batch,
                    steps=args.steps,
                    seconds=seconds,
                    samples_per_s=batch * args.steps / seconds,
                    threads=args.threads,
                    torch=torch.__version__,
                    parameters=params,
                )
            )
        )


if __name__ == "__main__":
    main()
