"""Writes a MetaImage CT volume (LUNA16's <seriesuid>.mhd) as a DICOM CT
series, one file per slice, the way LIDC-IDRI holds the same scan: the
SeriesInstanceUID is the file's stem, so LUNA16's CSVs apply unchanged.

    python scripts/mhd_to_dicom.py SCAN.mhd OUT_DIR [--shuffle] [--rescale]

Geometry as ITK reads it back: ImagePositionPatient = origin + k · spacing_z
· (direction column 3), ImageOrientationPatient = direction columns 1 and 2,
PixelSpacing = (spacing_y, spacing_x), as exact decimal strings where 16
characters allow. Voxels are stored as signed 16-bit with slope 1 and
intercept 0, or with --rescale as unsigned 16-bit with intercept -32768
(both give the same HU). --shuffle names the files in an order unrelated to
the slices (half without .dcm), as real exports do. Used by the tests
(tests/dicom.rs) and for trying the toolkit on DICOM without LIDC.
"""
import argparse
import os
import random

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def ds(value):
    """A DS string of at most 16 characters: exact when repr fits."""
    text = repr(float(value))
    if text.endswith(".0"):
        text = text[:-2]
    if len(text) <= 16:
        return text
    for digits in range(15, 0, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    raise ValueError(f"cannot write {value} as a DS")


def slice_dataset(image, series_uid, study_uid, k, pixels, rescale):
    direction = np.array(image.GetDirection()).reshape(3, 3)
    spacing = image.GetSpacing()
    origin = np.array(image.GetOrigin())
    position = origin + k * spacing[2] * direction[:, 2]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    d = Dataset()
    d.file_meta = meta
    d.SOPClassUID = CTImageStorage
    d.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    d.Modality = "CT"
    d.PatientID = "mhd_to_dicom"
    d.StudyInstanceUID = study_uid
    d.SeriesInstanceUID = series_uid
    d.SeriesNumber = 1
    d.InstanceNumber = k + 1
    d.ImagePositionPatient = [ds(v) for v in position]
    d.ImageOrientationPatient = [ds(v) for v in list(direction[:, 0]) + list(direction[:, 1])]
    d.PixelSpacing = [ds(spacing[1]), ds(spacing[0])]
    d.SliceThickness = ds(spacing[2])
    d.SamplesPerPixel = 1
    d.PhotometricInterpretation = "MONOCHROME2"
    d.Rows, d.Columns = pixels.shape
    d.BitsAllocated = d.BitsStored = 16
    d.HighBit = 15
    if rescale:
        stored = (pixels.astype(np.int32) + 32768).astype("<u2")
        d.PixelRepresentation = 0
        d.RescaleSlope, d.RescaleIntercept = "1", "-32768"
    else:
        stored = pixels.astype("<i2")
        d.PixelRepresentation = 1
        d.RescaleSlope, d.RescaleIntercept = "1", "0"
    d.PixelData = stored.tobytes()
    return d


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scan")
    parser.add_argument("out")
    parser.add_argument("--shuffle", action="store_true")
    parser.add_argument("--rescale", action="store_true")
    args = parser.parse_args()
    image = sitk.ReadImage(args.scan)
    voxels = sitk.GetArrayFromImage(image)
    series_uid = os.path.splitext(os.path.basename(args.scan))[0]
    study_uid = generate_uid()
    os.makedirs(args.out, exist_ok=True)
    names = [f"slice{k:04d}.dcm" for k in range(voxels.shape[0])]
    if args.shuffle:
        rng = random.Random(series_uid)
        ids = list(range(len(names)))
        rng.shuffle(ids)
        names = [f"IM{i:05d}" + (".dcm" if i % 2 else "") for i in ids]
    for k, name in enumerate(names):
        d = slice_dataset(image, series_uid, study_uid, k, voxels[k], args.rescale)
        d.save_as(os.path.join(args.out, name), enforce_file_format=True)


if __name__ == "__main__":
    main()
