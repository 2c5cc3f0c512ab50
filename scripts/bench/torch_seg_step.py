"""Baseline: one segmentation training step, and full-slice inference, of the
book's chapter 13 U-Net in PyTorch, by recipe.

The book's UNetWrapper (in_channels 7, depth 3, wf 4, padding, batch norm,
upconv; scripts/unet_model.py), Adam (lr 1e-3), the book's loss: mean Dice
loss + 8 x mean Dice loss of the false negatives (p2ch13/training.py,
computeBatchLoss). Random input: the step's cost does not depend on the
values.

  train      a batch of `--batch-size` [7, W, W] windows (W = --window, the
             book's 64) and their masks: forward + loss + backward + Adam
  inference  eval mode under torch.inference_mode, a batch of
             `--infer-batch` whole [7, S, S] slices (S = --size, LUNA's 512):
             what a chapter 14 pass over a scan runs

Recipes (--recipes, comma-separated):
  eager     fp32, contiguous: the book's step
  cl        channels_last model and input
  bf16      bf16 autocast around the forward pass
  cl-bf16   both: PyTorch's best eager recipe on a CPU with native bf16
  fp16      fp16 autocast + GradScaler (CUDA only)
  compile   torch.compile of the model with cl-bf16 (skipped with a note
            when it fails or takes longer than --compile-timeout seconds)

torch.set_num_threads(--threads). Prints one JSON line per recipe and mode.

    python scripts/bench/torch_seg_step.py [--recipes eager,cl-bf16] [--steps 8] [--threads 2] [--device cpu]
"""

import argparse
import contextlib
import json
import os
import signal
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from unet_model import UNetWrapper  # noqa: E402  (the book's model, transcribed)

RECIPES = ("eager", "cl", "bf16", "cl-bf16", "fp16", "compile")
PARAMETERS = 118_271  # the book's UNetWrapper(7, 1, depth 3, wf 4); checked below


def dice_loss(prediction, label, epsilon=1):
    """The book's diceLoss: per sample, over every axis but the batch."""
    correct = (prediction * label).sum(dim=[1, 2, 3])
    ratio = (2 * correct + epsilon) / (prediction.sum(dim=[1, 2, 3]) + label.sum(dim=[1, 2, 3]) + epsilon)
    return 1 - ratio


def seg_loss(prediction, label):
    return dice_loss(prediction, label).mean() + dice_loss(prediction * label, label).mean() * 8


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Recipe:
    """One recipe's model, optimizer and contexts."""

    def __init__(self, name, device):
        torch.manual_seed(0)
        self.name, self.device = name, device
        self.channels_last = name.startswith("cl") or name == "compile"
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(name.split("-")[-1])
        if name == "compile":
            self.dtype = torch.bfloat16
        model = UNetWrapper(in_channels=7, n_classes=1, depth=3, wf=4, padding=True, batch_norm=True,
                            up_mode="upconv").to(device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.forward = torch.compile(model) if name == "compile" else model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        self.scaler = torch.amp.GradScaler(device.type) if self.dtype == torch.float16 else None

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def layout(self, x):
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def time_calls(fn, steps, warmup, device):
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return time.perf_counter() - start


def train_fn(r, args):
    x = torch.randn(args.batch_size, 7, args.window, args.window, device=r.device) * 500
    y = torch.rand(args.batch_size, 1, args.window, args.window, device=r.device) > 0.9

    def step():
        r.optimizer.zero_grad()
        with r.autocast():
            prediction = r.forward(r.layout(x))
        loss = seg_loss(prediction.float(), y)
        if r.scaler is not None:
            r.scaler.scale(loss).backward()
            r.scaler.step(r.optimizer)
            r.scaler.update()
        else:
            loss.backward()
            r.optimizer.step()

    return step


def infer_fn(r, args):
    x = torch.randn(args.infer_batch, 7, args.size, args.size, device=r.device) * 500

    def infer():
        with torch.inference_mode(), r.autocast():
            prediction = r.forward(r.layout(x))
            prediction[0, 0, 0, 0].item()  # waits for the batch, as a consumer would

    return infer


def row(r, mode, batch, steps, seconds, args):
    params = sum(p.numel() for p in r.model.parameters())
    assert params == PARAMETERS, params
    return dict(recipe=r.name, mode=mode, batch_size=batch, steps=steps, seconds=seconds,
                samples_per_s=batch * steps / seconds, window=args.window, size=args.size,
                threads=torch.get_num_threads(),
                device=str(r.device) if r.device.type == "cpu" else torch.cuda.get_device_name(r.device),
                torch=torch.__version__, parameters=params)


def bench(name, args, device):
    r = Recipe(name, device)
    rows = []
    r.model.train()
    seconds = time_calls(train_fn(r, args), args.steps, args.warmup, device)
    rows.append(row(r, "train", args.batch_size, args.steps, seconds, args))
    if args.inference:
        r.model.eval()
        seconds = time_calls(infer_fn(r, args), args.infer_steps, 1, device)
        rows.append(row(r, "inference", args.infer_batch, args.infer_steps, seconds, args))
    return rows


class CompileTimeout(Exception):
    pass


def with_alarm(seconds, fn):
    """torch.compile can spend minutes building kernels; give up after `seconds`."""
    def on_alarm(_sig, _frame):
        raise CompileTimeout(f"gave up after {seconds} s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        return fn()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", default="eager,cl,bf16,cl-bf16")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--inference", action="store_true")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--infer-batch", type=int, default=4)
    ap.add_argument("--infer-steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile-timeout", type=int, default=300)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    for name in args.recipes.split(","):
        if name not in RECIPES:
            sys.exit(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
        if name == "fp16" and device.type != "cuda":
            print(json.dumps(dict(recipe=name, skipped="fp16 autocast with GradScaler needs CUDA")))
            continue
        try:
            rows = with_alarm(args.compile_timeout, lambda: bench(name, args, device)) \
                if name == "compile" else bench(name, args, device)
        except Exception as e:  # torch.compile without a toolchain, or too slow
            if name != "compile":
                raise
            print(json.dumps(dict(recipe=name, skipped=f"{type(e).__name__}: {str(e)[:200]}")))
            continue
        for r in rows:
            print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
