//! `train analyze`: chapter 14 from scans to a list of nodules (see
//! [`crate::analyze`]), with its files, its terminal table and, against
//! annotations, the book's table and the LUNA16 FROC.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use shared::volume::Volume;
use tch::Device;

use crate::analyze::classify::{ClassifyError, ClassifyOptions};
use crate::analyze::inputs::{default_annotations, split_scans, ScanInput, Truth};
use crate::analyze::matching::{match_and_score, Confusion, Detection, Thresholds};
use crate::analyze::models::{load_classifier, load_unet, Loaded, Role};
use crate::analyze::picture::write_scan_picture;
use crate::analyze::report::{self, ModelFiles, NoduleRecord, Report, ScanRecord, Skipped};
use crate::analyze::report::{TableRecord, NODULES_FILE, NODULES_HEADER, REPORT_FILE};
use crate::analyze::scan::{analyze_volume, AnalyzeError, AnalyzeOptions, Models, ScanAnalysis};
use crate::analyze::segment::{SegmentError, SegmentOptions};
use crate::cli::AnalyzeArgs;
use crate::config::resolve::{threads, Platform};
use crate::evaluate::luna16::{self, Mark, Score};
use crate::evaluate::METRICS_FILE;
use crate::model::compute::ComputeConfig;
use crate::model::{LunaModel, UNet};
use crate::run::checkpoint::TRAINER_FILE;

/// What `train analyze` did.
#[derive(Debug)]
pub struct AnalyzeOutcome {
    pub report: Report,
    pub files: Vec<PathBuf>,
}

/// The models, loaded.
struct Loadout {
    seg: Loaded<UNet>,
    cls: Loaded<LunaModel>,
    mal: Option<Loaded<LunaModel>>,
    platform: Platform,
}

pub fn run(args: &AnalyzeArgs) -> Result<AnalyzeOutcome> {
    refuse_run_folder(&args.out)?;
    let scans = scans_of(args)?;
    let truth = truth_of(args)?;
    let loadout = load_models(args)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    println!(
        "analyze: {} scan(s) on {:?} ({}); writing {}",
        scans.len(),
        loadout.platform.device,
        loadout.platform.compute.describe(),
        args.out.display()
    );
    let mut csv = format!("{NODULES_HEADER}\n");
    let (records, skipped) = analyze_all(args, &loadout, &scans, truth.as_ref(), &mut csv)?;
    let mut files = vec![args.out.join(NODULES_FILE)];
    shared::durable::write_atomically(&files[0], csv.as_bytes())
        .with_context(|| format!("writing {}", files[0].display()))?;
    let (table, froc) = match &truth {
        Some(truth) => score(args, truth, &records, &files[0])?,
        None => (None, None),
    };
    let report = Report {
        tool: format!("train analyze {}", env!("CARGO_PKG_VERSION")),
        models: ModelFiles {
            segmentation: loadout.seg.file.clone(),
            nodule: loadout.cls.file.clone(),
            malignancy: loadout.mal.as_ref().map(|m| m.file.clone()),
        },
        device: format!("{:?}", loadout.platform.device),
        compute: loadout.platform.compute.describe(),
        thresholds: thresholds(args),
        centres: args.centres,
        flip_average: args.flip_average,
        scans: records,
        skipped,
        table,
        froc,
    };
    files.push(write_report(&args.out, &report)?);
    for f in &files {
        println!("analyze: wrote {}", f.display());
    }
    println!(
        "analyze: one picture per scan: {}",
        args.out.join("<seriesuid>.png").display()
    );
    Ok(AnalyzeOutcome { report, files })
}

fn thresholds(args: &AnalyzeArgs) -> Thresholds {
    Thresholds {
        nodule: args.threshold,
        malignant: args.mal_threshold,
    }
}

/// Results go next to a run, never into one: a run folder's files are
/// the run's, and resuming or comparing it would read strangers.
fn refuse_run_folder(out: &Path) -> Result<()> {
    let absolute = std::path::absolute(out).unwrap_or_else(|_| out.to_owned());
    for dir in absolute.ancestors() {
        if dir.join(TRAINER_FILE).is_file() || dir.join(METRICS_FILE).is_file() {
            bail!(
                "--out {}: inside the training run folder {}; give a folder outside it",
                out.display(),
                dir.display()
            );
        }
    }
    Ok(())
}

fn scans_of(args: &AnalyzeArgs) -> Result<Vec<ScanInput>> {
    match &args.data {
        Some(data) => Ok(split_scans(data, args.split, args.val_stride)?),
        None => args
            .scan
            .iter()
            .map(|p| ScanInput::at(p).map_err(anyhow::Error::from))
            .collect(),
    }
}

