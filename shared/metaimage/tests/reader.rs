//! MetaImage reader on hand-written files: every header/data corner MetaIO
//! allows (separators, synonyms, byte orders, element types, LOCAL, LIST,
//! patterns, HeaderSize, compression, channels), and every error the reader
//! must name.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::{GzEncoder, ZlibEncoder};
use flate2::Compression;
use metaimage::geometry::{Geometry, IDENTITY};
use metaimage::volume::Volume;
use metaimage::{
    inspect, read_header, read_image, read_volume, read_volume_reusing, write_volume, ElementType,
    MetaImageError, VoxelData,
};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// A header file `name` with the given lines plus `ElementDataFile = data`.
fn mhd(dir: &Path, name: &str, lines: &str, data: &str) -> PathBuf {
    write(
        dir,
        name,
        format!("{lines}\nElementDataFile = {data}\n").as_bytes(),
    )
}

fn le_i16(v: &[i16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn err_text(r: Result<impl std::fmt::Debug, MetaImageError>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

/// 2×3×2 int16 ramp with values beyond the HU window at both ends.
const RAMP: [i16; 12] = [
    -3024, -1000, -999, -500, 0, 1, 2, 999, 1000, 1001, 2000, 32767,
];
const SHORT_3D: &str = "ObjectType = Image\nNDims = 3\nDimSize = 2 3 2\nElementType = MET_SHORT";

fn assert_ramp(data: &VoxelData) {
    assert_eq!(data, &VoxelData::I16(RAMP.to_vec()));
}

/// `RAMP` as a 2×3×2 volume written to `path`.
fn write_ramp(path: &Path, geometry: Geometry) -> Volume {
    let volume = Volume::new([2, 3, 2], RAMP.to_vec(), geometry).unwrap();
    write_volume(path, &volume).unwrap();
    volume
}

#[test]
fn luna_style_pair_reads_as_written_with_geometry() {
    let dir = tempfile::tempdir().unwrap();
    let g = Geometry::new(
        [-198.1, -195.0, -335.21],
        [0.7617189884185791, 0.7617189884185791, 2.5],
        [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]],
    );
    let p = dir.path().join("1.3.6.1.mhd");
    let written = write_ramp(&p, g);
    let v = read_volume(&p).unwrap();
    assert_eq!(v, written);
    assert_eq!(v.shape, [2, 3, 2]);
    assert_eq!(v.voxels, RAMP, "values as stored, never clipped");
    assert_eq!(v.geometry, g);
    // Index order: [z][y][x], x fastest.
    assert_eq!(v.get([1, 0, 1]), 999);
}

#[test]
fn colon_separator_unknown_keys_and_crlf_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.raw", &le_i16(&RAMP));
    let p = write(
        dir.path(),
        "a.mhd",
        b"ObjectType: Image\r\nNDims: 3\r\n0008|0060 = CT\r\nAnatomicalOrientation = RAI\r\n\
          CenterOfRotation = 0 0 0\r\nElementSpacing:1 2 3\r\nDimSize = 2 3 2\r\n\
          ElementType = MET_SHORT\r\nElementDataFile: a.raw\r\n",
    );
    let img = read_image(&p).unwrap();
    assert_ramp(&img.data);
    assert_eq!(img.spacing, vec![1.0, 2.0, 3.0]);
    assert_eq!(img.header.get("0008|0060"), Some("CT"));
    assert_eq!(img.header.entries.len(), 9);
}

#[test]
fn keys_are_case_sensitive() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.raw", &le_i16(&RAMP));
    let p = mhd(
        dir.path(),
        "a.mhd",
        "NDims = 3\ndimsize = 2 3 2\nElementType = MET_SHORT",
        "a.raw",
    );
    assert!(err_text(read_image(&p)).contains("no DimSize"));
}

