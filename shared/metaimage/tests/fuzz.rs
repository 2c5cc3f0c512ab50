//! The reader must answer every byte sequence with Ok or an error, never a
//! panic, a hang or an absurd allocation: random headers built from MetaIO
//! keys, mutated valid files, and plain random bytes.

use std::path::Path;

use metaimage::geometry::Geometry;
use metaimage::volume::Volume;
use metaimage::{inspect, read_image, read_volume, write_volume};
use proptest::prelude::*;

const KEYS: &[&str] = &[
    "ObjectType",
    "NDims",
    "DimSize",
    "ElementType",
    "ElementSpacing",
    "ElementSize",
    "Offset",
    "Origin",
    "Position",
    "TransformMatrix",
    "Rotation",
    "Orientation",
    "BinaryData",
    "BinaryDataByteOrderMSB",
    "ElementByteOrderMSB",
    "CompressedData",
    "CompressedDataSize",
    "HeaderSize",
    "ElementNumberOfChannels",
    "AnatomicalOrientation",
    "0008|0060",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(0u64..6, 0..5).prop_map(|v| join(&v)),
        prop::collection::vec(any::<i64>(), 0..4).prop_map(|v| join(&v)),
        prop::collection::vec(-2.0f64..3.0, 0..10).prop_map(|v| join(&v)),
        Just("4294967296 4294967296 4294967296".to_owned()),
        Just("-1".to_owned()),
        Just("18446744073709551615".to_owned()),
        prop::sample::select(vec![
            "MET_SHORT",
            "MET_UCHAR",
            "MET_DOUBLE",
            "MET_LONG_LONG",
            "MET_FLOAT",
            "MET_NONE",
            "True",
            "False",
            "1",
            "",
        ])
        .prop_map(str::to_owned),
        "[ -~]{0,12}",
    ]
}

fn data_file() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "LOCAL",
        "LIST",
        "LIST 2D",
        "LIST 9D",
        "d.raw",
        "missing.raw",
        "s%03d.raw",
        "s%03d.raw 1 3 1",
        "s%03d.raw 1 2000000000 1",
        "s%d.raw -9223372036854775808 9223372036854775807 1",
        "s%s.raw 1 2",
        "s%03d.raw 5 1 -1",
        "",
        "../d.raw",
    ])
    .prop_map(str::to_owned)
}

fn join<T: ToString>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(" ")
}

/// Every entry point, on every file: only Ok or Err are acceptable.
fn read_everything(path: &Path) {
    let _ = read_image(path);
    let _ = read_volume(path);
    let _ = inspect(path);
}

fn valid_mha(dir: &Path) -> Vec<u8> {
    let p = dir.join("v.mhd");
    let voxels: Vec<i16> = (0..24).map(|k| k * 100 - 1200).collect();
    let volume = Volume::new([4, 3, 2], voxels, Geometry::default()).unwrap();
    write_volume(&p, &volume).unwrap();
    let header = std::fs::read_to_string(&p)
        .unwrap()
        .replace("ElementDataFile = v.raw", "ElementDataFile = LOCAL");
    let mut bytes = header.into_bytes();
    bytes.extend(std::fs::read(dir.join("v.raw")).unwrap());
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_headers_never_panic(
        lines in prop::collection::vec((prop::sample::select(KEYS), prop::sample::select(vec!["=", ":", " = "]), value()), 0..14),
        data in data_file(),
        tail in prop::collection::vec(any::<u8>(), 0..300),
        side in prop::collection::vec(any::<u8>(), 0..300),
        names in prop::collection::vec("[a-z%.]{0,6}\n", 0..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut text: String = lines.iter().map(|(k, sep, v)| format!("{k}{sep}{v}\n")).collect();
        text.push_str(&format!("ElementDataFile = {data}\n"));
        text.extend(names);
        let mut bytes = text.into_bytes();
        bytes.extend(&tail);
        for name in ["d.raw", "s001.raw", "s002.raw", "s003.raw"] {
            std::fs::write(dir.path().join(name), &side).unwrap();
        }
        let p = dir.path().join("h.mha");
        std::fs::write(&p, &bytes).unwrap();
        read_everything(&p);
    }

    #[test]
    fn mutated_valid_files_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = valid_mha(dir.path());
        let p = dir.path().join("m.mha");
        std::fs::write(&p, &bytes).unwrap();
        prop_assert!(read_volume(&p).is_ok(), "the unmutated file must read");
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        if let Some(c) = cut {
            bytes.truncate(c.index(bytes.len()));
        }
        std::fs::write(&p, &bytes).unwrap();
        read_everything(&p);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.mhd");
        std::fs::write(&p, &bytes).unwrap();
        read_everything(&p);
    }
}
