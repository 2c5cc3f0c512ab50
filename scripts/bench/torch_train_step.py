"""Baseline: one training step (and inference) of the book's LunaModel in PyTorch.

The book's LunaModel (BatchNorm3d tail, four conv blocks 1->8->16->
32->64, Linear(1152, 2), softmax), SGD lr 0.001 momentum 0.99,
CrossEntropyLoss(reduction='none').mean(). Random input of shape
(N, 1, 32, 48, 48): the step's cost does not depend on the values.

Recipes (--recipes, comma-separated):
  eager     fp32, contiguous: the book's step
  cl        channels_last_3d model and input
  bf16      bf16 autocast around the forward pass (device type of --device)
  cl-bf16   both: PyTorch's best eager recipe on a CPU with native bf16
  fp16      fp16 autocast + GradScaler (CUDA only)
  cl-fp16   channels_last_3d + fp16 autocast + GradScaler (CUDA only)
  compile   torch.compile of the model, with cl-bf16 (skipped with a note
            when it fails, e.g. no C++ compiler)

torch.set_num_threads(--threads). Times forward+backward+step after
`--warmup` steps, and with --inference a no-grad eval forward; prints one
JSON line per recipe, batch size and mode.

    python scripts/bench/torch_train_step.py [--recipes eager,cl-bf16] [--batch-sizes 32] [--steps 5] [--threads 2] [--device cpu] [--inference]
"""

import argparse
import contextlib
import json
import os
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from luna_model import LunaModel  # noqa: E402  (the project's PyTorch LunaModel)

RECIPES = ("eager", "cl", "bf16", "cl-bf16", "fp16", "cl-fp16", "compile")


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(recipe, device):
    torch.manual_seed(0)
    model = LunaModel(bias_init="book").to(device)
    channels_last = recipe.startswith("cl") or recipe == "compile"
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(recipe.split("-")[-1])
    if recipe == "compile":
        dtype = torch.bfloat16
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.99)
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    forward = torch.compile(model) if recipe == "compile" else model
    return model, forward, optimizer, scaler, channels_last, dtype


def time_steps(step, steps, warmup, device):
    for _ in range(warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return time.perf_counter() - start


def bench(recipe, batch, args, device):
    model, forward, optimizer, scaler, channels_last, dtype = build(recipe, device)
    params = sum(p.numel() for p in model.parameters())
    assert params == 222220, params
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    x = torch.randn(batch, 1, 32, 48, 48, device=device)
    y = torch.randint(0, 2, (batch,), device=device)

    def autocast():
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=dtype)

    def inputs():
        return x.contiguous(memory_format=torch.channels_last_3d) if channels_last else x

    def step():
        optimizer.zero_grad()
        with autocast():
            logits, _ = forward(inputs())
            loss = loss_fn(logits.float(), y).mean()
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()

    def infer():
        with torch.no_grad(), autocast():
            _, probs = forward(inputs())
            probs[0, 1].item()

    rows = []
    modes = [("train", step)]
    if args.inference:
        model.eval()
        modes.append(("inference", infer))
    for mode, fn in modes:
        if mode == "train":
            model.train()
        else:
            model.eval()
        seconds = time_steps(fn, args.steps, args.warmup, device)
        rows.append(
            dict(
                recipe=recipe,
                mode=mode,
                batch_size=batch,
                steps=args.steps,
                seconds=seconds,
                samples_per_s=batch * args.steps / seconds,
                threads=torch.get_num_threads(),
                device=str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
                torch=torch.__version__,
                parameters=params,
            )
        )
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", default="eager")
    ap.add_argument("--batch-sizes", default="32,128")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--inference", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    for recipe in args.recipes.split(","):
        if recipe not in RECIPES:
            sys.exit(f"unknown recipe {recipe!r}; known: {', '.join(RECIPES)}")
        if "fp16" in recipe and device.type != "cuda":
            print(json.dumps(dict(recipe=recipe, skipped="fp16 autocast with GradScaler needs CUDA")))
            continue
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            try:
                rows = bench(recipe, batch, args, device)
            except Exception as e:  # torch.compile without a toolchain, …
                if recipe != "compile":
                    raise
                print(json.dumps(dict(recipe=recipe, skipped=f"{type(e).__name__}: {str(e)[:200]}")))
                break
            for row in rows:
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
