#!/usr/bin/env python3
"""Make the book's annotations_with_malignancy.csv from LIDC-IDRI's
radiologist reads, through pylidc, for the DICOM series found on disk.

    python scripts/lidc_annotations.py --data DIR --out FILE
        [--xml] [--annotations LUNA_annotations.csv] [--min-readers N]

The book's chapter 14 notebook (generate_annotations_with_malignancy.ipynb
in deep-learning-with-pytorch/dlwpt-code) groups each scan's reader marks
into nodules with pylidc and votes on malignancy; this script applies its
rules to every DICOM series under DIR, with the geometry read from the
files themselves (not from pylidc's ~/.pylidcrc path setting).

Where the reads come from (the same pylidc code runs on both):
  default  pylidc's own SQLite database of all of LIDC's reads (1018
           scans), looked up by each series' SeriesInstanceUID. The disk's
           slice positions and pixel spacing must agree with the ones
           pylidc stored, or the series is skipped with a warning.
  --xml    LIDC's XML files (LidcReadMessage) in each series' folder,
           loaded into an in-memory database with pylidc's schema, so the
           same Scan/Annotation/Contour objects and methods apply. A
           contour sits on the slice its imageSOP_UID names (its
           imageZposition when that UID is not in the series).

The rules:
  * Nodules >= 3 mm only: a reader's unblindedReadNodule counts when it
    carries characteristics with a malignancy rating; marks without them
    (nodules < 3 mm, a single point) and nonNodule marks are ignored, as
    in pylidc's database.
  * A nodule is a cluster of marks from pylidc's
    Scan.cluster_annotations() (marks whose contours come within the slice
    thickness of each other, in voxel units, tightened until no cluster has
    more than 4 marks). Clusters with fewer than --min-readers marks
    (default 1: all) are left out; LUNA16's own rule is 3.
  * mal_details: the cluster's malignancy votes (1-5) in reader order;
    len_mal_details: how many. mal_bool: True when at least two votes are
    4 or 5 (the book's "len([a.malignancy ... if a.malignancy >= 4]) >= 2").
  * bboxLow/High: the mean over the cluster's marks of pylidc's
    bbox_matrix() (inclusive voxel indices), each rounded half to even and
    taken to patient millimetres (LPS, as LUNA16's .mhd files): position of
    the slice + column * PixelSpacing[1] * row direction + row *
    PixelSpacing[0] * column direction, as the book's
    TransformIndexToPhysicalPoint on the .mhd.
  * Without --annotations, one row per cluster: coordX/Y/Z the mean of the
    readers' nodule centres of mass (pylidc's boolean_mask(), unrounded)
    in millimetres, diameter_mm the mean of the readers'
    volume-equivalent diameters (the sphere of that mask's volume). That is
    how LUNA16's annotations.csv was made from the same reads: on the
    book's 1,182 nodules, LUNA16's centres agree to 0.07 mm in x-y and
    0.04 mm in z, its diameters to 0.11 mm (medians; 90 % within 0.18,
    0.15 and 0.32 mm), and --min-readers 3 finds 1,184 nodules in the
    600 series to LUNA16's 1,186.
  * With --annotations (LUNA16's annotations.csv), exactly the book's
    output: the rows of that file whose centre lies within half their
    diameter_mm of a cluster's centre (the rounded mean of pylidc's
    centroids, in millimetres), keeping their coordX/Y/Z and diameter_mm
    and taking the first such cluster's votes and box. Rows with no
    cluster, or whose series is not on disk, are left out (the book's
    dropna).

Output: the book's 14 columns, one row per nodule, sorted by seriesuid,
then coordZ, coordY, coordX; written to a temporary file and renamed, so
FILE is never half-written. Progress and warnings go to stderr.

Bad input is one line naming the file: a malformed XML file, a series that
is not in pylidc's database, a series whose slices disagree with pylidc's,
a series with no LIDC XML, a DICOM file that cannot be read are warnings,
and that file or series is skipped. The exit status is 1 when --data is
not a folder, --annotations cannot be read, no series is found, or every
series found was skipped; 2 for bad arguments; else 0.

Needs pylidc (scripts/setup.sh installs it) with numpy, scipy, pydicom,
SQLAlchemy; the shims below let pylidc 0.2.3 run on NumPy 2 and without
setuptools' pkg_resources.
"""

