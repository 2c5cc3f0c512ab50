"""Train LunaModel with DistributedDataParallel from a prepcache cache.

    torchrun --standalone --nproc_per_node N scripts/torch_ddp_train.py \\
        --cache CACHE --steps K [--balanced [R]] [--augmented] --out DIR

gloo on CPU, nccl when CUDA is available (one GPU per local rank). Each rank
reads its own disjoint shard of the training split (lunacache_torch.shard_indices),
so an optimiser step sees N x batch-size samples. Rank 0 logs the loss
averaged over all ranks as JSON lines and writes DIR/model.safetensors
(the Rust `train` names; `train` and luna_model.load_safetensors both load it).
"""

import argparse
import json
import os
import sys
import time

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lunacache_torch import Augment, LunaDataset, shard_indices  # noqa: E402
from luna_model import LunaModel, save_safetensors  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", required=True, help="prepcache cache directory")
    p.add_argument("--steps", type=int, required=True, help="optimiser steps to run")
    p.add_argument("--out", default="runs/ddp", help="directory for model.safetensors")
    p.add_argument("--batch-size", type=int, default=32, help="per rank (the book: 32)")
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--momentum", type=float, default=0.99)
    p.add_argument("--val-stride", type=int, default=10)
    p.add_argument("--balanced", type=int, nargs="?", const=1, default=0, metavar="R",
                   help="R negatives per positive (default 1 when given)")
    p.add_argument("--epoch-samples", type=int, default=None,
                   help="samples per epoch (balanced default: 200,000)")
    p.add_argument("--augmented", action="store_true", help="all augmentations, book magnitudes")
    p.add_argument("--augment-flip", action="store_true")
    p.add_argument("--augment-offset", action="store_true")
    p.add_argument("--augment-scale", action="store_true")
    p.add_argument("--augment-rotate", action="store_true")
    p.add_argument("--augment-noise", action="store_true")
    p.add_argument("--bias-init", choices=["uniform", "book"], default="uniform")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader workers per rank")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--backend", choices=["gloo", "nccl"], default=None,
                   help="default: nccl with CUDA, else gloo")
    return p.parse_args(argv)


def augment_from(args):
    a = args
    return Augment(
        flip=a.augmented or a.augment_flip,
        offset=Augment.BOOK_OFFSET if a.augmented or a.augment_offset else 0.0,
        scale=Augment.BOOK_SCALE if a.augmented or a.augment_scale else 0.0,
        rotate=a.augmented or a.augment_rotate,
        noise=Augment.BOOK_NOISE if a.augmented or a.augment_noise else 0.0,
    )


def batches(dataset, rank, world, args):
    """Endless (epoch, chunks, labels) batches of this rank's shards, epoch after epoch."""
    epoch = 1
    while True:
        dataset.set_epoch(epoch)
        mine = shard_indices(len(dataset), rank, world, seed=args.seed, epoch=epoch)
        if not mine:
            raise SystemExit(f"rank {rank}: empty shard ({len(dataset)} samples for {world} ranks)")
        loader = DataLoader(dataset, batch_size=args.batch_size, sampler=mine,
                            num_workers=args.num_workers, pin_memory=torch.cuda.is_available())
        for chunks, labels in loader:
            yield epoch, chunks, labels
        epoch += 1


def main(argv):
    args = parse_args(argv)
    if "RANK" not in os.environ:
        raise SystemExit("start with torchrun, e.g. torchrun --standalone --nproc_per_node 2 " + sys.argv[0])
    cuda = torch.cuda.is_available()
    backend = args.backend or ("nccl" if cuda else "gloo")
    dist.init_process_group(backend=backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)

    # Same seed on every rank; DDP also broadcasts rank 0's weights at construction.
    torch.manual_seed(args.seed)
    model = LunaModel(bias_init=args.bias_init).to(device)
    ddp = DistributedDataParallel(model, device_ids=[local_rank] if cuda else None)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=args.lr, momentum=args.momentum)
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    dataset = LunaDataset(args.cache, val_stride=args.val_stride, is_val=False,
                          ratio_int=args.balanced, epoch_samples=args.epoch_samples,
                          augment=augment_from(args), seed=args.seed)
    if rank == 0:
        print(json.dumps({"event": "start", "world_size": world, "backend": backend,
                          "device": str(device), "train_samples": len(dataset),
                          "positives": len(dataset.pos_list), "negatives": len(dataset.neg_list)}),
              flush=True)

    ddp.train()
    started = time.time()
    stream = batches(dataset, rank, world, args)
    running = torch.zeros(2, device=device)  # loss sum, sample count since the last log
    for step in range(1, args.steps + 1):
        epoch, chunks, labels = next(stream)
        chunks = chunks.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        logits, _ = ddp(chunks)
        loss = loss_fn(logits, labels)
        loss.mean().backward()
        optimizer.step()
        running += torch.stack([loss.detach().sum(), torch.tensor(float(len(labels)), device=device)])
        if step % args.log_every == 0 or step == args.steps:
            dist.all_reduce(running)
            if rank == 0:
                print(json.dumps({"event": "step", "step": step, "epoch": epoch,
                                  "loss": running[0].item() / max(running[1].item(), 1.0),
                                  "samples": int(running[1].item()),
                                  "elapsed_s": round(time.time() - started, 3)}), flush=True)
            running.zero_()

    if rank == 0:
        os.makedirs(args.out, exist_ok=True)
        path = os.path.join(args.out, "model.safetensors")
        save_safetensors(ddp, path)
        print(json.dumps({"event": "saved", "path": path}), flush=True)
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
