//! Every refusal: a series written wrong in one way must fail with one
//! error naming the series (or file) and the reason, never a volume.

use dicom_series::{find_series, read_series, read_series_dir, DicomError};

use crate::write::{axial_series, write_series, Encoding, Slice};

/// Writes `slices` into a fresh folder and returns the error reading them.
fn refused(slices: &[Slice]) -> DicomError {
    let dir = tempfile::tempdir().unwrap();
    write_series(dir.path(), slices);
    match read_series_dir(dir.path()) {
        Ok(v) => panic!("read a volume of shape {:?} from a bad series", v.shape),
        Err(e) => e,
    }
}

fn assert_series_error(e: &DicomError, reason: &str) {
    let text = e.to_string();
    assert!(
        matches!(e, DicomError::Series { series_uid, .. } if series_uid == "1.2.3.4.5"),
        "not a series error: {text}"
    );
    assert!(text.contains(reason), "{text:?} does not say {reason:?}");
}

fn assert_file_error(e: &DicomError, file: &str, reason: &str) {
    let text = e.to_string();
    assert!(
        matches!(e, DicomError::File { path, .. } if path.ends_with(file)),
        "not an error about {file}: {text}"
    );
    assert!(text.contains(reason), "{text:?} does not say {reason:?}");
}

#[test]
fn a_dangling_link_beside_a_series_is_passed_over() {
    let dir = tempfile::tempdir().unwrap();
    write_series(dir.path(), &axial_series(3));
    std::os::unix::fs::symlink(dir.path().join("gone.dcm"), dir.path().join("link.dcm")).unwrap();
    assert_eq!(read_series_dir(dir.path()).unwrap().shape, [3, 4, 3]);
}

#[test]
fn a_valid_series_reads() {
    let dir = tempfile::tempdir().unwrap();
    let mut slices = axial_series(3);
    slices[1].slope = 2.0;
    slices.reverse();
    write_series(dir.path(), &slices);
    let vol = read_series_dir(dir.path()).unwrap();
    assert_eq!(vol.shape, [3, 4, 3]);
    assert_eq!(vol.geometry.origin, [-10.0, 20.0, -100.0]);
    assert_eq!(vol.geometry.spacing, [0.5, 0.75, 2.0]);
    assert_eq!(vol.get([0, 0, 1]), 37 - 200 - 1024);
    assert_eq!(
        vol.get([1, 0, 1]),
        2 * (37 - 200) - 1024,
        "slope of slice 1"
    );
}

#[test]
fn mixed_orientations_are_refused() {
    let mut slices = axial_series(4);
    slices[2].orientation = [0.0, 1.0, 0.0, 1.0, 0.0, 0.0];
    assert_series_error(&refused(&slices), "mixed orientations");
}

#[test]
fn mixed_pixel_spacing_is_refused() {
    let mut slices = axial_series(4);
    slices[3].pixel_spacing = [0.75, 0.6];
    assert_series_error(&refused(&slices), "mixed pixel spacing");
}

#[test]
fn mixed_sizes_are_refused() {
    let mut slices = axial_series(4);
    slices[1].rows = 5;
    assert_series_error(&refused(&slices), "mixed slice sizes");
}

#[test]
fn a_missing_slice_is_refused() {
    let mut slices = axial_series(6);
    slices.remove(3);
    assert_series_error(&refused(&slices), "missing slice");
}

#[test]
fn duplicate_positions_are_refused() {
    let mut slices = axial_series(4);
    slices[2].position = slices[1].position;
    assert_series_error(&refused(&slices), "duplicate slice position");
}

#[test]
fn gantry_tilt_is_refused() {
    // Each slice 2 mm up and 0.35 mm along y: a 10° tilt.
    let mut slices = axial_series(4);
    for (k, s) in slices.iter_mut().enumerate() {
        s.position[1] += 0.35 * k as f64;
    }
    assert_series_error(&refused(&slices), "gantry tilt");
}

#[test]
fn multi_frame_objects_are_refused() {
    let mut slices = axial_series(2);
    slices[0].frames = Some(2);
    slices[0].pixels = Some(vec![0; 24]);
    assert_file_error(&refused(&slices), "slice0.dcm", "multi-frame");
}

#[test]
fn non_ct_modality_is_refused() {
    let mut slices = axial_series(3);
    slices[1].modality = "MR".into();
    assert_file_error(&refused(&slices), "slice1.dcm", "not CT");
}

#[test]
fn a_truncated_file_refuses_its_series_naming_it_and_holds_up_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let slices = axial_series(3);
    for sub in ["a", "b"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    write_series(&dir.path().join("a"), &slices);
    let mut other = axial_series(2);
    for s in &mut other {
        s.series_uid = "1.2.3.4.6".into();
    }
    write_series(&dir.path().join("b"), &other);
    let path = dir.path().join("a/slice2.dcm");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 7]).unwrap();

    let found = find_series(dir.path()).unwrap();
    assert_eq!(found.len(), 2);
    let (bad, good) = (&found[0], &found[1]);
    assert_eq!(
        bad.files.len(),
        3,
        "the broken file is still one of its files"
    );
    assert_eq!(bad.unreadable.len(), 1);
    assert!(good.unreadable.is_empty());
    assert_eq!(read_series(good).unwrap().shape, [2, 4, 3]);
    let e = read_series(bad).unwrap_err();
    assert_series_error(&e, "1 of its 3 files cannot be read; the first: ");
    let text = e.to_string();
    assert!(text.contains("a/slice2.dcm: truncated"), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
}