import argparse
import contextlib
import csv
import importlib.util
import math
import os
import sys
import tempfile
import types
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np

PROG = "lidc_annotations"
HEADER = [
    "seriesuid", "coordX", "coordY", "coordZ", "diameter_mm", "mal_bool",
    "mal_details", "bboxLowX", "bboxLowY", "bboxLowZ", "bboxHighX",
    "bboxHighY", "bboxHighZ", "len_mal_details",
]
FEATURES = (
    "subtlety", "internalStructure", "calcification", "sphericity", "margin",
    "lobulation", "spiculation", "texture", "malignancy",
)
# The disk must match pylidc's stored geometry this closely (mm) for the
# database's voxel indices to mean the same voxels.
Z_TOLERANCE_MM = 0.01
SPACING_TOLERANCE_MM = 1e-4
DICOM_TAGS = [
    "SeriesInstanceUID", "StudyInstanceUID", "PatientID", "SOPInstanceUID",
    "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
    "SliceThickness", "InstanceNumber", "Modality",
]


class InputError(Exception):
    """A problem with one input, said in one line that names it."""


def say(message):
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def warn(message):
    say(f"warning: {message}")


# ---------------------------------------------------------------- pylidc


def import_pylidc():
    """pylidc 0.2.3 with what newer libraries dropped put back."""
    # np.int/np.float went in NumPy 1.24 (np.bool too, until 2.0); pylidc's
    # Contour.to_matrix and Annotation.boolean_mask still use them.
    for name, kind in (("int", int), ("float", float), ("bool", bool)):
        try:
            getattr(np, name)
        except AttributeError:
            setattr(np, name, kind)
    os.environ.setdefault("MPLBACKEND", "Agg")  # pylidc imports pyplot
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _shim_pkg_resources()
        _shim_scipy_morphology()
        try:
            import pylidc
        except ImportError as e:
            raise InputError(f"cannot import pylidc ({e}): scripts/setup.sh installs it, "
                             "or pip install pylidc") from None
    return pylidc


def _shim_scipy_morphology():
    """pylidc imports scipy.ndimage.morphology, deprecated since SciPy 1.8."""
    try:
        import scipy.ndimage.morphology  # noqa: F401
    except ImportError:
        import scipy.ndimage

        sys.modules["scipy.ndimage.morphology"] = scipy.ndimage


def _shim_pkg_resources():
    """pylidc finds its database with pkg_resources, which setuptools 81
    removed and Python 3.12 venvs lack."""
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        module = types.ModuleType("pkg_resources")

        def resource_filename(package, name):
            spec = importlib.util.find_spec(package)
            return os.path.join(os.path.dirname(spec.origin), name)

        module.resource_filename = resource_filename
        sys.modules["pkg_resources"] = module


# ---------------------------------------------------------- DICOM on disk


@dataclass
class Slice:
    path: str
    sop_uid: str
    position: np.ndarray
    instance: float


@dataclass
class Series:
    """One CT series on disk: slices sorted by z as pylidc sorts them."""

    uid: str
    study_uid: str
    patient_id: str
    folder: str
    orientation: np.ndarray
    spacing_rc: tuple  # PixelSpacing: between rows, between columns
    thickness: float
    slices: list

    @property
    def zvals(self):
        return np.array([s.position[2] for s in self.slices])

    @property
    def slice_spacing(self):
        return float(np.median(np.diff(self.zvals))) if len(self.slices) > 1 else self.thickness

    @property
    def voxel_mm3(self):
        return self.spacing_rc[0] * self.spacing_rc[1] * self.slice_spacing

    def xyz(self, i, j, k):
        """Patient millimetres of voxel index (row i, column j, slice k);
        a fractional k lies between its two slices."""
        last = len(self.slices) - 1
        k = min(max(float(k), 0.0), float(last))
        k0 = min(int(math.floor(k)), max(last - 1, 0))
        frac = k - k0
        origin = self.slices[k0].position
        if frac:
            origin = origin * (1 - frac) + self.slices[k0 + 1].position * frac
        column_step = self.orientation[:3] * self.spacing_rc[1]
        row_step = self.orientation[3:] * self.spacing_rc[0]
        return origin + j * column_step + i * row_step

    def xyz_rounded(self, ijk):
        """The book's TransformIndexToPhysicalPoint of rounded indices."""
        i, j, k = (int(np.round(v)) for v in ijk)
        return self.xyz(i, j, k)