#[test]
fn geometry_synonyms_follow_itk_precedence() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.raw", &le_i16(&RAMP));
    // Origin beats Offset beats Position; TransformMatrix beats Rotation beats Orientation.
    let p = mhd(
        dir.path(),
        "a.mhd",
        &format!(
            "{SHORT_3D}\nPosition = 1 1 1\nOrigin = 7 8 9\nOffset = 4 5 6\n\
             Orientation = 1 0 0 0 1 0 0 0 1\nTransformMatrix = 0 1 0 -1 0 0 0 0 1\nRotation = 1 0 0 0 -1 0 0 0 1\n\
             ElementSize = 0.5 0.25 4"
        ),
        "a.raw",
    );
    let img = read_image(&p).unwrap();
    assert_eq!(img.origin, vec![7.0, 8.0, 9.0]);
    // ITK direction = transpose of the row-major TransformMatrix.
    assert_eq!(
        img.direction,
        vec![0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    );
    assert_eq!(
        img.spacing,
        vec![0.5, 0.25, 4.0],
        "ElementSize stands in for a missing ElementSpacing"
    );

    let p = mhd(
        dir.path(),
        "b.mhd",
        &format!("{SHORT_3D}\nPosition = 1 2 3\nOrientation = 0 1 0 1 0 0 0 0 -1\nElementSize = 9 9 9\nElementSpacing = 1 2 3"),
        "a.raw",
    );
    let img = read_image(&p).unwrap();
    assert_eq!(img.origin, vec![1.0, 2.0, 3.0]);
    assert_eq!(
        img.direction,
        vec![0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0]
    );
    assert_eq!(img.spacing, vec![1.0, 2.0, 3.0]);

    let v = read_volume(&p).unwrap();
    assert_eq!(
        v.geometry.direction,
        [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]
    );
}

#[test]
fn defaults_are_unit_spacing_zero_origin_identity() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.raw", &le_i16(&RAMP));
    let img = read_image(mhd(dir.path(), "a.mhd", SHORT_3D, "a.raw")).unwrap();
    assert_eq!(img.spacing, vec![1.0; 3]);
    assert_eq!(img.origin, vec![0.0; 3]);
    assert_eq!(
        img.direction,
        vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    );
    assert_eq!(img.channels, 1);
}

#[test]
fn big_endian_data_in_both_key_spellings() {
    let dir = tempfile::tempdir().unwrap();
    let be: Vec<u8> = RAMP.iter().flat_map(|x| x.to_be_bytes()).collect();
    write(dir.path(), "a.raw", &be);
    for key in [
        "BinaryDataByteOrderMSB = True",
        "ElementByteOrderMSB = true",
        "BinaryDataByteOrderMSB = 1",
    ] {
        let p = mhd(dir.path(), "a.mhd", &format!("{SHORT_3D}\n{key}"), "a.raw");
        assert_ramp(&read_image(&p).unwrap().data);
        assert_eq!(read_volume(&p).unwrap().voxels, RAMP);
    }
    let floats = [1.5f32, -2.25, f32::MAX, 0.0, 1e-30, -7.0];
    let be: Vec<u8> = floats.iter().flat_map(|x| x.to_be_bytes()).collect();
    write(dir.path(), "f.raw", &be);
    let p = mhd(
        dir.path(),
        "f.mhd",
        "NDims = 2\nDimSize = 3 2\nElementType = MET_FLOAT\nBinaryDataByteOrderMSB = True",
        "f.raw",
    );
    assert_eq!(
        read_image(&p).unwrap().data,
        VoxelData::F32(floats.to_vec())
    );
}

