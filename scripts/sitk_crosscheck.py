#!/usr/bin/env python3
"""Write MetaImage files with SimpleITK (and a few by hand), read them back
with SimpleITK, and dump what SimpleITK sees, for shared/tests/metaimage_sitk.rs.

Usage: sitk_crosscheck.py OUT_DIR

For each image OUT_DIR gets the image file(s), `<name>.voxels` (SimpleITK's
voxels as little-endian bytes, x fastest, channels interleaved) and one entry
in OUT_DIR/manifest.json: file, dtype, size, components, origin, spacing,
direction. Geometry floats are written as their IEEE-754 bit patterns
(u64), so the comparison is exact whatever the JSON parser's float rounding.
"""

import json
import math
import os
import struct
import sys

import numpy as np
import SimpleITK as sitk

RNG = np.random.default_rng(20240611)


def rotation(ax, ay, az):
    """A proper 3-D rotation with no symmetry (so transposes differ)."""
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return (rz @ ry @ rx).flatten().tolist()


def random_array(dtype, shape):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return (RNG.standard_normal(shape) * 800).astype(dtype)
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


def write_sitk(out, name, arr, spacing, origin, direction, compress, vector=False):
    img = sitk.GetImageFromArray(arr, isVector=vector)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(direction)
    sitk.WriteImage(img, os.path.join(out, name), useCompression=compress)
    return name


def write_by_hand(out, name, header_lines, files):
    with open(os.path.join(out, name), "wb") as f:
        f.write(("\n".join(header_lines) + "\n").encode())
        if isinstance(files, bytes):  # LOCAL data
            f.write(files)
    if isinstance(files, dict):
        for fname, data in files.items():
            with open(os.path.join(out, fname), "wb") as f:
                f.write(data)
    return name


def hand_written(out):
    names = []
    # Big-endian shorts with a non-symmetric direction (SimpleITK always writes little-endian).
    be = random_array("int16", (3, 4, 5))
    names.append(write_by_hand(out, "big_endian_short.mhd", [
        "ObjectType = Image", "NDims = 3", "BinaryData = True", "BinaryDataByteOrderMSB = True",
        "TransformMatrix = " + " ".join(repr(v) for v in rotation(0.3, -0.2, 1.1)),
        "Offset = -12.5 7.25 100.125", "ElementSpacing = 0.7 0.8 2.5", "DimSize = 5 4 3",
        "ElementType = MET_SHORT", "ElementDataFile = big_endian_short.raw",
    ], {"big_endian_short.raw": be.astype(">i2").tobytes()}))
    # Big-endian doubles in a LOCAL .mha, ElementByteOrderMSB spelling, ':' separators.
    bd = random_array("float64", (2, 3, 4))
    names.append(write_by_hand(out, "big_endian_double.mha", [
        "ObjectType: Image", "NDims: 3", "ElementByteOrderMSB: True", "Position: 1 2 3",
        "ElementSize: 0.5 0.25 3", "DimSize: 4 3 2", "ElementType: MET_DOUBLE", "ElementDataFile: LOCAL",
    ], bd.astype(">f8").tobytes()))
    # printf pattern, one file per slice.
    sl = random_array("uint16", (3, 4, 5))
    names.append(write_by_hand(out, "pattern_ushort.mhd", [
        "NDims = 3", "DimSize = 5 4 3", "ElementType = MET_USHORT", "ElementDataFile = pat%02d.raw 2 6 2",
    ], {f"pat{2 + 2 * k:02d}.raw": sl[k].astype("<u2").tobytes() for k in range(3)}))
    # LIST of slices.
    ls = random_array("int32", (2, 3, 4))
    names.append(write_by_hand(out, "list_int.mhd", [
        "NDims = 3", "DimSize = 4 3 2", "ElementType = MET_INT", "ElementDataFile = LIST", "list_a.raw", "list_b.raw",
    ], {"list_a.raw": ls[0].astype("<i4").tobytes(), "list_b.raw": ls[1].astype("<i4").tobytes()}))
    # HeaderSize -1: data is the tail of a file with a preamble.
    tail = random_array("int16", (2, 2, 3))
    names.append(write_by_hand(out, "tail_short.mhd", [
        "NDims = 3", "DimSize = 3 2 2", "HeaderSize = -1", "ElementType = MET_SHORT", "ElementDataFile = tail.raw",
    ], {"tail.raw": b"preamble bytes" + tail.astype("<i2").tobytes()}))
    return names


def bits(values):
    return [struct.unpack("<Q", struct.pack("<d", float(v)))[0] for v in values]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    aniso = (0.6640625, 0.75, 2.5)
    flip = (-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0)
    ident = (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)
    rot = tuple(rotation(0.4, 0.25, -0.9))
    names = [
        write_sitk(out, "short_identity.mhd", random_array("int16", (4, 5, 6)), aniso, (-170.2, -180.0, -310.75), ident, False),
        write_sitk(out, "short_flipped_z.mhd", random_array("int16", (4, 5, 6)), aniso, (170.2, 180.0, -310.75), flip, True),
        write_sitk(out, "float_rotated.mha", random_array("float32", (3, 4, 5)), (0.9, 1.1, 1.7), (1.5, -2.5, 3.5), rot, False),
        write_sitk(out, "double_rotated_z.mha", random_array("float64", (3, 4, 5)), (0.3, 0.2, 0.1), (0, 0, 0), rot, True),
        write_sitk(out, "uchar.mhd", random_array("uint8", (3, 4, 5)), (1, 1, 1), (0, 0, 0), ident, False),
        write_sitk(out, "ushort_z.mhd", random_array("uint16", (3, 4, 5)), aniso, (0, 0, 0), flip, True),
        write_sitk(out, "int_z.mha", random_array("int32", (3, 4, 5)), aniso, (9, 8, 7), rot, True),
        write_sitk(out, "char.mhd", random_array("int8", (2, 3, 4)), aniso, (0, 0, 0), ident, False),
        write_sitk(out, "uint.mhd", random_array("uint32", (2, 3, 4)), aniso, (0, 0, 0), ident, False),
        write_sitk(out, "two_d.mhd", random_array("int16", (7, 9)), (0.5, 1.25), (-3.0, 4.5),
                   (math.cos(0.5), -math.sin(0.5), math.sin(0.5), math.cos(0.5)), False),
        write_sitk(out, "rgb_2d.mha", random_array("uint8", (4, 6, 3)), (0.25, 0.5), (1, 2), (1, 0, 0, 1), True, vector=True),
        write_sitk(out, "vector_3d.mhd", random_array("float32", (2, 3, 4, 2)), aniso, (1, 2, 3), rot, False, vector=True),
    ] + hand_written(out)

    manifest = []
    for name in names:
        img = sitk.ReadImage(os.path.join(out, name))
        arr = sitk.GetArrayFromImage(img)
        voxels = name + ".voxels"
        with open(os.path.join(out, voxels), "wb") as f:
            f.write(np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes())
        manifest.append({
            "file": name,
            "voxels": voxels,
            "dtype": arr.dtype.name,
            "size": list(img.GetSize()),
            "components": img.GetNumberOfComponentsPerPixel(),
            "origin_bits": bits(img.GetOrigin()),
            "spacing_bits": bits(img.GetSpacing()),
            "direction_bits": bits(img.GetDirection()),
        })
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