def read_header(path, pydicom):
    """The slice's header, None when the file is not DICOM."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=True, specific_tags=DICOM_TAGS)
    except pydicom.errors.InvalidDicomError:
        return None
    except Exception as e:  # a truncated or corrupt DICOM file
        warn(f"{path}: unreadable DICOM ({type(e).__name__}: {e}); skipped")
        return None


def is_composite(header):
    """Whether the file claims to be an image, report or the like, which
    has a series; a DICOMDIR rightly has none."""
    meta = header.file_meta or {}
    sop_class = str(meta.get("MediaStorageSOPClassUID", ""))
    return sop_class.startswith("1.2.840.10008.5.1.4.1.1.")


def find_series(root):
    """uid → Series for every CT series under root."""
    import pydicom

    found = {}
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(".xml"):
                continue
            path = os.path.join(folder, name)
            header = read_header(path, pydicom)
            if header is None:
                continue
            if "SeriesInstanceUID" in header:
                found.setdefault(str(header.SeriesInstanceUID), []).append((path, header))
            elif is_composite(header):
                warn(f"{path}: DICOM object without a SeriesInstanceUID (truncated?); skipped")
    series, other = {}, 0
    for uid, slices in sorted(found.items()):
        if str(slices[0][1].get("Modality", "CT")) != "CT":
            other += 1  # LIDC's chest X-rays, with reads of their own
            continue
        try:
            series[uid] = build_series(uid, slices)
        except InputError as e:
            warn(f"{e}; skipped")
    if other:
        say(f"passed over {other} series that are not CT")
    return series


def build_series(uid, slices):
    folders = sorted({os.path.dirname(p) for p, _ in slices})
    if len(folders) > 1:
        raise InputError(f"series {uid} is on disk twice: {folders[0]} and {folders[1]}")
    first = slices[0][1]
    missing = [t for t in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")
               if t not in first]
    if missing:
        raise InputError(f"{slices[0][0]}: series {uid} is not a CT volume (no {missing[0]})")
    try:
        items = [Slice(p, str(h.SOPInstanceUID),
                       np.array([float(v) for v in h.ImagePositionPatient]),
                       float(h.get("InstanceNumber") or 0)) for p, h in slices]
        spacing = tuple(float(v) for v in first.PixelSpacing)
        orientation = np.array([float(v) for v in first.ImageOrientationPatient])
    except (AttributeError, ValueError, TypeError) as e:
        raise InputError(f"{folders[0]}: series {uid} has a bad geometry tag ({e})") from None
    items = unique_z(items)
    thickness = first.get("SliceThickness")
    # pylidc clusters within the slice thickness; the spacing stands in
    # where the tag is absent.
    if thickness in (None, "") and len(items) > 1:
        thickness = np.median(np.diff([s.position[2] for s in items]))
    return Series(uid, str(first.get("StudyInstanceUID", "")), str(first.get("PatientID", "")),
                  folders[0], orientation, spacing, float(thickness or 1.0), items)


def unique_z(slices):
    """Sorted by z; of slices sharing a z, the lower InstanceNumber stays,
    as pylidc's load_all_dicom_images keeps it."""
    by_z = {}
    for s in sorted(slices, key=lambda s: s.instance):
        by_z.setdefault(float(s.position[2]), s)
    return [by_z[z] for z in sorted(by_z)]


# ------------------------------------------------------------- LIDC XML


@dataclass
class Roi:
    z: float
    sop_uid: str
    inclusion: bool
    points: list  # (x, y) = (column, row)


@dataclass
class Read:
    """One reader's mark of one nodule >= 3 mm."""

    nodule_id: str
    features: dict
    rois: list = field(default_factory=list)


def local(tag):
    return tag.rsplit("}", 1)[-1]


def children(elem, name):
    return [c for c in elem if local(c.tag) == name]


def text_of(elem, name, path):
    found = children(elem, name)
    if not found or found[0].text is None:
        raise InputError(f"{path}: <{local(elem.tag)}> lacks <{name}>")
    return found[0].text.strip()


