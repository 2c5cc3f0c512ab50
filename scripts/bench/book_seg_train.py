"""Baseline: the book's chapter 13 segmentation training, end to end, timed.

A transcription of p2ch13/training.py's SegmentationTrainingApp training
phase with its p2ch13/dsets.py TrainingLuna2dSegmentationDataset:

- the Dataset reads one training crop per `__getitem__` (7 HU slices
  96x96 around a positive and the centre slice's mask), walking the
  shuffled positives round and round (`pos_list[ndx % len(pos_list)]`), and
  cuts a random 64x64 window (`random.randrange(0, 32)` per axis) as float32
  slices and a long mask;
- a DataLoader with worker processes batches them (batch 16);
- the training loop moves each batch to the device, runs the book's
  SegmentationAugmentation module there (`--augmented`: flip, offset 0.03,
  scale 0.2, rotate, noise 25; one affine per batch, affine_grid +
  grid_sample on slices and mask), UNetWrapper (7 slices in, depth 3, wf 4,
  padding, batch norm, upconv), Dice loss + 8x the Dice loss of the false
  negatives, Adam (lr 1e-3), and keeps the per-sample metrics rows (loss,
  TP, FN, FP) as computeBatchLoss does.

What differs from the book, and why:
- The crops come from OUR segmentation cache (`prepcache seg`'s seg-train/,
  read per sample with scripts/lunacache.py: numpy + zstandard), not from the
  book's `getCtRawCandidate` diskcache, which needs the raw LUNA layout and
  a first pass over every CT. The book's cache holds the same 7x96x96 float32
  slices (clipped to [-1000, 1000]) and a bool mask per positive, pickled;
  ours holds int16 HU and the centre slice's mask, zstd-compressed. Reading
  either is a small part of the step (the model dominates), and ours is the
  faster read, so this favours the book.
- Only the training phase is timed, over `--samples` samples after
  `--warmup` untimed batches (worker start-up and first-call costs out),
  which also favours the book: `train seg`'s per-epoch figure includes its
  loader's start. No validation, TensorBoard or checkpoint is part of it.
- `torch.set_num_threads(--threads)` so both sides use the same cores.

Prints one JSON line.

    python scripts/bench/book_seg_train.py SEG_CACHE [--samples 512] [--workers 2] [--threads 2]
"""

import argparse
import json
import math
import os
import random
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from lunacache import LunaCache  # noqa: E402
from unet_model import UNetWrapper  # noqa: E402  (the book's model, transcribed)

HU_PLANES = 7  # shared::seg: 7 HU slices, then the centre slice's mask
METRICS_LOSS_NDX, METRICS_TP_NDX, METRICS_FN_NDX, METRICS_FP_NDX = 1, 7, 8, 9
METRICS_SIZE = 10


class TrainingSegmentationDataset(Dataset):
    """TrainingLuna2dSegmentationDataset over a seg-train/ cache."""

    def __init__(self, cache_dir, samples):
        self.cache_dir = cache_dir
        self.samples = samples
        self.cache = None  # opened in each worker (an mmap does not pickle)
        self.pos_list = list(range(len(LunaCache(cache_dir))))

    def __len__(self):
        return self.samples

    def shuffleSamples(self):
        random.shuffle(self.pos_list)

    def __getitem__(self, ndx):
        if self.cache is None:
            self.cache = LunaCache(self.cache_dir)
        pos = self.pos_list[ndx % len(self.pos_list)]
        return self.getitem_trainingCrop(pos)

    def getitem_trainingCrop(self, pos):
        chunk = self.cache.chunk(pos)  # the book: getCtRawCandidate(series_uid, center_xyz, (7, 96, 96))
        ct_a = chunk[:HU_PLANES].astype("float32")
        pos_a = chunk[HU_PLANES:] > 0  # the book: pos_a[3:4] of a 7-slice mask
        row_offset = random.randrange(0, 32)
        col_offset = random.randrange(0, 32)
        ct_t = torch.from_numpy(ct_a[:, row_offset:row_offset + 64, col_offset:col_offset + 64]).to(torch.float32)
        pos_t = torch.from_numpy(pos_a[:, row_offset:row_offset + 64, col_offset:col_offset + 64]).to(torch.long)
        meta = self.cache.meta(pos)
        return ct_t, pos_t, meta["series_uid"], meta["center_irc"][0]


class SegmentationAugmentation(nn.Module):
    """p2ch13/model.py, as the book has it (one affine per batch; the
    offset is written to row 2, which `transform_t[:, :2]` drops)."""

    def __init__(self, flip=None, offset=None, scale=None, rotate=None, noise=None):
        super().__init__()
        self.flip, self.offset, self.scale, self.rotate, self.noise = flip, offset, scale, rotate, noise

    def forward(self, input_g, label_g):
        transform_t = self._build2dTransformMatrix()
        transform_t = transform_t.expand(input_g.shape[0], -1, -1)
        transform_t = transform_t.to(input_g.device, torch.float32)
        affine_t = F.affine_grid(transform_t[:, :2], input_g.size(), align_corners=False)
        augmented_input_g = F.grid_sample(input_g, affine_t, padding_mode="border", align_corners=False)
        augmented_label_g = F.grid_sample(label_g.to(torch.float32), affine_t, padding_mode="border",
                                          align_corners=False)
        if self.noise:
            noise_t = torch.randn_like(augmented_input_g)
            noise_t *= self.noise
            augmented_input_g += noise_t
        return augmented_input_g, augmented_label_g > 0.5

    def _build2dTransformMatrix(self):
        transform_t = torch.eye(3).to(torch.float64)
        for i in range(2):
            if self.flip and random.random() > 0.5:
                transform_t[i, i] *= -1
            if self.offset:
                transform_t[2, i] = self.offset * (random.random() * 2 - 1)
            if self.scale:
                transform_t[i, i] *= 1.0 + self.scale * (random.random() * 2 - 1)
        if self.rotate:
            angle_rad = random.random() * math.pi * 2
            s, c = math.sin(angle_rad), math.cos(angle_rad)
            rotation_t = torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=torch.float64)
            transform_t @= rotation_t
        return transform_t


