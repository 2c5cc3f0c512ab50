//! The reader must answer any bytes with Ok or an error, never a panic, a
//! hang or an absurd allocation: a valid slice (explicit VR, implicit VR,
//! RLE or deflated) truncated, with bytes overwritten, or with a 32-bit
//! window set to a huge length, in the middle of a three-slice series.

use dicom_series::{find_series, read_series};
use proptest::prelude::*;

use crate::write::{axial_series, write_series, Encoding};

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Overwrite(Vec<(usize, u8)>),
    HugeWord(usize, u32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0usize..400).prop_map(Mutation::Truncate),
        prop::collection::vec((0usize..400, any::<u8>()), 1..8).prop_map(Mutation::Overwrite),
        (
            0usize..400,
            prop::sample::select(vec![
                0xFFFF_FFFFu32,
                0xFFFF_FFFE,
                0x8000_0000,
                0x0001_0000,
                65535
            ])
        )
            .prop_map(|(at, v)| Mutation::HugeWord(at, v)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len();
    match m {
        Mutation::Truncate(at) => bytes.truncate(at % n),
        Mutation::Overwrite(edits) => {
            for &(at, v) in edits {
                bytes[at % n] = v;
            }
        }
        Mutation::HugeWord(at, v) => {
            let at = at % (n - 4);
            bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_files_never_panic(
        m in mutation(),
        also_16bit_dims in any::<bool>(),
        encoding in prop::sample::select(vec![Encoding::Explicit, Encoding::Implicit, Encoding::Rle, Encoding::Deflated]),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut slices = axial_series(3);
        for s in &mut slices {
            s.encoding = encoding;
        }
        if also_16bit_dims {
            slices[1].columns = 4;
            slices[1].pixels = Some(vec![-1000; 16]);
        }
        write_series(dir.path(), &slices);
        let path = dir.path().join("slice1.dcm");
        let mut bytes = std::fs::read(&path).unwrap();
        apply(&mut bytes, &m);
        std::fs::write(&path, &bytes).unwrap();
        // Ok or Err are both fine; only a panic (or abort) fails.
        if let Ok(series) = find_series(dir.path()) {
            for s in &series {
                let _ = read_series(s);
            }
        }
    }
}
