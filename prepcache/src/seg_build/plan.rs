//! What `prepcache seg` has to do: one [`SegPlan`] per series (every
//! series with a candidate row and a scan on disk, sorted by uid), its
//! role in the split and its positives, and a fingerprint of everything
//! its shard depends on.
//!
//! The fingerprint is the classifier's per-scan one ([`plan_scans`]: the
//! scan's files and header, all its candidate rows, the codec) with the
//! segmentation's own inputs added: the series' role (which moves when the
//! series list or `--val-stride` changes), the chunk layout and the mask
//! threshold. Negative rows do not change a seg shard, but they are in the
//! classifier's fingerprint; rebuilding a series when one of its negative
//! rows changes is cheap and keeps a single notion of "this scan changed".

use anyhow::{bail, Result};
use shared::cache::Codec;
use shared::hu::{HU_MAX, HU_MIN};
use shared::luna::validation_series;
use shared::nodule_mask::BOOK_THRESHOLD_HU;
use shared::seg::{Positive, Role, LAYOUT_TAG, TRAIN_CHUNK_SHAPE};

use crate::cache_build::inputs::Inputs;
use crate::cache_build::plan::{inputs_fingerprint, plan_scans, ChunkParams, ScanPlan};

/// Bump when what a series' shard holds changes for the same inputs.
const SEG_SHARD_VERSION: u32 = 1;

pub(super) struct SegPlan {
    /// The scan, with the segmentation fingerprint in `fingerprint`.
    pub scan: ScanPlan,
    pub role: Role,
    /// Its `is_nodule` rows, in canonical order.
    pub positives: Vec<Positive>,
}

pub(super) struct SegPlans {
    /// By series uid.
    pub plans: Vec<SegPlan>,
    /// Of every plan and what the list left out: equal in both manifests
    /// means the cache is of these inputs.
    pub fingerprint: String,
}

impl SegPlans {
    pub fn of(&self, role: Role) -> impl Iterator<Item = &SegPlan> {
        self.plans.iter().filter(move |p| p.role == role)
    }
}

pub(super) fn plan(inputs: &Inputs, val_stride: usize, codec: Codec) -> Result<SegPlans> {
    let params = ChunkParams {
        codec,
        crop_shape: TRAIN_CHUNK_SHAPE,
        clip_hu: [HU_MIN, HU_MAX],
    };
    let mut scans = plan_scans(&inputs.series, &inputs.list.candidates, &params)?;
    let uids: Vec<&str> = scans.iter().map(|s| s.uid.as_str()).collect();
    let is_val = validation_series(&uids, val_stride)?;
    let roles: Vec<Role> = is_val
        .into_iter()
        .map(|v| if v { Role::Val } else { Role::Train })
        .collect();
    for (scan, &role) in scans.iter_mut().zip(&roles) {
        scan.fingerprint = seg_fingerprint(&scan.fingerprint, role);
    }
    let list = &inputs.list;
    let fingerprint = inputs_fingerprint(&scans, list.missing_series, list.missing_candidates);
    let plans = scans
        .into_iter()
        .zip(roles)
        .map(|(scan, role)| {
            let positives = scan
                .candidates
                .iter()
                .filter(|c| c.is_nodule)
                .map(|c| Positive {
                    center_xyz: c.center_xyz,
                    diameter_mm: c.diameter_mm,
                })
                .collect();
            SegPlan {
                scan,
                role,
                positives,
            }
        })
        .collect();
    Ok(SegPlans { plans, fingerprint })
}

fn seg_fingerprint(scan_fingerprint: &str, role: Role) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"prepcache seg series 1\0");
    h.update(&SEG_SHARD_VERSION.to_le_bytes());
    h.update(scan_fingerprint.as_bytes());
    h.update(&[u8::from(role == Role::Val)]);
    h.update(LAYOUT_TAG.as_bytes());
    h.update(&BOOK_THRESHOLD_HU.to_le_bytes());
    h.finalize().to_hex().to_string()
}

/// Refuse, before anything is written, a split whose `seg-train` could
/// hold nothing: the book's training set is its positives.
pub(super) fn check_training_positives(
    plans: &SegPlans,
    inputs: &Inputs,
    val_stride: usize,
) -> Result<()> {
    let train = plans.of(Role::Train).count();
    if train == 0 {
        bail!(
            "--val-stride {val_stride}: all {} series are validation, so seg-train would be empty; \
             use a stride of at least 2 (the book's is 10)",
            plans.plans.len()
        );
    }
    if plans.of(Role::Train).all(|p| p.positives.is_empty()) {
        bail!(
            "{}: none of the {train} training series has a positive candidate (a row of class 1), \
             so seg-train would be empty; give a candidate list that marks the nodules \
             (--candidates), or another --val-stride",
            inputs.csv.display()
        );
    }
    Ok(())
}