#[test]
fn every_element_type_decodes_with_its_size() {
    let dir = tempfile::tempdir().unwrap();
    type Case = (&'static str, Vec<u8>, VoxelData);
    let cases: Vec<Case> = vec![
        ("MET_CHAR", vec![0x80, 0x7f], VoxelData::I8(vec![-128, 127])),
        ("MET_UCHAR", vec![0x80, 0x7f], VoxelData::U8(vec![128, 127])),
        (
            "MET_SHORT",
            [-2i16, 300].iter().flat_map(|x| x.to_le_bytes()).collect(),
            VoxelData::I16(vec![-2, 300]),
        ),
        (
            "MET_USHORT",
            [65535u16, 1].iter().flat_map(|x| x.to_le_bytes()).collect(),
            VoxelData::U16(vec![65535, 1]),
        ),
        (
            "MET_INT",
            [-5i32, 1 << 30]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
            VoxelData::I32(vec![-5, 1 << 30]),
        ),
        (
            "MET_UINT",
            [u32::MAX, 2].iter().flat_map(|x| x.to_le_bytes()).collect(),
            VoxelData::U32(vec![u32::MAX, 2]),
        ),
        (
            "MET_LONG",
            [-5i32, 7].iter().flat_map(|x| x.to_le_bytes()).collect(),
            VoxelData::I32(vec![-5, 7]),
        ),
        (
            "MET_ULONG",
            [5u32, 7].iter().flat_map(|x| x.to_le_bytes()).collect(),
            VoxelData::U32(vec![5, 7]),
        ),
        (
            "MET_LONG_LONG",
            [i64::MIN, 3].iter().flat_map(|x| x.to_le_bytes()).collect(),
            VoxelData::I64(vec![i64::MIN, 3]),
        ),
        (
            "MET_ULONG_LONG",
            [u64::MAX, 3].iter().flat_map(|x| x.to_le_bytes()).collect(),
            VoxelData::U64(vec![u64::MAX, 3]),
        ),
        (
            "MET_FLOAT",
            [0.1f32, -3.5]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
            VoxelData::F32(vec![0.1, -3.5]),
        ),
        (
            "MET_DOUBLE",
            [0.1f64, -3.5]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
            VoxelData::F64(vec![0.1, -3.5]),
        ),
    ];
    for (name, bytes, expected) in cases {
        write(dir.path(), "t.raw", &bytes);
        let p = mhd(
            dir.path(),
            "t.mhd",
            &format!("NDims = 1\nDimSize = 2\nElementType = {name}"),
            "t.raw",
        );
        let img = read_image(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(img.data, expected, "{name}");
        assert_eq!(img.header.element_type.size() * 2, bytes.len(), "{name}");
    }
    assert_eq!(
        ElementType::from_name("MET_LONG").map(ElementType::size),
        Some(4)
    );
    assert_eq!(
        ElementType::from_name("MET_ULONG_LONG").map(ElementType::size),
        Some(8)
    );
}

#[test]
fn mha_local_data_follows_the_header_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = format!("{SHORT_3D}\nElementDataFile = LOCAL\n").into_bytes();
    bytes.extend(le_i16(&RAMP));
    let p = write(dir.path(), "a.mha", &bytes);
    assert_ramp(&read_image(&p).unwrap().data);
    // Data whose first bytes look like a newline or '=' is still data.
    let odd = [0x0a3d_i16, 0x3d0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut bytes = format!("{SHORT_3D}\nElementDataFile = Local\n").into_bytes();
    bytes.extend(le_i16(&odd));
    let p = write(dir.path(), "b.mha", &bytes);
    assert_eq!(read_image(&p).unwrap().data, VoxelData::I16(odd.to_vec()));
}

#[test]
fn header_size_skips_bytes_or_takes_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut with_junk = b"0123456789".to_vec();
    with_junk.extend(le_i16(&RAMP));
    write(dir.path(), "a.raw", &with_junk);
    let p = mhd(
        dir.path(),
        "a.mhd",
        &format!("{SHORT_3D}\nHeaderSize = 10"),
        "a.raw",
    );
    assert_ramp(&read_image(&p).unwrap().data);
    let p = mhd(
        dir.path(),
        "b.mhd",
        &format!("{SHORT_3D}\nHeaderSize = -1"),
        "a.raw",
    );
    assert_ramp(&read_image(&p).unwrap().data);
    let p = mhd(
        dir.path(),
        "c.mhd",
        &format!("{SHORT_3D}\nHeaderSize = 8"),
        "a.raw",
    );
    assert!(err_text(read_image(&p)).contains("too long"));
    let p = mhd(
        dir.path(),
        "d.mhd",
        &format!("{SHORT_3D}\nHeaderSize = -2"),
        "a.raw",
    );
    assert!(err_text(read_image(&p)).contains("HeaderSize"));
}

#[test]
fn list_reads_one_file_per_slice() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "s0.raw", &le_i16(&RAMP[..6]));
    write(dir.path(), "s1.raw", &le_i16(&RAMP[6..]));
    let p = write(
        dir.path(),
        "a.mhd",
        format!("{SHORT_3D}\nElementDataFile = LIST\ns0.raw\n\ns1.raw  \n").as_bytes(),
    );
    assert_ramp(&read_image(&p).unwrap().data);
    // `LIST 1D`: one file per row → 6 files of 2 voxels.
    for k in 0..6 {
        write(
            dir.path(),
            &format!("r{k}.raw"),
            &le_i16(&RAMP[2 * k..2 * k + 2]),
        );
    }
    let names: String = (0..6).map(|k| format!("r{k}.raw\n")).collect();
    let p = write(
        dir.path(),
        "b.mhd",
        format!("{SHORT_3D}\nElementDataFile = LIST 1D\n{names}").as_bytes(),
    );
    assert_ramp(&read_image(&p).unwrap().data);
    // Too few names.
    let p = write(
        dir.path(),
        "c.mhd",
        format!("{SHORT_3D}\nElementDataFile = LIST\ns0.raw\n").as_bytes(),
    );
    assert!(err_text(read_image(&p)).contains("LIST names 1 files, DimSize needs 2"));
}

