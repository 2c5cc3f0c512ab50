#!/usr/bin/env python3
"""Write DICOM CT series with pydicom, read them back with SimpleITK's
ImageSeriesReader and dump what SimpleITK sees, for
shared/dicom/tests/sitk.rs.

Usage: dicom_crosscheck.py OUT_DIR

Each case is a folder OUT_DIR/<name>/ holding one series (plus, in some,
files the reader must skip: a non-image object, a DICOMDIR, an XML file).
OUT_DIR/manifest.json lists, per case: dir, series_uid, ts (transfer
syntax), tolerance (voxel difference allowed: 0, or for lossy JPEG one
stored step times its slope of 4, as IDCT implementations round
differently), size (x, y, z),
voxels (file of SimpleITK's voxels rounded half to even and clipped to
int16, little-endian, x fastest) and origin/spacing/direction as IEEE-754
bit patterns (u64), so the comparison does not depend on JSON float
parsing.
"""

import io
import json
import math
import os
import struct
import sys

import numpy as np
import pydicom
import SimpleITK as sitk
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    RLELossless,
    generate_uid,
)

RNG = np.random.default_rng(20261207)
ROWS, COLS, SLICES = 6, 5, 7


def ds_text(values):
    """DS strings (at most 16 characters each)."""
    return [f"{v:.6f}" for v in values]


def rotation(ax, ay, az):
    cx, sx, cy, sy, cz, sz = (math.cos(ax), math.sin(ax), math.cos(ay),
                              math.sin(ay), math.cos(az), math.sin(az))
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def slice_dataset(series_uid, study_uid, pos, iop, pixels, k, case):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = case.get("ts", ExplicitVRLittleEndian)
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.PatientID = "crosscheck"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 1
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = ds_text(pos)
    ds.ImageOrientationPatient = ds_text(iop)
    ds.PixelSpacing = ds_text(case.get("pixel_spacing", (0.7, 0.6)))
    ds.SliceThickness = "2.5"
    slope, intercept = case["rescale"](k)
    ds.RescaleSlope = f"{slope:g}"
    ds.RescaleIntercept = f"{intercept:g}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = case.get("bits_stored", bits)
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    ds.PixelData = pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()
    if meta.TransferSyntaxUID == RLELossless:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.compress(RLELossless, encoding_plugin="pydicom")
    elif "encode" in case:
        ds.PixelData = encapsulate([case["encode"](pixels)])
        ds["PixelData"].VR = "OB"
    return ds


def pillow(fmt, **options):
    """A frame encoder: Pillow writes the JPEG or JPEG 2000 codestream."""
    def encode(pixels):
        mode = "I;16" if pixels.dtype.itemsize == 2 else "L"
        rows, cols = pixels.shape
        out = io.BytesIO()
        Image.frombytes(mode, (cols, rows), pixels.tobytes()).save(out, format=fmt, **options)
        return out.getvalue()
    return encode


def sitk_recompress(folder, compressor):
    """Rewrites every slice with GDCM's encoder (its JPEG is lossless
    process 14, selection value 1); UIDs and geometry are kept."""
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        reader = sitk.ImageFileReader()
        reader.SetFileName(path)
        img = reader.Execute()
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetUseCompression(True)
        writer.SetCompressor(compressor)
        writer.SetFileName(path)
        writer.Execute(img)


def write_series(folder, case):
    series_uid, study_uid = generate_uid(), generate_uid()
    iop = list(case["iop"])
    row, col = np.array(iop[:3]), np.array(iop[3:])
    normal = np.cross(row, col)
    origin = np.array([-40.25, 12.5, -300.0])
    names = case.get("names", lambda k: f"slice{k:03d}.dcm")
    for k in range(SLICES):
        pos = origin + k * 2.5 * normal
        pixels = case["pixels"]()
        ds = slice_dataset(series_uid, study_uid, pos, iop, pixels, k, case)
        path = os.path.join(folder, names(k))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
    return series_uid