fn truth_of(args: &AnalyzeArgs) -> Result<Option<Truth>> {
    let file = args
        .annotations
        .clone()
        .or_else(|| args.data.as_deref().and_then(default_annotations));
    file.map(|f| Truth::read(&f).with_context(|| format!("--annotations {}", f.display())))
        .transpose()
}

fn load_models(args: &AnalyzeArgs) -> Result<Loadout> {
    let compute = ComputeConfig {
        precision: args.precision,
        memory_format: args.memory_format,
    };
    let platform = Platform::resolve(&args.device, threads(args.threads), compute)?;
    let (device, compute) = (platform.device, platform.compute);
    let seg = load_unet(&args.seg_model, device, compute)?;
    let cls = load_classifier(&args.cls_model, Role::Nodule, device, compute)?;
    let mal = args
        .mal_model
        .as_deref()
        .map(|p| load_classifier(p, Role::Malignancy, device, compute))
        .transpose()?;
    println!(
        "analyze: segmentation {}, nodules {}{}",
        seg.file.display(),
        cls.file.display(),
        mal.as_ref().map_or_else(String::new, |m| format!(
            ", malignancy {}",
            m.file.display()
        ))
    );
    Ok(Loadout {
        seg,
        cls,
        mal,
        platform,
    })
}

fn options(args: &AnalyzeArgs, platform: &Platform) -> AnalyzeOptions {
    let compute = platform.compute;
    let slices = match platform.device {
        Device::Cpu => 2,
        _ => 16,
    };
    AnalyzeOptions {
        segment: SegmentOptions {
            batch_size: args.batch_size.map_or(slices, |n| n as usize),
            compute,
        },
        classify: ClassifyOptions {
            batch_size: args.cls_batch_size as usize,
            compute,
            flip_average: args.flip_average,
        },
        threshold: args.threshold,
        centres: args.centres,
    }
}

/// Why a scan was not analysed: its data (the others go on) or the models
/// (nothing can go on).
enum Failure {
    Scan(String),
    Fatal(anyhow::Error),
}