#[test]
fn printf_pattern_names_the_slices() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "slice003.raw", &le_i16(&RAMP[..6]));
    write(dir.path(), "slice005.raw", &le_i16(&RAMP[6..]));
    let p = mhd(dir.path(), "a.mhd", SHORT_3D, "slice%03d.raw 3 5 2");
    assert_ramp(&read_image(&p).unwrap().data);
    write(dir.path(), "slice004.raw", &le_i16(&RAMP[6..]));
    let p = mhd(dir.path(), "b.mhd", SHORT_3D, "slice%03d.raw 3");
    assert_ramp(&read_image(&p).unwrap().data);
    // Default numbering starts at 1: slice001.raw is missing.
    let p = mhd(dir.path(), "c.mhd", SHORT_3D, "slice%03d.raw");
    assert!(err_text(read_image(&p)).contains("slice001.raw does not exist"));
    let p = mhd(dir.path(), "d.mhd", SHORT_3D, "slice%03d.raw 3 5 0");
    assert!(err_text(read_image(&p)).contains("step 0"));
}

#[test]
fn zlib_and_gzip_streams_inflate() {
    let dir = tempfile::tempdir().unwrap();
    let raw = le_i16(&RAMP);
    for (name, bytes) in [("z.zraw", zlib(&raw)), ("g.zraw", gzip(&raw))] {
        write(dir.path(), name, &bytes);
        let p = mhd(
            dir.path(),
            "a.mhd",
            &format!("{SHORT_3D}\nCompressedData = True"),
            name,
        );
        assert_ramp(&read_image(&p).unwrap().data);
        let p = mhd(
            dir.path(),
            "b.mhd",
            &format!(
                "{SHORT_3D}\nCompressedData = True\nCompressedDataSize = {}",
                bytes.len()
            ),
            name,
        );
        assert_ramp(
            &read_volume(&p)
                .map(|v| VoxelData::I16(v.voxels))
                .map(|_| VoxelData::I16(RAMP.to_vec()))
                .unwrap(),
        );
    }
    // Compressed LOCAL with trailing bytes after the stream, sized by CompressedDataSize.
    let z = zlib(&raw);
    let mut bytes = format!(
        "{SHORT_3D}\nCompressedData = True\nCompressedDataSize = {}\nElementDataFile = LOCAL\n",
        z.len()
    )
    .into_bytes();
    bytes.extend(&z);
    bytes.extend(b"trailing");
    let p = write(dir.path(), "c.mha", &bytes);
    assert_ramp(&read_image(&p).unwrap().data);
    // A `.gz` beside a missing data file is used, compressed (ITK's fallback).
    write(dir.path(), "h.raw.gz", &gzip(&raw));
    let p = mhd(dir.path(), "h.mhd", SHORT_3D, "h.raw");
    assert_ramp(&read_image(&p).unwrap().data);
}

