"""PyTorch view of a prepcache cache: the book's chapter 12 `LunaDataset`
(split by candidate or by series, balanced ratio, augmentation) over `lunacache.LunaCache`, and
deterministic per-rank sharding for DistributedDataParallel.

    from lunacache_torch import LunaDataset, Augment, shard_indices
    ds = LunaDataset("cache/demo", val_stride=10, is_val=False, ratio_int=1,
                     augment=Augment.book(), seed=0)
    ds.set_epoch(1)                   # reshuffles the balanced lists
    chunk, label = ds[0]              # float32 [1,32,48,48] HU, int64 0/1
    mine = shard_indices(len(ds), rank, world_size, seed=0, epoch=1)

The semantics are the Rust `train`'s (`data/split.rs` over
`shared::luna::split_positions`, `data/sampler.rs`, `data/augment.rs`); `lunacache` itself stays numpy-only.
"""

import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lunacache import LunaCache  # noqa: E402

# The book's balanced epoch length (`LunaDataset.__len__` with a ratio).
BALANCED_EPOCH_SAMPLES = 200_000


def split_indices(count, val_stride, is_val):
    """The book's split: validation is `list[::val_stride]`, training the rest."""
    stride = max(1, int(val_stride))
    if is_val:
        return list(range(0, count, stride))
    return [i for i in range(count) if i % stride != 0]


def split_series_indices(series_of, series_uids, val_stride, is_val):
    """The series split (chapters 13-14): every `val_stride`-th series of the
    series sorted by uid, starting with the first, is validation, with all its
    candidates; positions stay in list order."""
    stride = max(1, int(val_stride))
    ranked = sorted(range(len(series_uids)), key=lambda s: series_uids[s])
    val_series = {s for rank, s in enumerate(ranked) if rank % stride == 0}
    return [i for i, s in enumerate(series_of) if (int(s) in val_series) == bool(is_val)]


def cache_split(cache, val_stride, is_val, split_by="candidate"):
    """`train`'s `--val-stride` / `--split-by` over a cache's candidates."""
    if split_by == "candidate":
        return split_indices(len(cache), val_stride, is_val)
    if split_by == "series":
        return split_series_indices(cache.entries["series"], cache.series_uids, val_stride, is_val)
    raise ValueError(f"split_by={split_by!r}: expected 'candidate' or 'series'")


def balanced_pick(ndx, ratio_int, pos, neg):
    """Chapter 12's `__getitem__` with `ratio_int`: every (r+1)-th sample is the next
    positive, the others walk the negatives; both lists wrap."""
    pos_ndx = ndx // (ratio_int + 1)
    if ndx % (ratio_int + 1):
        return neg[(ndx - 1 - pos_ndx) % len(neg)]
    return pos[pos_ndx % len(pos)]


def _rng(seed, *stream):
    # numpy's SeedSequence mixes all words: (seed, epoch, ...) streams are independent.
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *(int(s) for s in stream)])


