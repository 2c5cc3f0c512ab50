//! What a build has to do: one [`ScanPlan`] per scan with candidates, each
//! with a fingerprint of everything its shard depends on.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result};
use shared::cache::{Codec, FORMAT_VERSION};
use shared::luna::CandidateInfo;

/// Settings that change every chunk when they change.
#[derive(Clone, Copy, Debug)]
pub struct ChunkParams {
    pub codec: Codec,
    pub crop_shape: [usize; 3],
    pub clip_hu: [i16; 2],
}

pub struct ScanPlan {
    pub uid: String,
    pub mhd: PathBuf,
    /// Size of the header and its data file(s): the bytes a build reads.
    pub input_bytes: u64,
    /// This scan's candidates, in canonical order.
    pub candidates: Vec<CandidateInfo>,
    /// BLAKE3 (hex) of the scan's files (name, size, mtime, header text), its
    /// candidate rows and the chunk parameters.
    pub fingerprint: String,
}

/// Group `candidates` (canonical order) by scan and fingerprint each scan.
/// Scans without candidates have nothing to cache and are left out.
pub fn plan_scans(
    series: &BTreeMap<String, PathBuf>,
    candidates: &[CandidateInfo],
    params: &ChunkParams,
) -> Result<Vec<ScanPlan>> {
    let mut by_uid: BTreeMap<&str, Vec<CandidateInfo>> = BTreeMap::new();
    for c in candidates {
        by_uid
            .entry(c.series_uid.as_str())
            .or_default()
            .push(c.clone());
    }
    let mut listings: BTreeMap<PathBuf, Vec<(String, u64, u128)>> = BTreeMap::new();
    let mut plans = Vec::with_capacity(by_uid.len());
    for (uid, cands) in by_uid {
        let Some(mhd) = series.get(uid) else { continue };
        let dir = mhd.parent().unwrap_or(Path::new(".")).to_owned();
        if !listings.contains_key(&dir) {
            listings.insert(dir.clone(), list_dir(&dir)?);
        }
        let files: Vec<&(String, u64, u128)> = listings[&dir]
            .iter()
            .filter(|(name, _, _)| name.strip_prefix(uid).is_some_and(|r| r.starts_with('.')))
            .collect();
        // An unreadable header (a dangling link, say) is the scan's problem,
        // not the build's: opening it fails again and skips it with the
        // reason. Its error text stands in for the bytes, so the record
        // stays fresh until the file appears.
        let header =
            read_header_text(mhd).unwrap_or_else(|e| format!("unreadable: {e}").into_bytes());
        let mut h = blake3::Hasher::new();
        h.update(b"prepcache scan fingerprint 1\0");
        h.update(&FORMAT_VERSION.to_le_bytes());
        h.update(serde_json::to_string(&params.codec)?.as_bytes());
        for v in params.crop_shape {
            h.update(&(v as u64).to_le_bytes());
        }
        for v in params.clip_hu {
            h.update(&v.to_le_bytes());
        }
        h.update(&(header.len() as u64).to_le_bytes());
        h.update(&header);
        for (name, size, mtime) in &files {
            h.update(name.as_bytes());
            h.update(&[0]);
            h.update(&size.to_le_bytes());
            h.update(&mtime.to_le_bytes());
        }
        for c in &cands {
            h.update(&[u8::from(c.is_nodule)]);
            h.update(&c.diameter_mm.to_le_bytes());
            for v in c.center_xyz {
                h.update(&v.to_le_bytes());
            }
        }
        plans.push(ScanPlan {
            uid: uid.to_owned(),
            mhd: mhd.clone(),
            input_bytes: files.iter().map(|f| f.1).sum(),
            candidates: cands,
            fingerprint: h.finalize().to_hex().to_string(),
        });
    }
    Ok(plans)
}

/// The most header bytes hashed: the reader's own header cap. The size and
/// mtime of the file are hashed as well, so nothing past it goes unnoticed,
/// and a huge file named `.mhd` is not read whole into memory.
const MAX_HEADER_BYTES: u64 = 16 << 20;

fn read_header_text(mhd: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    fs::File::open(mhd)?
        .take(MAX_HEADER_BYTES)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// `(name, size, mtime ns)` of the regular files in `dir`.
fn list_dir(dir: &Path) -> Result<Vec<(String, u64, u128)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let meta = entry
            .metadata()
            .with_context(|| format!("reading metadata of {}", entry.path().display()))?;
        if !meta.is_file() {
            continue;
        }
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        out.push((
            entry.file_name().to_string_lossy().into_owned(),
            meta.len(),
            mtime,
        ));
    }
    out.sort();
    Ok(out)
}

/// Digest of the whole build's inputs: every scan's fingerprint plus what
/// was left out, so an unchanged rebuild can be recognised from the manifest.
pub fn inputs_fingerprint(
    plans: &[ScanPlan],
    missing_series: usize,
    missing_candidates: usize,
) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"prepcache inputs 1\0");
    for p in plans {
        h.update(p.uid.as_bytes());
        h.update(&[0]);
        h.update(p.fingerprint.as_bytes());
    }
    h.update(&(missing_series as u64).to_le_bytes());
    h.update(&(missing_candidates as u64).to_le_bytes());
    h.finalize().to_hex().to_string()
}