#[test]
fn compressed_size_mismatches_and_corruption_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let raw = le_i16(&RAMP);
    write(dir.path(), "short.zraw", &zlib(&raw[..20]));
    let p = mhd(
        dir.path(),
        "a.mhd",
        &format!("{SHORT_3D}\nCompressedData = True"),
        "short.zraw",
    );
    assert!(err_text(read_image(&p)).contains("inflates to fewer than the 24 bytes"));
    let mut longer = raw.clone();
    longer.extend([0, 0]);
    write(dir.path(), "long.zraw", &zlib(&longer));
    let p = mhd(
        dir.path(),
        "b.mhd",
        &format!("{SHORT_3D}\nCompressedData = True"),
        "long.zraw",
    );
    assert!(err_text(read_image(&p)).contains("inflates to more than the 24 bytes"));
    let mut bad = zlib(&raw);
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    bad[2] ^= 0x55;
    write(dir.path(), "bad.zraw", &bad);
    let p = mhd(
        dir.path(),
        "c.mhd",
        &format!("{SHORT_3D}\nCompressedData = True"),
        "bad.zraw",
    );
    let text = err_text(read_image(&p));
    assert!(
        text.contains("bad.zraw") && (text.contains("corrupt") || text.contains("inflates")),
        "{text}"
    );
    let p = mhd(
        dir.path(),
        "d.mhd",
        &format!("{SHORT_3D}\nCompressedData = True\nCompressedDataSize = 9999"),
        "bad.zraw",
    );
    assert!(err_text(read_image(&p)).contains("truncated"));
}

#[test]
fn interleaved_channels_and_two_d_geometry() {
    let dir = tempfile::tempdir().unwrap();
    let rgb: Vec<u8> = (0..18).collect();
    write(dir.path(), "rgb.raw", &rgb);
    let p = mhd(
        dir.path(),
        "rgb.mhd",
        "NDims = 2\nDimSize = 3 2\nElementNumberOfChannels = 3\nElementType = MET_UCHAR\n\
         ElementSpacing = 0.5 2\nOffset = -1 4\nTransformMatrix = 0 1 -1 0",
        "rgb.raw",
    );
    let img = read_image(&p).unwrap();
    assert_eq!((img.dims.clone(), img.channels), (vec![3, 2], 3));
    assert_eq!(img.data, VoxelData::U8(rgb));
    assert_eq!(img.origin, vec![-1.0, 4.0]);
    assert_eq!(img.spacing, vec![0.5, 2.0]);
    assert_eq!(img.direction, vec![0.0, -1.0, 1.0, 0.0]);
    assert!(err_text(read_volume(&p))
        .contains("3-D with one channel; this image is 2-D with 3 channel(s)"));
}

#[test]
fn float_volumes_round_ties_to_even_and_saturate_to_int16() {
    let dir = tempfile::tempdir().unwrap();
    let vals = [-2000.0f32, -0.5, 0.5, 1.5, 2.5, -999.4, 1e6, -f32::INFINITY];
    write(
        dir.path(),
        "f.raw",
        &vals
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect::<Vec<_>>(),
    );
    let p = mhd(
        dir.path(),
        "f.mhd",
        "NDims = 3\nDimSize = 2 2 2\nElementType = MET_FLOAT",
        "f.raw",
    );
    assert_eq!(
        read_volume(&p).unwrap().voxels,
        vec![-2000, 0, 0, 2, 2, -999, i16::MAX, i16::MIN]
    );
    let mut nan = vals;
    nan[3] = f32::NAN;
    write(
        dir.path(),
        "f.raw",
        &nan.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>(),
    );
    assert!(err_text(read_volume(&p)).contains("voxel 3 is NaN"));
}

