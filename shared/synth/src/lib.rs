//! Deterministic synthetic LUNA-like dataset (`prepcache synth`).
//!
//! Writes `subset*/<uid>.mhd + .raw`, `candidates.csv` and `annotations.csv`
//! in LUNA's layout, so every tool runs on it unchanged, plus the book's
//! chapter 14 `annotations_with_malignancy.csv` (labels by
//! [`is_malignant`], see [`malignancy`](mod@malignancy)). Each series is a
//! crude chest CT (body, fat, spine, lungs, branching vessels, nodules,
//! pleural plaques that look like nodules but are not, noise) with anisotropic spacing, non-zero origins and, for some series,
//! flipped x/y axes; candidates are placed in the grid and converted to
//! world millimetres through the series' [`Geometry`], so they land where
//! the reader says they do. Series `k` draws from its own ChaCha8 stream of
//! `seed`, so output is byte-identical for a seed whatever the thread count.

mod anatomy;
mod lookalikes;
pub mod malignancy;
mod placement;
mod sample;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use anatomy::{grow_vessels, Anatomy, Grid, Nodule, VesselParams, Vessels, OUTSIDE_FOV_HU};
use lookalikes::{lookalike_rng, place_plaques, LookalikeParams};
use placement::{place_candidates, place_nodules, CandidateParams, NoduleParams};
use sample::{normal, uniform};
use shared::durable::write_atomically;
use shared::geometry::{Geometry, IDENTITY};
use shared::luna::{
    AnnotationRow, CandidateRow, ANNOTATIONS_HEADER, ANNOTATIONS_WITH_MALIGNANCY_HEADER,
    CANDIDATES_HEADER,
};
use shared::metaimage::{write_volume, MetaImageError};
use shared::volume::Volume;

pub use malignancy::{
    is_malignant, reader_ratings, NoduleMalignancy, MALIGNANT_BUMP_MM, MALIGNANT_DIAMETER_MM,
};

/// Size of the generated scans.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Preset {
    /// 128×128×(40–60) voxels, ~60–120 candidates, ~1 positive in 20: small
    /// enough for tests and a demo that trains in minutes.
    #[default]
    Tiny,
    /// 512×512×(100–300) voxels, ~600 candidates, ~1 positive in 400, like LUNA.
    Luna,
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "tiny" => Ok(Preset::Tiny),
            "luna" => Ok(Preset::Luna),
            _ => Err(format!("unknown preset {s:?} (expected tiny or luna)")),
        }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Preset::Tiny => "tiny",
            Preset::Luna => "luna",
        })
    }
}