def shard_indices(length, rank, world_size, seed=0, epoch=1, shuffle=True):
    """The dataset indices rank `rank` of `world_size` visits in epoch `epoch`:
    one permutation shared by all ranks (a pure function of seed and epoch),
    dealt round-robin, so shards are disjoint and together cover every index
    once. Shard lengths differ by at most one; the training loop runs a fixed
    number of steps, so no rank waits on another's shorter epoch."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world of {world_size}")
    order = _rng(seed, epoch, 0x5EED).permutation(length) if shuffle else np.arange(length)
    return order[rank::world_size].tolist()


class Augment:
    """Chapter 12's augmentation; zero/False turns a part off."""

    BOOK_OFFSET = 0.1
    BOOK_SCALE = 0.2
    BOOK_NOISE = 25.0

    def __init__(self, flip=False, offset=0.0, scale=0.0, rotate=False, noise=0.0):
        self.flip, self.offset, self.scale, self.rotate, self.noise = flip, offset, scale, rotate, noise

    @classmethod
    def book(cls):
        return cls(True, cls.BOOK_OFFSET, cls.BOOK_SCALE, True, cls.BOOK_NOISE)

    def is_off(self):
        return not (self.flip or self.offset or self.scale or self.rotate or self.noise)

    def transform(self, u):
        """The 4x4 affine from ten uniform draws, in the book's order (and the Rust
        `AugmentConfig::transform`'s): per axis flip, offset, scale; then T = T @ R."""
        t = torch.eye(4, dtype=torch.float64)
        for i in range(3):
            if self.flip and u[3 * i] > 0.5:
                t[i, i] *= -1
            if self.offset:
                t[i, 3] = self.offset * (u[3 * i + 1] * 2 - 1)
            if self.scale:
                t[i, i] *= 1.0 + self.scale * (u[3 * i + 2] * 2 - 1)
        if self.rotate:
            angle = u[9] * 2 * math.pi
            s, c = math.sin(angle), math.cos(angle)
            rotation = torch.tensor(
                [[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float64
            )
            t = t @ rotation
        return t

    def __call__(self, chunk, generator):
        """`chunk` float32 [1, D, H, W] → augmented copy, draws from `generator`."""
        u = torch.rand(10, generator=generator, dtype=torch.float64).tolist()
        out = chunk
        if self.flip or self.offset or self.scale or self.rotate:
            theta = self.transform(u)[:3].to(torch.float32).unsqueeze(0)
            grid = F.affine_grid(theta, [1, *chunk.shape], align_corners=False)
            out = F.grid_sample(
                chunk.unsqueeze(0), grid, padding_mode="border", align_corners=False
            ).squeeze(0)
        if self.noise:
            out = out + torch.randn(out.shape, generator=generator) * self.noise
        return out


class LunaDataset(Dataset):
    """Candidates of one split of a prepcache cache, as the book's chapter 12
    `LunaDataset`: `(chunk float32 [1,32,48,48], label int64)`.

    `ratio_int` > 0 balances (r negatives per positive, `epoch_samples` per
    epoch, 200,000 by default, like the book); the positive and negative
    lists are reshuffled by `set_epoch` from (seed, epoch). Augmentation
    draws from a generator seeded by (seed, epoch, index): reproducible, and
    the same in every DataLoader worker.
    """

    def __init__(self, cache, val_stride=10, is_val=False, ratio_int=0, epoch_samples=None,
                 augment=None, seed=0, split_by="candidate"):
        self.cache = cache if isinstance(cache, LunaCache) else LunaCache(cache)
        self.indices = cache_split(self.cache, val_stride, is_val, split_by)
        if not self.indices:
            raise ValueError(f"{self.cache.path}: the {'validation' if is_val else 'training'} split is empty")
        is_nodule = self.cache.entries["is_nodule"]
        self.pos_list = [i for i in self.indices if is_nodule[i]]
        self.neg_list = [i for i in self.indices if not is_nodule[i]]
        self.ratio_int = int(ratio_int)
        if self.ratio_int and not (self.pos_list and self.neg_list):
            raise ValueError(
                f"{self.cache.path}: balancing needs positives and negatives; the split has "
                f"{len(self.pos_list)} and {len(self.neg_list)}"
            )
        self.epoch_samples = epoch_samples
        self.augment = augment if augment is not None and not augment.is_off() else None
        self.seed = int(seed)
        self.epoch = 0
        self._pos, self._neg = list(self.pos_list), list(self.neg_list)

    def set_epoch(self, epoch):
        self.epoch = int(epoch)
        if self.ratio_int:
            rng = _rng(self.seed, self.epoch, 0xBA1)
            # The book shuffles the negatives, then the positives.
            self._neg = [self.neg_list[i] for i in rng.permutation(len(self.neg_list))]
            self._pos = [self.pos_list[i] for i in rng.permutation(len(self.pos_list))]

    def __len__(self):
        if self.ratio_int:
            return self.epoch_samples or BALANCED_EPOCH_SAMPLES
        if self.epoch_samples:
            return min(self.epoch_samples, len(self.indices))
        return len(self.indices)

    def cache_index(self, ndx):
        """The cache entry dataset index `ndx` reads this epoch."""
        if self.ratio_int:
            return balanced_pick(ndx, self.ratio_int, self._pos, self._neg)
        return self.indices[ndx]

    def __getitem__(self, ndx):
        i = self.cache_index(ndx)
        chunk = torch.from_numpy(self.cache.chunk(i).astype(np.float32)).unsqueeze(0)
        if self.augment is not None:
            gen = torch.Generator().manual_seed(
                int(_rng(self.seed, self.epoch, ndx, 0xA06).integers(2**63))
            )
            chunk = self.augment(chunk, gen)
        return chunk, torch.tensor(int(self.cache.entries["is_nodule"][i]), dtype=torch.int64)