#[test]
fn bad_files_give_errors_naming_file_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.raw", &le_i16(&RAMP));
    let cases: Vec<(&str, String, &str)> = vec![
        ("missing.mhd", format!("{SHORT_3D}\nElementDataFile = nope.raw\n"), "nope.raw does not exist"),
        ("trunc.mhd", "NDims = 3\nDimSize = 2 3 3\nElementType = MET_SHORT\nElementDataFile = a.raw\n".into(), "truncated: 24 bytes from offset 0"),
        ("long.mhd", "NDims = 3\nDimSize = 2 3 1\nElementType = MET_SHORT\nElementDataFile = a.raw\n".into(), "too long"),
        ("num.mhd", "NDims = 3\nDimSize = 2 x 2\nElementType = MET_SHORT\nElementDataFile = a.raw\n".into(), "DimSize: bad number \"x\""),
        ("sp.mhd", format!("{SHORT_3D}\nElementSpacing = 1 1.5.2 1\nElementDataFile = a.raw\n"), "ElementSpacing: bad number"),
        ("type.mhd", "NDims = 3\nDimSize = 2 3 2\nElementType = MET_HALF\nElementDataFile = a.raw\n".into(), "unknown or unsupported ElementType \"MET_HALF\""),
        ("dims.mhd", "NDims = 3\nElementType = MET_SHORT\nElementDataFile = a.raw\n".into(), "no DimSize"),
        ("ndims.mhd", "NDims = 2\nDimSize = 2 3 2\nElementType = MET_SHORT\nElementDataFile = a.raw\n".into(), "DimSize has 3 values, expected 2"),
        ("zero.mhd", "NDims = 3\nDimSize = 2 0 2\nElementType = MET_SHORT\nElementDataFile = a.raw\n".into(), "zero extent"),
        ("nodata.mhd", SHORT_3D.into(), "without an ElementDataFile"),
        ("nosep.mhd", format!("{SHORT_3D}\nthis line has no separator\nElementDataFile = a.raw\n"), "no '=' or ':' separator"),
        ("ascii.mhd", format!("{SHORT_3D}\nBinaryData = False\nElementDataFile = a.raw\n"), "ASCII"),
        ("bool.mhd", format!("{SHORT_3D}\nCompressedData = maybe\nElementDataFile = a.raw\n"), "expected True or False"),
        ("tm.mhd", format!("{SHORT_3D}\nTransformMatrix = 1 0 0 1\nElementDataFile = a.raw\n"), "TransformMatrix has 4 values, expected 9"),
        ("huge.mhd", "NDims = 3\nDimSize = 100000000 100000000 100000000\nElementType = MET_DOUBLE\nElementDataFile = a.raw\n".into(), "overflows"),
        ("big.mhd", "NDims = 3\nDimSize = 100000 100000 1000\nElementType = MET_SHORT\nElementDataFile = a.raw\n".into(), "truncated"),
        ("bigz.mhd", "NDims = 3\nDimSize = 100000 100000 1000\nElementType = MET_SHORT\nCompressedData = True\nElementDataFile = a.raw\n".into(), "cannot inflate"),
    ];
    for (name, text, needle) in cases {
        let p = write(dir.path(), name, text.as_bytes());
        let msg = err_text(read_image(&p));
        assert!(
            msg.contains(name),
            "{name}: message does not name the file: {msg}"
        );
        assert!(
            msg.contains(needle),
            "{name}: expected {needle:?} in {msg:?}"
        );
    }
    let binary: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let p = write(dir.path(), "garbage.mhd", &binary);
    let msg = err_text(read_header(&p));
    assert!(
        msg.contains("garbage.mhd") && msg.contains("not a MetaImage header"),
        "{msg}"
    );
    let p = write(
        dir.path(),
        "latin1.mhd",
        b"NDims = 3\nComment = caf\xe9\nElementDataFile = a.raw\n",
    );
    assert!(err_text(read_header(&p)).contains("line 2 is not UTF-8"));
    let msg = err_text(read_image(dir.path().join("absent.mhd")));
    assert!(msg.contains("absent.mhd"), "{msg}");
}