def diceLoss(prediction_g, label_g, epsilon=1):
    diceLabel_g = label_g.sum(dim=[1, 2, 3])
    dicePrediction_g = prediction_g.sum(dim=[1, 2, 3])
    diceCorrect_g = (prediction_g * label_g).sum(dim=[1, 2, 3])
    diceRatio_g = (2 * diceCorrect_g + epsilon) / (dicePrediction_g + diceLabel_g + epsilon)
    return 1 - diceRatio_g


class App:
    """The parts of SegmentationTrainingApp the training phase runs."""

    def __init__(self, device):
        self.device = device
        self.segmentation_model = UNetWrapper(in_channels=7, n_classes=1, depth=3, wf=4, padding=True,
                                              batch_norm=True, up_mode="upconv").to(device)
        self.augmentation_model = SegmentationAugmentation(flip=True, offset=0.03, scale=0.2, rotate=True,
                                                           noise=25.0).to(device)
        self.optimizer = torch.optim.Adam(self.segmentation_model.parameters())

    def computeBatchLoss(self, batch_ndx, batch_tup, batch_size, metrics_g, classificationThreshold=0.5):
        input_t, label_t, _series_list, _slice_ndx_list = batch_tup
        input_g = input_t.to(self.device, non_blocking=True)
        label_g = label_t.to(self.device, non_blocking=True)
        if self.segmentation_model.training:
            input_g, label_g = self.augmentation_model(input_g, label_g)
        prediction_g = self.segmentation_model(input_g)
        diceLoss_g = diceLoss(prediction_g, label_g)
        fnLoss_g = diceLoss(prediction_g * label_g, label_g)
        start_ndx = batch_ndx * batch_size
        end_ndx = start_ndx + input_t.size(0)
        with torch.no_grad():
            predictionBool_g = (prediction_g[:, 0:1] > classificationThreshold).to(torch.float32)
            metrics_g[METRICS_LOSS_NDX, start_ndx:end_ndx] = diceLoss_g
            intersectionSum = lambda a, b: (a * b).sum(dim=[1, 2, 3])  # noqa: E731
            metrics_g[METRICS_TP_NDX, start_ndx:end_ndx] = intersectionSum(predictionBool_g, label_g)
            metrics_g[METRICS_FN_NDX, start_ndx:end_ndx] = intersectionSum(1 - predictionBool_g, label_g)
            metrics_g[METRICS_FP_NDX, start_ndx:end_ndx] = intersectionSum(predictionBool_g, ~label_g)
        return diceLoss_g.mean() + fnLoss_g.mean() * 2 ** 3

    def train(self, train_dl, warmup_batches):
        """doTraining, timed after `warmup_batches`: (samples, seconds, waited)."""
        metrics_g = torch.zeros(METRICS_SIZE, len(train_dl.dataset), device=self.device)
        self.segmentation_model.train()
        train_dl.dataset.shuffleSamples()
        samples, waited, start = 0, 0.0, None
        it = iter(train_dl)
        for batch_ndx in range(len(train_dl)):
            if batch_ndx == warmup_batches:
                start, samples, waited = time.perf_counter(), 0, 0.0
            asked = time.perf_counter()
            batch_tup = next(it)
            waited += time.perf_counter() - asked
            self.optimizer.zero_grad()
            loss_var = self.computeBatchLoss(batch_ndx, batch_tup, train_dl.batch_size, metrics_g)
            loss_var.backward()
            self.optimizer.step()
            samples += batch_tup[0].size(0)
        metrics_g.to("cpu")
        return samples, time.perf_counter() - start, waited


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cache", help="a segmentation cache (prepcache seg) or its seg-train/ folder")
    ap.add_argument("--samples", type=int, default=512, help="timed samples (after the warm-up)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed batches first")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    cache = args.cache
    if os.path.isdir(os.path.join(cache, "seg-train")):
        cache = os.path.join(cache, "seg-train")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    app = App(torch.device("cpu"))
    batches = args.warmup + -(-args.samples // args.batch_size)
    dataset = TrainingSegmentationDataset(cache, batches * args.batch_size)
    train_dl = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers, pin_memory=False)
    samples, seconds, waited = app.train(train_dl, args.warmup)
    print(json.dumps(dict(samples=samples, seconds=seconds, samples_per_s=samples / seconds, waited_s=waited,
                          wait_fraction=waited / seconds, warmup_batches=args.warmup,
                          batch_size=args.batch_size, workers=args.workers, threads=args.threads,
                          torch=torch.__version__)))


if __name__ == "__main__":
    main()