def read_lidc_xml(path):
    """(SeriesInstanceUid or None, reads in document order, marks < 3 mm
    left out); None when the file is no LidcReadMessage (LIDC's chest
    X-ray reads are IdriReadMessage)."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise InputError(f"{path}: malformed XML ({e})") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    if local(root.tag) != "LidcReadMessage":
        return None
    header = children(root, "ResponseHeader")
    uid = children(header[0], "SeriesInstanceUid") if header else []
    series_uid = uid[0].text.strip() if uid and uid[0].text else None
    reads, small = [], 0
    for session in children(root, "readingSession"):
        for nodule in children(session, "unblindedReadNodule"):
            read = parse_nodule(nodule, path)
            if read is None:
                small += 1
            else:
                reads.append(read)
    return series_uid, reads, small


def parse_nodule(nodule, path):
    """A Read, or None for a mark without a malignancy rating (< 3 mm)."""
    characteristics = children(nodule, "characteristics")
    features = {}
    for name in FEATURES:
        found = children(characteristics[0], name) if characteristics else []
        if found and found[0].text and found[0].text.strip():
            features[name] = parse_int(found[0].text, name, path)
    if "malignancy" not in features:
        return None
    read = Read(text_of(nodule, "noduleID", path), features)
    for roi in children(nodule, "roi"):
        points = [(parse_int(text_of(e, "xCoord", path), "xCoord", path),
                   parse_int(text_of(e, "yCoord", path), "yCoord", path))
                  for e in children(roi, "edgeMap")]
        if not points:
            raise InputError(f"{path}: a <roi> of {read.nodule_id} has no <edgeMap>")
        read.rois.append(Roi(parse_float(text_of(roi, "imageZposition", path), path),
                             text_of(roi, "imageSOP_UID", path),
                             text_of(roi, "inclusion", path).upper() == "TRUE", points))
    if not read.rois:
        raise InputError(f"{path}: {read.nodule_id} has characteristics but no <roi>")
    return read


def parse_int(text, name, path):
    try:
        return int(text.strip())
    except ValueError:
        raise InputError(f"{path}: <{name}> is {text.strip()!r}, not an integer") from None


def parse_float(text, path):
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{path}: <imageZposition> is {text!r}, not a number") from None


# ------------------------------------------------------ sources of reads


class DatabaseSource:
    """pylidc's shipped database."""

    def __init__(self, pl):
        self.pl = pl

    def scan(self, series):
        pl = self.pl
        scan = pl.query(pl.Scan).filter(pl.Scan.series_instance_uid == series.uid).first()
        where = f"{series.folder}: series {series.uid}"
        if scan is None:
            raise InputError(f"{where} is not in pylidc's LIDC database")
        zvals, disk = scan.slice_zvals, series.zvals
        if len(zvals) != len(disk) or np.abs(zvals - disk).max() > Z_TOLERANCE_MM:
            span = f"{len(zvals)} from {zvals[0]} to {zvals[-1]}" if len(zvals) else "none"
            raise InputError(f"{where} has {len(disk)} slices from z {disk[0]} to {disk[-1]}, "
                             f"pylidc's has {span}")
        if abs(scan.pixel_spacing - series.spacing_rc[0]) > SPACING_TOLERANCE_MM:
            raise InputError(f"{where} has pixel spacing {series.spacing_rc[0]}, "
                             f"pylidc's {scan.pixel_spacing}")
        return scan