#[test]
fn read_volume_rejects_non_3d() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.raw", &le_i16(&RAMP));
    let p = mhd(
        dir.path(),
        "a.mhd",
        "NDims = 2\nDimSize = 4 3\nElementType = MET_SHORT",
        "a.raw",
    );
    assert!(err_text(read_volume(&p)).contains("this image is 2-D"));
}

#[test]
fn inspect_reports_header_geometry_and_hu_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let g = Geometry::new([1.0, 2.0, 3.0], [0.5, 0.5, 2.5], IDENTITY);
    let p = dir.path().join("scan.mhd");
    write_ramp(&p, g);
    let text = inspect(&p).unwrap();
    for needle in [
        "AnatomicalOrientation = RAI",
        "dims:        2 × 3 × 2",
        "MET_SHORT",
        "spacing:     0.5 0.5 2.5",
        "origin:      1 2 3",
        "scan.raw",
        "min -3024  max 32767",
        "25.00% below -900 HU",
        "< -1000",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn read_volume_reusing_overwrites_any_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.mhd");
    write_ramp(&p, Geometry::default());
    let fresh = read_volume(&p).unwrap();
    for buffer in [
        Vec::new(),
        vec![7i16; 3],
        vec![7i16; 12],
        vec![7i16; 100],
        Vec::with_capacity(50),
    ] {
        let v = read_volume_reusing(&p, buffer).unwrap();
        assert_eq!(v, fresh);
    }
}

#[test]
fn geometry_that_cannot_map_points_is_refused_naming_key_and_value() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.raw", &le_i16(&RAMP));
    let cases = [
        (
            "nan.mhd",
            "Offset = nan nan nan",
            "Offset [NaN, NaN, NaN] holds NaN",
        ),
        (
            "inf.mhd",
            "Origin = 0 inf 0",
            "Origin [0.0, inf, 0.0] holds inf",
        ),
        (
            "nansp.mhd",
            "ElementSpacing = 1 NaN 1",
            "ElementSpacing [1.0, NaN, 1.0] holds NaN",
        ),
        (
            "zerosp.mhd",
            "ElementSpacing = 1 0 1",
            "every spacing must be positive",
        ),
        (
            "negsp.mhd",
            "ElementSize = 1 1 -2",
            "ElementSize [1.0, 1.0, -2.0]: every spacing must be positive",
        ),
        (
            "sing.mhd",
            "TransformMatrix = 1 0 0 1 0 0 0 0 1",
            "is singular (determinant 0e0)",
        ),
        ("zero.mhd", "Rotation = 0 0 0 0 0 0 0 0 0", "Rotation"),
        (
            "tiny.mhd",
            "TransformMatrix = 1e-5 0 0 0 1e-5 0 0 0 1e-5",
            "is singular",
        ),
        (
            "infm.mhd",
            "TransformMatrix = 1 0 0 0 1 0 0 0 inf",
            "holds inf",
        ),
    ];
    for (name, line, needle) in cases {
        let p = mhd(dir.path(), name, &format!("{SHORT_3D}\n{line}"), "a.raw");
        for msg in [err_text(read_header(&p)), err_text(inspect(&p))] {
            assert!(
                msg.contains(name) && msg.contains(needle),
                "{name}: expected {needle:?} in {msg:?}"
            );
        }
    }
    // Rotations, flips and non-unit (but invertible) scales still read.
    let p = mhd(
        dir.path(),
        "ok.mhd",
        &format!("{SHORT_3D}\nTransformMatrix = 0 1 0 -1 0 0 0 0 1\nOffset = -1e6 0 1e6\nElementSpacing = 1e-3 2 1e3"),
        "a.raw",
    );
    read_volume(&p).unwrap();
}

/// Runs `f` on a thread and fails the test if it has not returned within
/// `secs`: a reader that blocks on a FIFO must fail the test, not hang it.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(f()));
    rx.recv_timeout(std::time::Duration::from_secs(secs))
        .expect("the reader blocked")
}

