"""Baseline: the book's chapter 14 analysis of one scan, timed.

p2ch14/nodule_analysis.py's path for one series, with its own structure:
the scan read by SimpleITK into the book's `Ct`, `segmentCt` over a
DataLoader of full slices (7 context slices, batch 4, `--num-workers`
processes, each of which reads the scan itself, as the book's
per-process `getCt` cache does), scipy.ndimage's erosion, labels and
centres of mass, then `classifyCandidates` over a DataLoader of 32x48x48
crops (`getRawCandidate`, batch 4) through LunaModel. Weights are the
book's `.state` files (`torch.load(...)['model_state']`), fp32, CPU.

    python scripts/bench/book_analysis.py SCAN.mhd SEG.state CLS.state [--num-workers 4] [--threads 2]

Prints one JSON line: seconds per stage and in all (reading the scan
included, Python start-up and model loading not), slices, candidates, and
how many of them are at or above P 0.5.
"""

import argparse
import functools
import json
import os
import sys
import time

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from luna_model import LunaModel  # noqa: E402
from unet_model import UNetWrapper  # noqa: E402


class Ct:
    """p2ch14/dsets.py `Ct`: float32 HU clipped to [-1000, 1000]."""

    def __init__(self, path):
        ct_mhd = sitk.ReadImage(path)
        ct_a = np.array(sitk.GetArrayFromImage(ct_mhd), dtype=np.float32)
        ct_a.clip(-1000, 1000, ct_a)
        self.hu_a = ct_a
        self.origin_xyz = np.array(ct_mhd.GetOrigin())
        self.vxSize_xyz = np.array(ct_mhd.GetSpacing())
        self.direction_a = np.array(ct_mhd.GetDirection()).reshape(3, 3)

    def irc2xyz(self, coord_irc):
        cri_a = np.array(coord_irc)[::-1]
        return (self.direction_a @ (cri_a * self.vxSize_xyz)) + self.origin_xyz

    def xyz2irc(self, coord_xyz):
        cri_a = ((np.array(coord_xyz) - self.origin_xyz) @ np.linalg.inv(self.direction_a)) / self.vxSize_xyz
        cri_a = np.round(cri_a)
        return (int(cri_a[2]), int(cri_a[1]), int(cri_a[0]))

    def getRawCandidate(self, center_xyz, width_irc):
        center_irc = self.xyz2irc(center_xyz)
        slice_list = []
        for axis, center_val in enumerate(center_irc):
            start_ndx = int(round(center_val - width_irc[axis] / 2))
            end_ndx = int(start_ndx + width_irc[axis])
            if start_ndx < 0:
                start_ndx, end_ndx = 0, int(width_irc[axis])
            if end_ndx > self.hu_a.shape[axis]:
                end_ndx = self.hu_a.shape[axis]
                start_ndx = int(self.hu_a.shape[axis] - width_irc[axis])
            slice_list.append(slice(start_ndx, end_ndx))
        return self.hu_a[tuple(slice_list)], center_irc


@functools.lru_cache(1)
def getCt(path):
    return Ct(path)


class FullSlices(Dataset):
    """p2ch13 Luna2dSegmentationDataset(fullCt_bool=True): getitem_fullSlice."""

    def __init__(self, path, slices):
        self.path, self.slices = path, slices

    def __len__(self):
        return self.slices

    def __getitem__(self, ndx):
        ct = getCt(self.path)
        ct_t = torch.zeros((7, ct.hu_a.shape[1], ct.hu_a.shape[2]))
        for i, context_ndx in enumerate(range(ndx - 3, ndx + 4)):
            context_ndx = min(max(context_ndx, 0), self.slices - 1)
            ct_t[i] = torch.from_numpy(ct.hu_a[context_ndx].astype(np.float32))
        ct_t.clamp_(-1000, 1000)
        return ct_t, ndx


class Crops(Dataset):
    """p2ch14 LunaDataset over a candidate list (use_cache False)."""

    def __init__(self, path, centres_xyz):
        self.path, self.centres_xyz = path, centres_xyz

    def __len__(self):
        return len(self.centres_xyz)

    def __getitem__(self, ndx):
        candidate_a, center_irc = getCt(self.path).getRawCandidate(self.centres_xyz[ndx], (32, 48, 48))
        return torch.from_numpy(candidate_a).to(torch.float32).unsqueeze(0), torch.tensor(center_irc)


def load(model, path):
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=False)["model_state"])
    return model.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scan")
    ap.add_argument("seg")
    ap.add_argument("cls")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--num-workers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seg = load(UNetWrapper(in_channels=7, n_classes=1, depth=3, wf=4, padding=True, batch_norm=True, up_mode="upconv"), args.seg)
    cls = load(LunaModel(), args.cls)

    start = time.perf_counter()
    ct = getCt(args.scan)  # the main process's copy (groupSegmentationOutput's ct)
    seconds = dict(read=time.perf_counter() - start)
    clock = time.perf_counter()
    slices = ct.hu_a.shape[0]
    with torch.no_grad():
        output_a = np.zeros_like(ct.hu_a, dtype=np.float32)
        loader = DataLoader(FullSlices(args.scan, slices), batch_size=args.batch_size, num_workers=args.num_workers)
        for input_t, slice_ndx_list in loader:
            prediction_g = seg(input_t)
            for i, slice_ndx in enumerate(slice_ndx_list):
                output_a[slice_ndx] = prediction_g[i].numpy()
        mask_a = ndimage.binary_erosion(output_a > 0.5, iterations=1)
    seconds["segment"] = time.perf_counter() - clock
    clock = time.perf_counter()
    labels, count = ndimage.label(mask_a)
    centres = ndimage.center_of_mass(ct.hu_a.clip(-1000, 1000) + 1001, labels=labels, index=np.arange(1, count + 1))
    centres_xyz = [tuple(ct.irc2xyz(c)) for c in centres]
    seconds["group"] = time.perf_counter() - clock
    clock = time.perf_counter()
    probabilities = []
    loader = DataLoader(Crops(args.scan, centres_xyz), batch_size=args.batch_size, num_workers=args.num_workers)
    with torch.no_grad():
        for input_t, _ in loader:
            _, probability_nodule_g = cls(input_t)
            probabilities.extend(probability_nodule_g[:, 1].tolist())
    seconds["classify"] = time.perf_counter() - clock
    seconds["total"] = time.perf_counter() - start
    print(json.dumps(dict(
        tool="book", seconds=seconds, slices=slices, shape=list(ct.hu_a.shape), candidates=int(count),
        nodules=int(sum(p >= 0.5 for p in probabilities)), threads=args.threads, num_workers=args.num_workers,
    )))


if __name__ == "__main__":
    main()