class XmlSource:
    """The LIDC XML beside each series, in an in-memory database with
    pylidc's schema: rows go in as pylidc's own database holds them."""

    def __init__(self, pl):
        from sqlalchemy import create_engine
        from sqlalchemy.orm import sessionmaker

        self.pl = pl
        engine = create_engine("sqlite://")
        pl.Scan.metadata.create_all(engine)
        self.session = sessionmaker(bind=engine)()

    def scan(self, series):
        reads = self.reads(series)
        pl, session = self.pl, self.session
        scan_id = self.insert(pl.Scan, study_instance_uid=series.study_uid,
                              series_instance_uid=series.uid, patient_id=series.patient_id,
                              slice_thickness=series.thickness, pixel_spacing=series.spacing_rc[0])
        for z in series.zvals:
            self.insert(pl.Zval, scan_id=scan_id, val=float(z))
        by_sop = {s.sop_uid: s for s in series.slices}
        for read in reads:
            annotation_id = self.insert(pl.Annotation, scan_id=scan_id,
                                        _nodule_id=read.nodule_id, **read.features)
            for roi in read.rois:
                on_disk = by_sop.get(roi.sop_uid)
                self.insert(pl.Contour, annotation_id=annotation_id, inclusion=roi.inclusion,
                            image_z_position=float(on_disk.position[2]) if on_disk else roi.z,
                            dicom_file_name=os.path.basename(on_disk.path) if on_disk else "",
                            coords="\n".join(f"{x},{y}" for x, y in roi.points))
        session.commit()
        return session.query(pl.Scan).filter(pl.Scan.series_instance_uid == series.uid).one()

    def insert(self, model, **values):
        result = self.session.execute(model.__table__.insert().values(**values))
        return result.inserted_primary_key[0]

    def reads(self, series):
        """The reads of every LIDC XML file in the series' folder, files in
        name order; a bad file is a warning and is left out."""
        names = sorted(n for n in os.listdir(series.folder) if n.lower().endswith(".xml"))
        reads, used, small, problems = [], 0, 0, []
        for name in names:
            path = os.path.join(series.folder, name)
            try:
                parsed = read_lidc_xml(path)
            except InputError as e:
                problems.append(str(e))
                continue
            if parsed is None:
                continue
            uid, file_reads, file_small = parsed
            if uid is not None and uid != series.uid:
                problems.append(f"{path}: reads series {uid}, not {series.uid} beside it")
                continue
            reads += file_reads
            small += file_small
            used += 1
        if not used:
            # One line for the series: its only XML's problem, when it had one.
            raise InputError(f"{'; '.join(problems)}; series {series.uid}" if problems else
                             f"{series.folder}: no LIDC XML for series {series.uid}")
        for problem in problems:
            warn(f"{problem}; file skipped")
        if small:
            say(f"{series.uid}: left out {small} of the reads, "
                "nodules < 3 mm (no characteristics)")
        return reads


# ---------------------------------------------------------------- rules


@dataclass
class Nodule:
    """One cluster of marks, in the output's terms."""

    centre: np.ndarray
    diameter: float
    book_centre: np.ndarray
    votes: list
    bbox_low: np.ndarray
    bbox_high: np.ndarray

    @property
    def malignant(self):
        return sum(v >= 4 for v in self.votes) >= 2


def nodules(scan, series, min_readers):
    # verbose=False: the book's run printed pylidc's warning to stdout; it
    # is ours to say, on stderr, below.
    clusters = scan.cluster_annotations(verbose=False)
    if any(len(c) > 4 for c in clusters):
        warn(f"{series.uid}: some marks are too close to split into clusters of at most 4 "
             "(as the book's run warned for 13 scans); kept as pylidc groups them")
    return [cluster_nodule(c, series) for c in clusters if len(c) >= min_readers]


def cluster_nodule(cluster, series):
    centroid = np.mean([a.centroid for a in cluster], 0)
    bbox = np.mean([a.bbox_matrix() for a in cluster], 0).T
    masses = [mask_centre_and_volume(a) for a in cluster]
    centre = np.mean([series.xyz(*ijk) for ijk, _ in masses], 0)
    volumes = [voxels * series.voxel_mm3 for _, voxels in masses]
    diameter = np.mean([(6 * v / math.pi) ** (1 / 3) for v in volumes])
    return Nodule(centre, float(diameter), series.xyz_rounded(centroid),
                  [int(a.malignancy) for a in cluster],
                  series.xyz_rounded(bbox[0]), series.xyz_rounded(bbox[1]))


def mask_centre_and_volume(annotation):
    """Centre of mass (fractional voxel index) and voxel count of the
    reader's nodule; its contour pixels join in when nothing lies inside
    them (a nodule one or two pixels wide)."""
    from scipy import ndimage

    mask = annotation.boolean_mask()
    if not mask.any():
        mask = annotation.boolean_mask(include_contour_points=True)
    offset = annotation.bbox_matrix()[:, 0]
    return np.array(ndimage.center_of_mass(mask)) + offset, int(mask.sum())


def cluster_rows(uid, found):
    return [row(uid, n.centre, n.diameter, n) for n in found]


