"""The book's data path (p2ch12 `dsets.py`), rebuilt for benchmarking only.

What it keeps from the book, because that is what costs time:
- candidate list: glob of the scans on disk, diameter merge, reverse sort
  (descending on (is_nodule, diameter, uid, xyz));
- `Ct`: SimpleITK ReadImage, GetArrayFromImage -> float32, clip the whole
  volume to [-1000, 1000]; one `Ct` kept per process (`lru_cache(1)`);
- `get_raw_candidate`: the (32, 48, 48) crop with the shifting rule
  (shifted, never padded, at the volume's edges), memoized in a diskcache FanoutCache (64 shards). The book's
  `GzipDisk` only gzips values of cassandra's `BytesType`; the memoized value
  is a tuple, so diskcache stores it as a plain pickle (~290 KiB per
  candidate). The default `Disk` does exactly that.
- `LunaDataset`: series-sorted for prepcache; balanced (`ratio_int`) and
  augmented on the CPU in `__getitem__` (affine_grid + grid_sample + noise,
  as chapter 12 does) for training.

`configure(data_dir, cache_dir)` must run before the DataLoader forks its
workers: they inherit the memoized function and the candidate list.
"""

import csv
import functools
import glob
import math
import os
import random
from collections import namedtuple

import diskcache
import numpy as np
import SimpleITK as sitk
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

WIDTH_IRC = (32, 48, 48)
CandidateInfo = namedtuple("CandidateInfo", "is_nodule, diameter_mm, series_uid, center_xyz")

_DATA_DIR = None
_RAW_CACHE = None
_memoized_raw_candidate = None


def configure(data_dir, cache_dir):
    global _DATA_DIR, _RAW_CACHE, _memoized_raw_candidate
    _DATA_DIR = data_dir
    # The book's util/disk.py getCache() settings.
    _RAW_CACHE = diskcache.FanoutCache(cache_dir, shards=64, timeout=1, size_limit=3e11)
    _memoized_raw_candidate = _RAW_CACHE.memoize(typed=True)(_raw_candidate)


def close():
    """Close the cache's SQLite shards (their -wal files fold back in)."""
    if _RAW_CACHE is not None:
        _RAW_CACHE.close()


