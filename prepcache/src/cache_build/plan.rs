//! What a build has to do: one [`ScanPlan`] per scan with candidates, each
//! with a fingerprint of everything its shard depends on.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result};
use shared::cache::{Codec, FORMAT_VERSION};
use shared::luna::CandidateInfo;
use shared::scan_source::ScanSource;

/// Settings that change every chunk when they change.
#[derive(Clone, Copy, Debug)]
pub struct ChunkParams {
    pub codec: Codec,
    pub crop_shape: [usize; 3],
    pub clip_hu: [i16; 2],
}

pub struct ScanPlan {
    pub uid: String,
    pub source: ScanSource,
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
    series: &BTreeMap<String, ScanSource>,
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
    let mut listings = Listings::default();
    let mut plans = Vec::with_capacity(by_uid.len());
    for (uid, cands) in by_uid {
        let Some(source) = series.get(uid) else {
            continue;
        };
        let (files, header) = scan_files(uid, source, &mut listings)?;
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
            source: source.clone(),
            input_bytes: files.iter().map(|f| f.1).sum(),
            candidates: cands,
            fingerprint: h.finalize().to_hex().to_string(),
        });
    }
    Ok(plans)
}

/// `(name, size, mtime ns)` of one input file.
type FileEntry = (String, u64, u128);

/// A folder's files, listed once per folder.
type Listings = BTreeMap<PathBuf, Vec<FileEntry>>;

/// The files a scan's shard depends on, and the header bytes to hash: a
/// MetaImage's `<uid>.*` files beside it and its header text; a DICOM
/// series' files (their paths, sizes and times say when one changes).
fn scan_files(
    uid: &str,
    source: &ScanSource,
    listings: &mut Listings,
) -> Result<(Vec<FileEntry>, Vec<u8>)> {
    match source {
        ScanSource::MetaImage(mhd) => {
            let dir = mhd.parent().unwrap_or(Path::new(".")).to_owned();
            if !listings.contains_key(&dir) {
                listings.insert(dir.clone(), list_dir(&dir)?);
            }
            let files = listings[&dir]
                .iter()
                .filter(|(name, _, _)| name.strip_prefix(uid).is_some_and(|r| r.starts_with('.')))
                .cloned()
                .collect();
            // An unreadable header (a dangling link, say) is the scan's
            // problem, not the build's: opening it fails again and skips it
            // with the reason. Its error text stands in for the bytes, so
            // the record stays fresh until the file appears.
            let header =
                read_header_text(mhd).unwrap_or_else(|e| format!("unreadable: {e}").into_bytes());
            Ok((files, header))
        }
        ScanSource::Dicom(series) => {
            let files = series
                .files
                .iter()
                .map(|f| file_entry(f))
                .collect::<Result<_>>()?;
            Ok((files, Vec::new()))
        }
        _ => anyhow::bail!(
            "{}: a kind of scan this build does not know",
            source.path().display()
        ),
    }
}

/// `(path, size, mtime ns)` of one file.
fn file_entry(path: &Path) -> Result<FileEntry> {
    let meta =
        fs::metadata(path).with_context(|| format!("reading metadata of {}", path.display()))?;
    Ok((
        path.to_string_lossy().into_owned(),
        meta.len(),
        mtime_ns(&meta),
    ))
}

fn mtime_ns(meta: &fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
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
fn list_dir(dir: &Path) -> Result<Vec<FileEntry>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let meta = entry
            .metadata()
            .with_context(|| format!("reading metadata of {}", entry.path().display()))?;
        if !meta.is_file() {
            continue;
        }
        out.push((
            entry.file_name().to_string_lossy().into_owned(),
            meta.len(),
            mtime_ns(&meta),
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