fn analyze_all(
    args: &AnalyzeArgs,
    loadout: &Loadout,
    scans: &[ScanInput],
    truth: Option<&Truth>,
    csv: &mut String,
) -> Result<(Vec<ScanRecord>, Vec<Skipped>)> {
    let bar = ProgressBar::new(scans.len() as u64).with_style(
        ProgressStyle::with_template("analyze {pos}/{len} scans [{elapsed} < {eta}] {msg}")
            .expect("static template"),
    );
    let (mut records, mut skipped) = (Vec::new(), Vec::new());
    for scan in scans {
        bar.set_message(scan.series_uid.clone());
        match analyze_one(args, loadout, scan, truth, csv) {
            Ok((record, lines)) => {
                bar.suspend(|| print!("{lines}"));
                records.push(record);
            }
            Err(Failure::Scan(reason)) => {
                bar.suspend(|| println!("analyze: skipped {}: {reason}", scan.path.display()));
                skipped.push(Skipped {
                    scan: scan.path.clone(),
                    reason,
                });
            }
            Err(Failure::Fatal(e)) => {
                bar.abandon();
                return Err(e.context(format!("analysing {}", scan.path.display())));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if records.is_empty() {
        bail!(
            "no scan could be analysed ({} skipped, reasons above)",
            skipped.len()
        );
    }
    Ok((records, skipped))
}

/// One scan: analysed, its rows added to `csv`, its picture and mask
/// written; returns its record and the lines the terminal shows.
fn analyze_one(
    args: &AnalyzeArgs,
    loadout: &Loadout,
    scan: &ScanInput,
    truth: Option<&Truth>,
    csv: &mut String,
) -> Result<(ScanRecord, String), Failure> {
    let clock = Instant::now();
    let volume = scan
        .source
        .read_volume()
        .map_err(|e| Failure::Scan(format!("{e}")))?;
    let models = Models {
        seg: &loadout.seg.model,
        cls: &loadout.cls.model,
        mal: loadout.mal.as_ref().map(|m| &m.model),
        device: loadout.platform.device,
    };
    let read = clock.elapsed().as_secs_f64();
    let mut analysis = analyze_volume(&models, &volume, options(args, &loadout.platform))
        .map_err(classify_failure)?;
    analysis.seconds.read = read;
    report::csv_rows(&scan.series_uid, &analysis, csv);
    let nodules = analysis.nodules(args.threshold);
    let picture = args.out.join(format!("{}.png", scan.series_uid));
    let caption = format!(
        "{}: no nodule ({} candidates)",
        scan.series_uid,
        analysis.candidates.len()
    );
    write_scan_picture(&picture, &volume, &nodules, &caption)
        .map_err(|e| Failure::Fatal(e.into()))?;
    let mask = args
        .keep_mask
        .then(|| write_mask(&args.out, scan, &volume, &analysis))
        .transpose()
        .map_err(Failure::Fatal)?;
    let confusion = truth.map(|t| {
        let detections: Vec<Detection> = analysis.candidates.iter().map(detection).collect();
        match_and_score(&detections, t.of(&scan.series_uid), thresholds(args))
    });
    let mut lines = format!(
        "analyze: {}: {} candidates, {} at or above P {} ({:.1} s)\n",
        scan.series_uid,
        analysis.candidates.len(),
        nodules.len(),
        args.threshold,
        clock.elapsed().as_secs_f64()
    );
    lines.push_str(&report::nodule_table(
        &nodules,
        analysis.candidates.len(),
        args.threshold,
    ));
    if let Some(c) = &confusion {
        lines.push_str(&format!(
            "  truth: {} of {} nodules found, {} false positives\n",
            c.found(),
            c.nodules(),
            c.false_positives()
        ));
    }
    let record = ScanRecord {
        series_uid: scan.series_uid.clone(),
        scan: scan.path.clone(),
        shape: volume.shape,
        candidates: analysis.candidates.len(),
        nodules: nodules.iter().map(|&n| NoduleRecord::from(n)).collect(),
        picture,
        mask,
        seconds: analysis.seconds,
        confusion,
    };
    Ok((record, lines))
}

fn detection(c: &crate::analyze::scan::ClassifiedCandidate) -> Detection {
    Detection {
        center_xyz: c.candidate.center_xyz,
        p_nodule: c.p_nodule,
        p_malignant: c.p_malignant,
    }
}

/// A scan the models cannot take (too small, odd slice size) is that
/// scan's problem; anything else stops the analysis.
fn classify_failure(e: AnalyzeError) -> Failure {
    match &e {
        AnalyzeError::Segment(SegmentError::SliceSize { .. })
        | AnalyzeError::Nodule(ClassifyError::TooSmall(_))
        | AnalyzeError::Malignancy(ClassifyError::TooSmall(_)) => Failure::Scan(e.to_string()),
        _ => Failure::Fatal(e.into()),
    }
}

fn write_mask(
    out: &Path,
    scan: &ScanInput,
    volume: &Volume,
    analysis: &ScanAnalysis,
) -> Result<PathBuf> {
    let path = out.join(format!("{}.mask.mhd", scan.series_uid));
    let bytes: Vec<u8> = analysis.mask.iter().map(|&m| u8::from(m)).collect();
    shared::metaimage::write_u8_image(&path, volume.shape, &volume.geometry, &bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The book's table over every analysed scan, printed, and the LUNA16
/// FROC of nodules.csv over the same scans.
fn score(
    args: &AnalyzeArgs,
    truth: &Truth,
    records: &[ScanRecord],
    nodules_csv: &Path,
) -> Result<(Option<TableRecord>, Option<Score>)> {
    let mut total = Confusion::default();
    for c in records.iter().filter_map(|r| r.confusion) {
        total += c;
    }
    let (with_malignancy, knows) = (args.mal_model.is_some(), truth.knows_malignancy());
    println!("{}", total.render("analyze: total", with_malignancy, knows));
    let shaped = total.shaped(with_malignancy, knows);
    let table = TableRecord::new(&truth.file, &total, shaped, records.len());
    println!(
        "analyze: {} of {} nodules found ({:.1}%), {:.2} false positives per scan",
        table.found,
        table.nodules,
        100.0 * table.found as f64 / table.nodules.max(1) as f64,
        table.false_positives_per_scan
    );
    let scans: Vec<String> = records.iter().map(|r| r.series_uid.clone()).collect();
    let marks = luna16::read_marks(nodules_csv).ok().unwrap_or_default();
    let froc = froc(truth, &marks, &scans);
    Ok((Some(table), froc))
}

fn froc(truth: &Truth, marks: &[Mark], scans: &[String]) -> Option<Score> {
    match luna16::score(&truth.findings, &[], marks, scans, None) {
        Ok(score) => {
            crate::commands::score::print_score_table("analyze", &score);
            Some(score)
        }
        Err(e) => {
            println!("analyze: no FROC: {e}");
            None
        }
    }
}

fn write_report(out: &Path, report: &Report) -> Result<PathBuf> {
    let path = out.join(REPORT_FILE);
    let mut json = serde_json::to_vec_pretty(report).context("encoding report.json")?;
    json.push(b'\n');
    shared::durable::write_atomically(&path, &json)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