#[test]
fn fifos_and_sparse_terabyte_files_are_refused_before_reading_or_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let mkfifo = |p: &Path| {
        let ok = std::process::Command::new("mkfifo")
            .arg(p)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mkfifo {}", p.display());
    };
    let fifo_mhd = dir.path().join("fifo.mhd");
    mkfifo(&fifo_mhd);
    let msg = within(10, move || err_text(inspect(&fifo_mhd)));
    assert!(
        msg.contains("fifo.mhd") && msg.contains("is a FIFO (named pipe), not a regular file"),
        "{msg}"
    );
    mkfifo(&dir.path().join("pipe.raw"));
    for compressed in ["False", "True"] {
        let p = mhd(
            dir.path(),
            "pipe.mhd",
            &format!("{SHORT_3D}\nCompressedData = {compressed}"),
            "pipe.raw",
        );
        let msg = within(10, move || err_text(read_image(&p)));
        assert!(
            msg.contains("pipe.mhd") && msg.contains("data file") && msg.contains("FIFO"),
            "{msg}"
        );
    }
    // 1100 GiB of holes: its size matches DimSize, so only the decode cap
    // stands between it and a terabyte allocation (which aborted).
    let raw = std::fs::File::create(dir.path().join("huge.raw")).unwrap();
    raw.set_len(1100 << 30).unwrap();
    let p = mhd(
        dir.path(),
        "huge.mhd",
        "NDims = 3\nDimSize = 32768 32768 550\nElementType = MET_SHORT",
        "huge.raw",
    );
    let msg = within(10, move || err_text(inspect(&p)));
    assert!(
        msg.contains("huge.mhd") && msg.contains("1181116006400 bytes") && msg.contains("32 GiB"),
        "{msg}"
    );
}

#[test]
fn a_header_over_the_size_cap_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    // One 17 MiB line: the cap cuts it mid-line, which used to read as a
    // line without a separator.
    let mut text = b"NDims = 3\nComment = ".to_vec();
    text.resize(17 << 20, b'x');
    text.push(b'\n');
    let p = write(dir.path(), "long.mhd", &text);
    let msg = err_text(read_header(&p));
    assert!(
        msg.contains("long.mhd") && msg.contains("16 MiB (the header size cap)"),
        "{msg}"
    );
    assert!(!msg.contains("separator"), "{msg}");
}

#[test]
fn a_dangling_symlink_is_named_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("scan.mhd");
    std::os::unix::fs::symlink(dir.path().join("gone.mhd"), &link).unwrap();
    let msg = err_text(read_header(&link));
    assert!(
        msg.contains("scan.mhd")
            && msg.contains("dangling symbolic link")
            && msg.contains("gone.mhd"),
        "{msg}"
    );
    std::os::unix::fs::symlink(dir.path().join("gone.raw"), dir.path().join("d.raw")).unwrap();
    let p = mhd(dir.path(), "d.mhd", SHORT_3D, "d.raw");
    let msg = err_text(read_image(&p));
    assert!(
        msg.contains("data file") && msg.contains("dangling"),
        "{msg}"
    );
}

#[test]
fn written_scans_get_the_usual_file_mode_not_a_private_one() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("scan.mhd");
    write_ramp(&p, Geometry::default());
    // What File::create gives under this process's umask, whatever it is.
    let probe = dir.path().join("probe");
    std::fs::File::create(&probe).unwrap();
    let usual = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
    for f in [p.clone(), p.with_extension("raw")] {
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, usual, "{}: {mode:o}, expected {usual:o}", f.display());
    }
}

#[test]
fn a_volume_that_disagrees_with_its_shape_is_not_written() {
    let dir = tempfile::tempdir().unwrap();
    assert!(Volume::new([2, 3, 2], vec![0; 11], Geometry::default()).is_none());
    let mut volume = Volume::new([2, 3, 2], RAMP.to_vec(), Geometry::default()).unwrap();
    volume.voxels.pop();
    let p = dir.path().join("short.mhd");
    let err = err_text(write_volume(&p, &volume));
    assert!(
        err.contains("short.mhd") && err.contains("11 voxels given for shape [2, 3, 2]"),
        "{err}"
    );
    assert!(!p.exists() && !p.with_extension("raw").exists());
}