#[derive(Debug, Clone)]
pub struct SynthOptions {
    pub out: PathBuf,
    pub series: usize,
    pub seed: u64,
    pub preset: Preset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthSummary {
    pub series: usize,
    pub candidates: usize,
    pub positives: usize,
    /// Bytes written, scans and CSVs together.
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        // Shown in the message, so not also returned as source(): the
        // "a: b" chain printers would repeat it.
        error: std::io::Error,
    },
    /// A scan could not be written (the message names the file).
    #[error(transparent)]
    Scan(#[from] MetaImageError),
    #[error("the number of series must be at least 1")]
    NoSeries,
}

impl From<shared::durable::DurableWriteError> for SynthError {
    fn from(e: shared::durable::DurableWriteError) -> Self {
        SynthError::Io {
            path: e.path,
            error: e.error,
        }
    }
}

/// One generated series, before it is written.
#[derive(Debug, Clone)]
pub struct SynthSeries {
    pub uid: String,
    /// Voxels as written to the .raw: air noise dips below -1000 and some
    /// scans pad outside a circular field of view with -2048, as real LUNA
    /// scans do; crops clip to [-1000, 1000] (`shared::hu`).
    pub volume: Volume,
    /// In the order written to candidates.csv; coordinates as written.
    pub candidates: Vec<CandidateRow>,
    pub annotations: Vec<AnnotationRow>,
    /// One per annotation, in the same order: what
    /// annotations_with_malignancy.csv adds to it.
    pub malignancy: Vec<NoduleMalignancy>,
    /// World centres of the look-alikes (pleural plaques): neither
    /// annotated nor candidates.
    pub lookalikes_xyz: Vec<[f64; 3]>,
}

pub const UID_PREFIX: &str = "1.3.6.1.4.1.14519.5.2.1.6279.6001.";

/// The chapter 14 annotations file written beside annotations.csv.
pub const ANNOTATIONS_WITH_MALIGNANCY_CSV: &str = "annotations_with_malignancy.csv";

struct PresetParams {
    in_plane: usize,
    slices: (usize, usize),
    /// Target scan length (mm); slices follow from the z spacing.
    length_mm: Option<(f64, f64)>,
    vessels: VesselParams,
    nodules: NoduleParams,
    lookalikes: LookalikeParams,
    candidates: CandidateParams,
}

fn params(preset: Preset) -> PresetParams {
    match preset {
        Preset::Tiny => PresetParams {
            in_plane: 128,
            slices: (40, 60),
            length_mm: None,
            vessels: VesselParams {
                trees_per_lung: 4,
                root_radius: (1.4, 2.2),
                crossings_per_lung: 3,
            },
            nodules: NoduleParams {
                count: (3, 6),
                diameter_mm: (4.0, 14.0),
            },
            lookalikes: LookalikeParams {
                plaques_per_lung: (1, 3),
            },
            candidates: CandidateParams {
                total: (60, 120),
                second_hit: 0.15,
                missed: 0.0,
            },
        },
        Preset::Luna => PresetParams {
            in_plane: 512,
            slices: (100, 300),
            length_mm: Some((260.0, 380.0)),
            vessels: VesselParams {
                trees_per_lung: 40,
                root_radius: (2.2, 3.0),
                crossings_per_lung: 30,
            },
            nodules: NoduleParams {
                count: (0, 3),
                diameter_mm: (3.0, 30.0),
            },
            lookalikes: LookalikeParams {
                plaques_per_lung: (4, 10),
            },
            candidates: CandidateParams {
                total: (500, 700),
                second_hit: 0.15,
                missed: 0.05,
            },
        },
    }
}

const Z_SPACINGS: [f64; 6] = [1.0, 1.25, 1.5, 1.8, 2.0, 2.5];
const NOISE_SD_HU: f64 = 20.0;

/// Generate series `index` of the dataset for `seed` in memory.
pub fn generate_series(seed: u64, index: usize, preset: Preset) -> SynthSeries {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index as u64);
    let p = params(preset);
    // Every step below draws from `rng`: their order fixes the output bytes.
    let uid = series_uid(&mut rng, index);
    let (grid, geometry) = scan_geometry(&mut rng, &p);
    let anatomy = Anatomy::new(&mut rng, grid);
    let mut lookalikes = lookalike_rng(seed, index);
    let (hu, vessels, nodules, plaques) = paint_scan(&mut rng, &mut lookalikes, &anatomy, &p);
    let (candidates, annotations) = series_rows(
        &mut rng,
        &uid,
        &anatomy,
        &vessels,
        &nodules,
        &p.candidates,
        &geometry,
    );
    // No draws from here on: the labels follow from the nodules as painted.
    let malignancy = nodules
        .iter()
        .map(|n| n.malignancy(&grid, &geometry))
        .collect();
    let lookalikes_xyz = plaques
        .iter()
        .map(|n| geometry.irc_to_xyz(grid.irc(n.center)))
        .collect();
    SynthSeries {
        uid,
        volume: Volume::new(grid.shape, hu, geometry).expect("one voxel per grid point"),
        candidates,
        annotations,
        malignancy,
        lookalikes_xyz,
    }
}

fn series_uid(rng: &mut ChaCha8Rng, index: usize) -> String {
    let digits: String = (0..24)
        .map(|k| char::from(b'0' + rng.random_range(u8::from(k == 0)..10)))
        .collect();
    format!("{UID_PREFIX}{digits}{index:06}")
}

/// The voxel grid and its placement in the world: spacing, scan length,
/// axis flips and origin.
fn scan_geometry(rng: &mut ChaCha8Rng, p: &PresetParams) -> (Grid, Geometry) {
    // Binary fractions keep the header's decimal text exact.
    let quantize = |v: f64, step: f64| (v / step).round() * step;
    let sxy = quantize(uniform(rng, 0.6, 0.9), 1.0 / 1024.0);
    let sz = Z_SPACINGS[rng.random_range(0..Z_SPACINGS.len())];
    let slices = match p.length_mm {
        Some((lo, hi)) => {
            ((uniform(rng, lo, hi) / sz).round() as usize).clamp(p.slices.0, p.slices.1)
        }
        None => rng.random_range(p.slices.0..=p.slices.1),
    };
    let n = p.in_plane;
    let grid = Grid {
        shape: [slices, n, n],
        spacing: [sxy, sxy, sz],
    };
    let flipped = rng.random::<f64>() < 0.3;
    let half_fov = 0.5 * n as f64 * sxy;
    let (direction, sign) = if flipped {
        ([[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]], 1.0)
    } else {
        (IDENTITY, -1.0)
    };
    let geometry = Geometry::new(
        [
            quantize(sign * half_fov + uniform(rng, -20.0, 20.0), 1.0 / 256.0),
            quantize(sign * half_fov + uniform(rng, -20.0, 20.0), 1.0 / 256.0),
            quantize(uniform(rng, -380.0, -40.0), 1.0 / 256.0),
        ],
        grid.spacing,
        direction,
    );
    (grid, geometry)
}