def luna_rows(uid, found, luna):
    """The book's match: each annotations.csv row of the series takes the
    first cluster whose rounded centre is within half its diameter."""
    rows = []
    for centre, diameter in luna.get(uid, []):
        for n in found:
            if np.linalg.norm(centre - n.book_centre) / diameter < 0.5:
                rows.append(row(uid, centre, diameter, n))
                break
    return rows


def row(uid, centre, diameter, n):
    return [uid, *(float(v) for v in centre), float(diameter), n.malignant, n.votes,
            *(float(v) for v in n.bbox_low), *(float(v) for v in n.bbox_high), len(n.votes)]


def read_luna(path):
    """seriesuid → [(centre, diameter_mm)] of LUNA16's annotations.csv."""
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            need = ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"]
            if reader.fieldnames is None or any(c not in reader.fieldnames for c in need):
                raise InputError(f"{path}: not LUNA16's annotations.csv (needs {','.join(need)})")
            luna = {}
            for line, r in enumerate(reader, start=2):
                try:
                    centre = np.array([float(r[c]) for c in need[1:4]])
                    luna.setdefault(r["seriesuid"], []).append((centre, float(r["diameter_mm"])))
                except (TypeError, ValueError):
                    raise InputError(f"{path}:{line}: a coordinate or diameter "
                                     "is not a number") from None
            return luna
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None


# --------------------------------------------------------------- output


def write_csv(path, rows):
    """Sorted rows to path, atomically (temporary file in the same folder,
    flushed, renamed)."""
    rows = sorted(rows, key=lambda r: (r[0], r[3], r[2], r[1]))
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".lidc_annotations.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", newline="") as f:
            out = csv.writer(f, lineterminator="\n")
            out.writerow(HEADER)
            for r in rows:
                out.writerow([text(v) for v in r])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return len(rows)


def text(value):
    """pandas' spelling: True/False, [4, 2, 4, 2], shortest float repr."""
    if isinstance(value, float):
        return repr(value)
    return str(value)


# ----------------------------------------------------------------- main


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="lidc_annotations.py",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, metavar="DIR",
                        help="folder searched (recursively) for DICOM series, e.g. LIDC-IDRI/")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="the CSV to write (annotations_with_malignancy.csv)")
    parser.add_argument("--xml", action="store_true",
                        help="read the LIDC XML beside each series instead of pylidc's database")
    parser.add_argument("--annotations", metavar="CSV",
                        help="LUNA16's annotations.csv: write its matched rows, as the book did, "
                             "instead of one row per cluster")
    parser.add_argument("--min-readers", type=int, default=1, metavar="N",
                        help="leave out clusters marked by fewer than N readers (default 1; "
                             "LUNA16 used 3)")
    args = parser.parse_args(argv)
    if not 1 <= args.min_readers <= 4:
        parser.error("--min-readers must be 1 to 4")
    return args


def run(args):
    if not os.path.isdir(args.data):
        raise InputError(f"{args.data}: no such folder (--data)")
    out_folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_folder):
        raise InputError(f"{out_folder}: no such folder (--out)")
    luna = read_luna(args.annotations) if args.annotations else None
    pl = import_pylidc()
    source = XmlSource(pl) if args.xml else DatabaseSource(pl)
    say(f"looking for DICOM series under {args.data}")
    series = find_series(args.data)
    if not series:
        raise InputError(f"{args.data}: no DICOM CT series found")
    rows, done = [], 0
    for k, (uid, s) in enumerate(sorted(series.items()), start=1):
        try:
            scan = source.scan(s)
            found = nodules(scan, s, args.min_readers)
        except InputError as e:
            warn(f"{e}; skipped")
            continue
        new = luna_rows(uid, found, luna) if luna is not None else cluster_rows(uid, found)
        say(f"[{k}/{len(series)}] {uid}: {len(scan.annotations)} marks, "
            f"{len(found)} nodules, {len(new)} rows")
        rows += new
        done += 1
    if not done:
        raise InputError(f"{args.data}: every series found was skipped; {args.out} not written")
    count = write_csv(args.out, rows)
    say(f"wrote {args.out}: {count} nodules from {done} of {len(series)} series")


def main(argv=None):
    args = parse_args(argv)
    try:
        run(args)
    except InputError as e:
        say(f"error: {e}")
        return 1
    except OSError as e:
        say(f"error: {e.filename or args.out}: {e.strerror}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