def cache_dir_bytes(path):
    """Bytes on disk under `path` (what `du` would count, by block)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            total += os.stat(os.path.join(root, name)).st_blocks * 512
    return total


def candidate_info_list():
    on_disk = {os.path.basename(p)[:-4]: p for p in glob.glob(os.path.join(_DATA_DIR, "subset*", "*.mhd"))}
    diameters = {}
    with open(os.path.join(_DATA_DIR, "annotations.csv")) as f:
        for row in list(csv.reader(f))[1:]:
            center = tuple(float(x) for x in row[1:4])
            diameters.setdefault(row[0], []).append((center, float(row[4])))
    infos = []
    with open(os.path.join(_DATA_DIR, "candidates.csv")) as f:
        for row in list(csv.reader(f))[1:]:
            uid = row[0]
            if uid not in on_disk:
                continue
            center = tuple(float(x) for x in row[1:4])
            diameter = 0.0
            for ann_center, ann_diameter in diameters.get(uid, []):
                if all(abs(center[i] - ann_center[i]) <= ann_diameter / 4 for i in range(3)):
                    diameter = ann_diameter
                    break
            infos.append(CandidateInfo(bool(int(row[4])), diameter, uid, center))
    infos.sort(reverse=True)
    return infos


class Ct:
    def __init__(self, series_uid):
        mhd = glob.glob(os.path.join(_DATA_DIR, "subset*", series_uid + ".mhd"))[0]
        image = sitk.ReadImage(mhd)
        hu = np.array(sitk.GetArrayFromImage(image), dtype=np.float32)
        hu.clip(-1000, 1000, hu)
        self.hu = hu
        self.origin = np.array(image.GetOrigin())
        self.spacing = np.array(image.GetSpacing())
        self.direction = np.array(image.GetDirection()).reshape(3, 3)

    def raw_candidate(self, center_xyz, width_irc):
        # The book's xyz2irc (its `@ inverse(direction)` equals the correct
        # inverse for the identity/flip directions of LUNA and of our synth).
        cri = ((np.array(center_xyz) - self.origin) @ np.linalg.inv(self.direction)) / self.spacing
        center_irc = tuple(int(v) for v in np.round(cri[::-1]))
        slices = []
        for axis, center in enumerate(center_irc):
            start = int(round(center - width_irc[axis] / 2))
            end = start + width_irc[axis]
            if start < 0:
                start, end = 0, width_irc[axis]
            if end > self.hu.shape[axis]:
                end = self.hu.shape[axis]
                start = end - width_irc[axis]
            slices.append(slice(start, end))
        return self.hu[tuple(slices)], center_irc


@functools.lru_cache(1, typed=True)
def get_ct(series_uid):
    return Ct(series_uid)


def _raw_candidate(series_uid, center_xyz, width_irc):
    return get_ct(series_uid).raw_candidate(center_xyz, width_irc)


def get_raw_candidate(series_uid, center_xyz, width_irc):
    return _memoized_raw_candidate(series_uid, center_xyz, width_irc)


def augmented_candidate(series_uid, center_xyz, width_irc):
    """All five of the book's augmentations, on the CPU, one sample at a time."""
    chunk, center_irc = get_raw_candidate(series_uid, center_xyz, width_irc)
    ct_t = torch.tensor(chunk).unsqueeze(0).unsqueeze(0).to(torch.float32)
    transform = torch.eye(4)
    for i in range(3):
        if random.random() > 0.5:
            transform[i, i] *= -1
        transform[i, 3] = 0.1 * (random.random() * 2 - 1)
        transform[i, i] *= 1.0 + 0.2 * (random.random() * 2 - 1)
    angle = random.random() * math.pi * 2
    s, c = math.sin(angle), math.cos(angle)
    rotation = torch.tensor([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    transform @= rotation
    grid = F.affine_grid(transform[:3].unsqueeze(0).to(torch.float32), ct_t.size(), align_corners=False)
    out = F.grid_sample(ct_t, grid, padding_mode="border", align_corners=False)
    out += torch.randn_like(out) * 25.0
    return out[0], center_irc


class LunaDataset(Dataset):
    def __init__(self, sort_by_series=False, ratio_int=0, augmented=False):
        self.infos = candidate_info_list()
        if sort_by_series:
            self.infos.sort(key=lambda x: (x.series_uid, x.center_xyz))
        self.ratio_int = ratio_int
        self.augmented = augmented
        self.negatives = [c for c in self.infos if not c.is_nodule]
        self.positives = [c for c in self.infos if c.is_nodule]
        if ratio_int and not self.positives:
            raise SystemExit("balanced sampling needs at least one positive candidate")

    def shuffle_samples(self):
        if self.ratio_int:
            random.shuffle(self.negatives)
            random.shuffle(self.positives)

    def __len__(self):
        return 200000 if self.ratio_int else len(self.infos)

    def __getitem__(self, ndx):
        if self.ratio_int:
            pos_ndx = ndx // (self.ratio_int + 1)
            if ndx % (self.ratio_int + 1):
                info = self.negatives[(ndx - 1 - pos_ndx) % len(self.negatives)]
            else:
                info = self.positives[pos_ndx % len(self.positives)]
        else:
            info = self.infos[ndx]
        if self.augmented:
            candidate_t, center_irc = augmented_candidate(info.series_uid, info.center_xyz, WIDTH_IRC)
        else:
            chunk, center_irc = get_raw_candidate(info.series_uid, info.center_xyz, WIDTH_IRC)
            candidate_t = torch.from_numpy(chunk).to(torch.float32).unsqueeze(0)
        label = torch.tensor([not info.is_nodule, info.is_nodule], dtype=torch.long)
        return candidate_t, label, info.series_uid, torch.tensor(center_irc)


def training_loader(data_dir, cache_dir, batch_size, workers, seed):
    """The book's training DataLoader: balanced (ratio 1), augmented, shuffled."""
    torch.manual_seed(seed)
    random.seed(seed)
    configure(data_dir, cache_dir)
    dataset = LunaDataset(ratio_int=1, augmented=True)
    dataset.shuffle_samples()
    return DataLoader(dataset, batch_size=batch_size, num_workers=workers, shuffle=True)
