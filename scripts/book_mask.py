#!/usr/bin/env python3
"""Chapter 13's nodule mask, transcribed from the book for the Rust cross-check.

A faithful transcription of `Ct.buildAnnotationMask` (deep-learning-with-pytorch
dlwpt-code, p2ch13/dsets.py) and of the `xyz2irc` it calls (util/util.py),
run on a volume written by shared/tests/nodule_mask.rs. The logic is kept
statement for statement -- the try/except IndexError around each while loop,
numpy's integer indexing (negative indices wrap) and slicing, the column
slice ending with `row_radius` -- because the Rust side must reproduce those
quirks, not a cleaned-up version. Two additions that change no result: the
radii are recorded, and a candidate may give its centre as an (i, r, c) index
instead of a world point, for edge cases no world point reaches exactly.
`np.bool` (gone from numpy >= 1.24) is written `bool`, the same dtype.

Usage: book_mask.py CASE.json VOLUME.raw OUT_DIR

CASE.json: {"shape": [i, r, c], "threshold": -700,
            "origin_xyz": [...], "spacing_xyz": [...], "direction": [[...] x3],
            "candidates": [{"xyz": [x, y, z]} or {"irc": [i, r, c]}, ...]}
VOLUME.raw: little-endian int16, [i][r][c] order (what SimpleITK's
GetArrayFromImage gives for a LUNA scan).
Writes OUT_DIR/mask.u8 (mask_a) and OUT_DIR/box.u8 (boundingBox_a), one byte
(0/1) per voxel in C order, and prints {"centres_irc": [...], "radii": [...]}.
"""

import collections
import json
import os
import sys

import numpy as np

IrcTuple = collections.namedtuple('IrcTuple', ['index', 'row', 'col'])
XyzTuple = collections.namedtuple('XyzTuple', ['x', 'y', 'z'])


def xyz2irc(coord_xyz, origin_xyz, vxSize_xyz, direction_a):
    # util/util.py, unchanged.
    origin_a = np.array(origin_xyz)
    vxSize_a = np.array(vxSize_xyz)
    coord_a = np.array(coord_xyz)
    cri_a = ((coord_a - origin_a) @ np.linalg.inv(direction_a)) / vxSize_a
    cri_a = np.round(cri_a)
    return IrcTuple(int(cri_a[2]), int(cri_a[1]), int(cri_a[0]))


class BookCt:
    """The parts of the book's `Ct` that buildAnnotationMask reads."""

    def __init__(self, voxels_i16, origin_xyz, spacing_xyz, direction):
        # Ct.__init__: np.array(sitk.GetArrayFromImage(ct_mhd), dtype=np.float32),
        # not clipped in p2ch13.
        self.hu_a = np.array(voxels_i16, dtype=np.float32)
        self.origin_xyz = XyzTuple(*origin_xyz)
        self.vxSize_xyz = XyzTuple(*spacing_xyz)
        self.direction_a = np.array(direction, dtype=np.float64).reshape(3, 3)

    def centre_irc(self, candidate):
        if 'irc' in candidate:
            return IrcTuple(*candidate['irc'])
        return xyz2irc(candidate['xyz'], self.origin_xyz, self.vxSize_xyz, self.direction_a)

    def buildAnnotationMask(self, candidates, threshold_hu=-700):
        boundingBox_a = np.zeros_like(self.hu_a, dtype=bool)
        centres, radii = [], []

        for candidate in candidates:
            center_irc = self.centre_irc(candidate)
            ci = int(center_irc.index)
            cr = int(center_irc.row)
            cc = int(center_irc.col)

            index_radius = 2
            try:
                while self.hu_a[ci + index_radius, cr, cc] > threshold_hu and \
                        self.hu_a[ci - index_radius, cr, cc] > threshold_hu:
                    index_radius += 1
            except IndexError:
                index_radius -= 1

            row_radius = 2
            try:
                while self.hu_a[ci, cr + row_radius, cc] > threshold_hu and \
                        self.hu_a[ci, cr - row_radius, cc] > threshold_hu:
                    row_radius += 1
            except IndexError:
                row_radius -= 1

            col_radius = 2
            try:
                while self.hu_a[ci, cr, cc + col_radius] > threshold_hu and \
                        self.hu_a[ci, cr, cc - col_radius] > threshold_hu:
                    col_radius += 1
            except IndexError:
                col_radius -= 1

            slice_tup = (
                slice(ci - index_radius, ci + index_radius + 1),
                slice(cr - row_radius, cr + row_radius + 1),
                slice(cc - col_radius, cc + row_radius + 1),  # sic: row_radius
            )
            boundingBox_a[slice_tup] = True
            centres.append([ci, cr, cc])
            radii.append([index_radius, row_radius, col_radius])

        mask_a = boundingBox_a & (self.hu_a > threshold_hu)

        return mask_a, boundingBox_a, centres, radii


def main(argv):
    if len(argv) != 4:
        sys.exit(__doc__)
    case_path, volume_path, out_dir = argv[1:]
    with open(case_path) as f:
        case = json.load(f)
    shape = tuple(case['shape'])
    voxels = np.fromfile(volume_path, dtype='<i2')
    if voxels.size != int(np.prod(shape)):
        sys.exit('{} holds {} voxels, shape {} needs {}'.format(
            volume_path, voxels.size, shape, int(np.prod(shape))))
    ct = BookCt(voxels.reshape(shape), case['origin_xyz'], case['spacing_xyz'], case['direction'])
    mask_a, box_a, centres, radii = ct.buildAnnotationMask(case['candidates'], case['threshold'])
    mask_a.astype(np.uint8).tofile(os.path.join(out_dir, 'mask.u8'))
    box_a.astype(np.uint8).tofile(os.path.join(out_dir, 'box.u8'))
    json.dump({'centres_irc': centres, 'radii': radii}, sys.stdout)
    print()


if __name__ == '__main__':
    main(sys.argv)