/// The scan's voxels in HU, with the vessels, nodules and look-alikes
/// (drawn from `lookalikes`) painted into them.
fn paint_scan(
    rng: &mut ChaCha8Rng,
    lookalikes: &mut ChaCha8Rng,
    anatomy: &Anatomy,
    p: &PresetParams,
) -> (Vec<i16>, Vessels, Vec<Nodule>, Vec<Nodule>) {
    let [slices, rows, cols] = anatomy.grid.shape;
    let mut hu = vec![0i16; slices * rows * cols];
    anatomy.paint_base(&mut hu);
    let vessels = grow_vessels(rng, anatomy, &p.vessels);
    for s in &vessels.segments {
        anatomy.paint_segment(&mut hu, s);
    }
    let nodules = place_nodules(rng, anatomy, &vessels, &p.nodules);
    for nodule in &nodules {
        anatomy.paint_nodule(&mut hu, nodule);
    }
    let plaques = place_plaques(lookalikes, anatomy, &nodules, &p.lookalikes);
    for plaque in &plaques {
        anatomy.paint_nodule(&mut hu, plaque);
    }
    add_noise(rng, anatomy, &mut hu);
    (hu, vessels, nodules, plaques)
}

/// The series' candidates.csv and annotations.csv rows, in world millimetres.
fn series_rows(
    rng: &mut ChaCha8Rng,
    uid: &str,
    anatomy: &Anatomy,
    vessels: &Vessels,
    nodules: &[Nodule],
    params: &CandidateParams,
    geometry: &Geometry,
) -> (Vec<CandidateRow>, Vec<AnnotationRow>) {
    let world = |p: [f64; 3]| geometry.irc_to_xyz(anatomy.grid.irc(p));
    // LUNA's candidates.csv has two decimals; annotations keep full precision.
    let two_decimals = |xyz: [f64; 3]| xyz.map(|v| (v * 100.0).round() / 100.0);
    let mut candidates: Vec<CandidateRow> =
        place_candidates(rng, anatomy, vessels, nodules, params)
            .into_iter()
            .map(|c| CandidateRow {
                series_uid: uid.to_owned(),
                center_xyz: two_decimals(world(c.p)),
                is_nodule: c.is_nodule,
            })
            .collect();
    candidates.shuffle(rng);
    let annotations = nodules
        .iter()
        .map(|n| AnnotationRow {
            series_uid: uid.to_owned(),
            center_xyz: world(n.center),
            diameter_mm: n.diameter_mm,
        })
        .collect();
    (candidates, annotations)
}

/// Gaussian noise from a table indexed by random u16s: a full Box–Muller
/// per voxel would dominate the run time of the large preset.
fn add_noise(rng: &mut ChaCha8Rng, anatomy: &Anatomy, hu: &mut [i16]) {
    let table: Vec<f32> = (0..1usize << 16)
        .map(|_| (normal(rng) * NOISE_SD_HU) as f32)
        .collect();
    let [ni, nr, nc] = anatomy.grid.shape;
    let mut bits = 0u64;
    let mut left = 0;
    for i in 0..ni {
        for r in 0..nr {
            let row = &mut hu[(i * nr + r) * nc..(i * nr + r + 1) * nc];
            for (c, v) in row.iter_mut().enumerate() {
                if left == 0 {
                    bits = rng.random::<u64>();
                    left = 4;
                }
                let noise = table[(bits & 0xffff) as usize];
                bits >>= 16;
                left -= 1;
                *v = if anatomy.in_fov(anatomy.grid.mm(i, r, c)) {
                    (f32::from(*v) + noise).round().clamp(-1100.0, 3000.0) as i16
                } else {
                    OUTSIDE_FOV_HU
                };
            }
        }
    }
}

/// How many `subset*` folders `series` scans are spread over.
pub fn subset_count(series: usize) -> usize {
    series.div_ceil(4).clamp(1, 10)
}

/// `out/subset<k>/<uid>.mhd` for series `index`.
pub fn series_path(out: &Path, index: usize, series: usize, uid: &str) -> PathBuf {
    out.join(format!("subset{}", index % subset_count(series)))
        .join(format!("{uid}.mhd"))
}