def write_distractors(folder, study_uid):
    """Files find_series must skip: an RT structure set (no pixels), a
    DICOMDIR-like directory record and an XML annotation."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTSTRUCT"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.save_as(os.path.join(folder, "rtstruct"), enforce_file_format=True)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.FileSetID = "CROSSCHECK"
    ds.save_as(os.path.join(folder, "DICOMDIR"), enforce_file_format=True)

    with open(os.path.join(folder, "annotation.xml"), "w") as f:
        f.write("<?xml version='1.0'?><LidcReadMessage/>\n")


def ints(dtype, lo, hi, shape=(ROWS, COLS)):
    return lambda: RNG.integers(lo, hi, size=shape, endpoint=True).astype(dtype)


def shuffled_name(k):
    order = [4, 0, 6, 2, 5, 1, 3]
    stem = f"z{order[k]:02d}"
    return os.path.join("a" if k % 2 else "b/c", stem if k % 3 else stem + ".dcm")


ROT = rotation(0.3, -0.2, 0.5)
FLAT = lambda k: (1.0, -1024.0)
CASES = {
    "axial": dict(iop=(1, 0, 0, 0, 1, 0), pixels=ints("<i2", -1024, 3000), rescale=lambda k: (1.0, 0.0)),
    "flipped": dict(iop=(-1, 0, 0, 0, 1, 0), pixels=ints("<i2", -2000, 2000), rescale=FLAT),
    "flipped_xy": dict(iop=(-1, 0, 0, 0, -1, 0), pixels=ints("<i2", -2000, 2000), rescale=FLAT),
    "rotated": dict(iop=list(ROT[:, 0]) + list(ROT[:, 1]), pixels=ints("<i2", -1000, 1000), rescale=FLAT,
                    pixel_spacing=(0.8, 0.55)),
    "shuffled": dict(iop=(1, 0, 0, 0, 1, 0), pixels=ints("<u2", 0, 4095), rescale=FLAT,
                     names=shuffled_name, distractors=True),
    "per_slice_rescale": dict(iop=(0, 1, 0, 0, 0, -1), pixels=ints("<i2", -3000, 3000),
                              rescale=lambda k: ([1.0, 0.5, 2.0, 1.25, 0.25, 1.0, 4.0][k],
                                                 [-1024.0, 0.0, -1000.0, 7.0, -3.0, 100.0, 0.0][k])),
    "unsigned_saturating": dict(iop=(1, 0, 0, 0, 1, 0), pixels=ints("<u2", 0, 65535), rescale=lambda k: (1.0, -1024.0)),
    "signed_12bit": dict(iop=(1, 0, 0, 0, 1, 0), pixels=ints("<i2", -2048, 2047), rescale=FLAT, bits_stored=12),
    "uint8": dict(iop=(1, 0, 0, 0, 1, 0), pixels=ints("u1", 0, 255), rescale=lambda k: (2.0, -100.0)),
    "implicit_vr": dict(iop=(1, 0, 0, 0, 1, 0), pixels=ints("<i2", -1024, 3000), rescale=FLAT, ts=ImplicitVRLittleEndian),
    "deflated": dict(iop=(1, 0, 0, 0, 1, 0), pixels=ints("<i2", -1024, 3000), rescale=FLAT, ts=DeflatedExplicitVRLittleEndian),
    # GDCM cannot decode pydicom's RLE of a 6×5 slice; 48×40 it can.
    "jpeg_baseline": dict(iop=(1, 0, 0, 0, 1, 0), pixels=ints("u1", 60, 190, (48, 40)), rescale=lambda k: (4.0, -400.0),
                          ts=JPEGBaseline8Bit, encode=pillow("JPEG", quality=90), tolerance=4),
    # Slope 1, intercept 0: SimpleITK must read the slice back as int16 to
    # write it as JPEG (an intercept would make it int32).
    "jpeg_lossless": dict(iop=(1, 0, 0, 0, 1, 0), pixels=ints("<i2", -1024, 3000, (48, 40)),
                          rescale=lambda k: (1.0, 0.0), recompress="JPEG"),
    "jpeg2000_lossless": dict(iop=(1, 0, 0, 0, 1, 0), pixels=ints("<u2", 0, 4095, (48, 40)), rescale=FLAT,
                              ts=JPEG2000Lossless, encode=pillow("JPEG2000", no_jp2=True)),
    "rle": dict(iop=(1, 0, 0, 0, 1, 0), pixels=ints("<i2", -1024, 3000, (48, 40)), rescale=FLAT, ts=RLELossless),
}


def bits(values):
    return [struct.unpack("<Q", struct.pack("<d", float(v)))[0] for v in values]


def read_back(folder, series_uid):
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, series_uid, False, True)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    # Float64 out: each slice's own slope/intercept applied exactly, so the
    # rounding to int16 happens here, in one known way.
    reader.SetOutputPixelType(sitk.sitkFloat64)
    img = reader.Execute()
    voxels = np.clip(np.round(sitk.GetArrayFromImage(img)), -32768, 32767).astype("<i2")
    return img, voxels, files


def main(out):
    manifest = []
    for name, case in CASES.items():
        folder = os.path.join(out, name)
        os.makedirs(folder, exist_ok=True)
        series_uid = write_series(folder, case)
        if "recompress" in case:
            sitk_recompress(folder, case["recompress"])
        if case.get("distractors"):
            write_distractors(folder, generate_uid())
        img, voxels, files = read_back(folder, series_uid)
        assert len(files) == SLICES, f"{name}: SimpleITK found {len(files)} files"
        voxels.tofile(os.path.join(out, name + ".voxels"))
        manifest.append(dict(
            dir=name, series_uid=series_uid, size=list(img.GetSize()),
            voxels=name + ".voxels", origin_bits=bits(img.GetOrigin()),
            spacing_bits=bits(img.GetSpacing()), direction_bits=bits(img.GetDirection()),
            ts=str(pydicom.dcmread(files[0]).file_meta.TransferSyntaxUID),
            tolerance=case.get("tolerance", 0),
        ))
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f)


if __name__ == "__main__":
    main(sys.argv[1])