#[test]
fn a_file_broken_before_its_series_uid_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    write_series(dir.path(), &axial_series(3));
    let path = dir.path().join("slice1.dcm");
    let bytes = std::fs::read(&path).unwrap();
    // Into the dataset, just before (0020,000E)'s header: which series it
    // is one slice of cannot be told, so nothing is read as if it were whole.
    let uid_at = bytes.windows(9).position(|w| w == b"1.2.3.4.5").unwrap();
    assert!(uid_at > 200, "the UID is in the dataset");
    std::fs::write(&path, &bytes[..uid_at - 8]).unwrap();
    let e = find_series(dir.path()).unwrap_err();
    assert_file_error(&e, "slice1.dcm", "truncated");
}

#[test]
fn an_absurd_element_length_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = Slice::default().encode(0);
    // The pixel data's 32-bit length, the last element's header: 4 GiB.
    let at = bytes.len() - 24 - 4;
    bytes[at..at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    std::fs::write(dir.path().join("bad.dcm"), &bytes).unwrap();
    let found = find_series(dir.path()).unwrap();
    assert!(
        found[0].unreadable[0].contains("bad.dcm: truncated"),
        "{found:?}"
    );
    assert_series_error(&read_series(&found[0]).unwrap_err(), "bad.dcm: truncated");
}

#[test]
fn pixel_data_shorter_than_rows_by_columns_is_refused() {
    let mut slices = axial_series(2);
    slices[1].pixels = Some(vec![0; 5]);
    assert_file_error(&refused(&slices), "slice1.dcm", "truncated pixel data");
}

#[test]
fn huge_dimensions_are_refused() {
    let mut slices = axial_series(2);
    for s in &mut slices {
        (s.rows, s.columns) = (0, 3);
    }
    assert_file_error(&refused(&slices), "slice0.dcm", "Rows 0 is outside");
    // Within the size limits but not backed by pixel data: refused before
    // the 3 GB buffer is allocated.
    let mut slices = axial_series(1);
    (slices[0].rows, slices[0].columns, slices[0].pixels) = (40000, 40000, Some(vec![0; 12]));
    assert_file_error(&refused(&slices), "slice0.dcm", "truncated pixel data");
    // The largest slice claimed without the bytes for it: refused from
    // that file (the series-wide voxel limit is a unit test in stack.rs).
    let mut slices = axial_series(2);
    for s in &mut slices {
        (s.rows, s.columns, s.pixels) = (65535, 65535, Some(vec![0; 12]));
    }
    assert_file_error(&refused(&slices), "slice0.dcm", "truncated pixel data");
}

#[test]
fn a_folder_without_series_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not DICOM").unwrap();
    let e = read_series_dir(dir.path()).unwrap_err();
    assert!(matches!(e, DicomError::Folder { .. }), "{e}");
    assert!(e.to_string().contains("no DICOM image series"), "{e}");
}

#[test]
fn a_garbled_dicom_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = vec![0u8; 128];
    bytes.extend_from_slice(b"DICM\x02\x00\x10\x00UI");
    std::fs::write(dir.path().join("garbled"), &bytes).unwrap();
    let e = find_series(dir.path()).unwrap_err();
    assert!(
        matches!(e, DicomError::File { ref path, .. } if path.ends_with("garbled")),
        "{e}"
    );
}

#[test]
fn a_segmentation_in_the_series_is_skipped() {
    // A SEG object with pixel data and even the same series UID is not a
    // slice: find_series leaves it out and the series still reads.
    let dir = tempfile::tempdir().unwrap();
    let mut slices = axial_series(4);
    slices[3].sop_class = "1.2.840.10008.5.1.4.1.1.66.4".into();
    slices[3].modality = "SEG".into();
    write_series(dir.path(), &slices);
    let found = find_series(dir.path()).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].files.len(), 3, "{found:?}");
    assert_eq!(read_series_dir(dir.path()).unwrap().shape, [3, 4, 3]);
}

#[test]
fn implicit_vr_rle_and_deflated_slices_read_as_explicit_ones() {
    let read = |encoding| {
        let dir = tempfile::tempdir().unwrap();
        let mut slices = axial_series(3);
        for s in &mut slices {
            s.encoding = encoding;
        }
        write_series(dir.path(), &slices);
        read_series_dir(dir.path()).unwrap_or_else(|e| panic!("{encoding:?}: {e}"))
    };
    let explicit = read(Encoding::Explicit);
    assert_eq!(read(Encoding::Implicit), explicit);
    assert_eq!(read(Encoding::Rle), explicit);
    assert_eq!(read(Encoding::Deflated), explicit);
}

#[test]
fn an_unsupported_transfer_syntax_is_named() {
    let mut slices = axial_series(2);
    slices[1].encoding = Encoding::JpegLs;
    assert_file_error(&refused(&slices), "slice1.dcm", "1.2.840.10008.1.2.4.80");
}

#[test]
fn an_absurd_length_inside_a_deflated_dataset_is_refused() {
    // The pixel data's length set to 4 GiB, then the dataset deflated: the
    // bound must hold after inflation too.
    let dir = tempfile::tempdir().unwrap();
    // Preamble, DICM, the group length element and the group it counts.
    let meta_end =
        |file: &[u8]| 144 + u32::from_le_bytes(file[140..144].try_into().unwrap()) as usize;
    let plain = Slice::default().encode(0);
    let mut dataset = plain[meta_end(&plain)..].to_vec();
    let at = dataset.len() - 24 - 4;
    dataset[at..at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let mut deflated = Slice {
        encoding: Encoding::Deflated,
        ..Slice::default()
    }
    .encode(0);
    deflated.truncate(meta_end(&deflated));
    deflated.extend(crate::write::deflate(&dataset));
    std::fs::write(dir.path().join("bomb.dcm"), &deflated).unwrap();
    let found = find_series(dir.path()).unwrap();
    assert_series_error(&read_series(&found[0]).unwrap_err(), "bomb.dcm: truncated");
}