/// Generate and write the whole dataset; `progress(done, total)` is called
/// (from worker threads) after each series.
pub fn generate(
    opts: &SynthOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<SynthSummary, SynthError> {
    if opts.series == 0 {
        return Err(SynthError::NoSeries);
    }
    create_subset_dirs(opts)?;
    let rows = write_all_series(opts, progress)?;
    write_csvs(opts, rows)
}

fn create_subset_dirs(opts: &SynthOptions) -> Result<(), SynthError> {
    for k in 0..subset_count(opts.series) {
        let dir = opts.out.join(format!("subset{k}"));
        std::fs::create_dir_all(&dir).map_err(|error| SynthError::Io {
            path: dir.clone(),
            error,
        })?;
    }
    Ok(())
}

/// One written series' CSV rows and the bytes its scan took.
#[derive(Debug, Clone)]
struct SeriesRows {
    candidates: Vec<CandidateRow>,
    annotations: Vec<AnnotationRow>,
    malignancy: Vec<NoduleMalignancy>,
    bytes: u64,
}

/// Generates and writes every series on worker threads; the rows come back
/// in series order, whatever order the workers finished in.
fn write_all_series(
    opts: &SynthOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<SeriesRows>, SynthError> {
    let results: Mutex<Vec<Option<SeriesRows>>> = Mutex::new(vec![None; opts.series]);
    let first_error: Mutex<Option<SynthError>> = Mutex::new(None);
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    // Each worker holds one whole volume (up to ~150 MB at the luna preset).
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
        .min(opts.series);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= opts.series || failed.load(Ordering::Relaxed) {
                    break;
                }
                let series = generate_series(opts.seed, index, opts.preset);
                match write_series(&opts.out, index, opts.series, &series) {
                    Ok(bytes) => {
                        if let Ok(mut r) = results.lock() {
                            r[index] = Some(SeriesRows {
                                candidates: series.candidates,
                                annotations: series.annotations,
                                malignancy: series.malignancy,
                                bytes,
                            });
                        }
                        progress(done.fetch_add(1, Ordering::Relaxed) + 1, opts.series);
                    }
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        if let Ok(mut slot) = first_error.lock() {
                            slot.get_or_insert(e);
                        }
                        break;
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    let results = results.into_inner().unwrap_or_default();
    Ok(results.into_iter().flatten().collect())
}

/// Writes candidates.csv, annotations.csv and annotations_with_malignancy.csv
/// from every series' rows and sums up the run.
fn write_csvs(opts: &SynthOptions, rows: Vec<SeriesRows>) -> Result<SynthSummary, SynthError> {
    let mut summary = SynthSummary {
        series: opts.series,
        candidates: 0,
        positives: 0,
        bytes: 0,
    };
    let mut cand_csv = format!("{}\n", CANDIDATES_HEADER.join(","));
    let mut ann_csv = format!("{}\n", ANNOTATIONS_HEADER.join(","));
    let mut mal_csv = format!("{}\n", ANNOTATIONS_WITH_MALIGNANCY_HEADER.join(","));
    for series in rows {
        let SeriesRows {
            candidates,
            annotations,
            malignancy,
            bytes,
        } = series;
        summary.bytes += bytes;
        summary.candidates += candidates.len();
        for c in &candidates {
            summary.positives += usize::from(c.is_nodule);
            let [x, y, z] = c.center_xyz;
            let _ = writeln!(
                cand_csv,
                "{},{x},{y},{z},{}",
                c.series_uid,
                u8::from(c.is_nodule)
            );
        }
        for (a, m) in annotations.iter().zip(&malignancy) {
            let [x, y, z] = a.center_xyz;
            let _ = writeln!(ann_csv, "{},{x},{y},{z},{}", a.series_uid, a.diameter_mm);
            // The same text as annotations.csv, then the book's extra columns.
            let [lx, ly, lz] = m.bbox_low_xyz;
            let [hx, hy, hz] = m.bbox_high_xyz;
            let details: Vec<String> = m.ratings.iter().map(u8::to_string).collect();
            let _ = writeln!(
                mal_csv,
                "{},{x},{y},{z},{},{},\"[{}]\",{lx},{ly},{lz},{hx},{hy},{hz},{}",
                a.series_uid,
                a.diameter_mm,
                if m.malignant { "True" } else { "False" },
                details.join(", "),
                m.ratings.len()
            );
        }
    }
    for (name, text) in [
        ("candidates.csv", cand_csv),
        ("annotations.csv", ann_csv),
        (ANNOTATIONS_WITH_MALIGNANCY_CSV, mal_csv),
    ] {
        let path = opts.out.join(name);
        write_atomically(&path, text.as_bytes())?;
        summary.bytes += text.len() as u64;
    }
    Ok(summary)
}

fn write_series(
    out: &Path,
    index: usize,
    series: usize,
    s: &SynthSeries,
) -> Result<u64, SynthError> {
    let path = series_path(out, index, series, &s.uid);
    write_volume(&path, &s.volume)?;
    let header = std::fs::metadata(&path).map_or(0, |m| m.len());
    Ok(header + 2 * s.volume.voxels.len() as u64)
}
