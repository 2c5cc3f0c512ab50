//! Synthetic scans open mapped, and their mapped crops equal the crops of
//! the decoded volume for every candidate and at every face. Lives here, not
//! in `shared`'s tests, so `shared` needs no dev-dependency on this crate
//! (which depends on `shared`).

use std::collections::BTreeMap;

use luna_synth::{generate, Preset, SynthOptions};
use shared::crop::{crop_candidate, CROP_VOXELS};
use shared::geometry::Irc;
use shared::luna::{find_series, load_candidates};
use shared::metaimage::{open_scan, read_volume};
use shared::volume::Scan;

/// Centres at and next to every face, and in the middle, along each axis.
fn face_centres(shape: [usize; 3]) -> Vec<Irc> {
    let along = |n: usize| [0, 1, n as i64 / 2, n as i64 - 2, n as i64 - 1];
    let mut out = Vec::new();
    for i in along(shape[0]) {
        for r in along(shape[1]) {
            for c in along(shape[2]) {
                out.push([i, r, c]);
            }
        }
    }
    out
}

#[test]
fn synthetic_dataset_crops_match_read_volume_for_every_candidate() {
    let dir = tempfile::tempdir().unwrap();
    let options = SynthOptions {
        out: dir.path().to_owned(),
        series: 3,
        seed: 5,
        preset: Preset::Tiny,
    };
    generate(&options, &|_, _| {}).unwrap();
    let present = find_series(dir.path()).unwrap();
    let list = load_candidates(
        &dir.path().join("candidates.csv"),
        &dir.path().join("annotations.csv"),
        &present,
    )
    .unwrap();
    let mut by_series: BTreeMap<&str, Vec<Irc>> = BTreeMap::new();
    let mut volumes = BTreeMap::new();
    for c in &list.candidates {
        let path = &present[&c.series_uid];
        let volume = volumes
            .entry(c.series_uid.as_str())
            .or_insert_with(|| read_volume(path).unwrap());
        let irc = volume.geometry.xyz_to_irc(c.center_xyz).unwrap();
        by_series.entry(&c.series_uid).or_default().push(irc);
    }
    assert_eq!(by_series.len(), 3);
    for (uid, mut at) in by_series {
        let scan = open_scan(&present[uid]).unwrap();
        assert!(
            matches!(scan, Scan::Mapped(_)),
            "LUNA-layout scans must be mapped"
        );
        let volume = &volumes[uid];
        at.extend(face_centres(volume.shape));
        let (mut got, mut want) = (vec![0i16; CROP_VOXELS], vec![0i16; CROP_VOXELS]);
        for irc in at {
            let a = crop_candidate(&scan, irc, &mut got);
            let b = crop_candidate(volume, irc, &mut want);
            assert_eq!(a, b, "{uid} at {irc:?}");
            assert!(got == want, "{uid} at {irc:?}: crops differ");
        }
    }
}
