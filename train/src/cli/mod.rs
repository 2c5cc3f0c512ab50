//! The `train` command line (the book's flags, plus run control). clap's
//! types stay in this module: what leaves it is a validated
//! [`RunConfig`](crate::config::RunConfig) or plain options structs.

mod train;

use std::path::PathBuf;

use clap::builder::TypedValueParser;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::analyze::CentreRule;
use crate::config::{RunConfig, SplitBy};
use crate::data::split::Split;
use crate::model::compute::{self, ComputeConfig, MemoryFormat, Precision};
pub use train::TrainArgs;

const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (libtorch ",
    env!("LIBTORCH_VERSION"),
    ")"
);

#[derive(Parser, Debug)]
#[command(
    name = "train",
    version,
    long_version = LONG_VERSION,
    about = "Train the LunaModel nodule-candidate classifier from a prepcache cache",
    long_about = "Train the LunaModel nodule-candidate classifier (Deep Learning with PyTorch, \
chapters 11-12) from a cache written by `prepcache build`.\n\nEach epoch trains on the \
training split, then evaluates on the validation split (every --val-stride-th candidate), \
prints a metrics table, appends it to metrics.jsonl, writes TensorBoard events and \
saves a checkpoint.",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub train: TrainArgs,
}

impl Cli {
    /// Parses the command line; exits with clap's message on an error.
    pub fn parse_args() -> Cli {
        let matches = Cli::command()
            .mut_subcommand("seg", segmentation_defaults)
            .get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

/// `train seg` shares `train`'s flags but starts from the chapter 13
/// preset: its `--help` says the preset's defaults, not the classifier's.
fn segmentation_defaults(seg: clap::Command) -> clap::Command {
    const CHANGES: [(&str, &str, &str); 7] = [
        ("cache", "`prepcache build`", "`prepcache seg`"),
        ("batch_size", "[default: 32]", "[default: 16]"),
        ("optimizer", "[default: sgd]", "[default: adam]"),
        ("tb_prefix", "[default: p2ch12]", "[default: p2ch13]"),
        (
            "comment",
            "[default: dwlpt; `train seg`: seg]",
            "[default: seg]",
        ),
        // clap drops a one-paragraph help's final full stop.
        ("validate_every", "Default: every epoch", "[default: 5]"),
        (
            "epoch_samples",
            "or a cap on an unbalanced one",
            "or a cap on an unbalanced one [default: 300000, the book's]",
        ),
    ];
    CHANGES.iter().fold(seg, |seg, &(id, from, to)| {
        seg.mut_arg(id, |arg| {
            let help = arg.get_help().map(|h| h.to_string().replace(from, to));
            let long = arg.get_long_help().map(|h| h.to_string().replace(from, to));
            let arg = match help {
                Some(h) => arg.help(h),
                None => arg,
            };
            match long {
                Some(h) => arg.long_help(h),
                None => arg,
            }
        })
    })
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the libtorch version, CUDA/cuDNN availability and the devices seen.
    Doctor,
    /// Measure how fast the loader fills batch buffers (no model), for 1..N
    /// workers, against single-thread decompression × workers.
    BenchLoader(BenchLoaderArgs),
    /// Time LunaModel training steps (forward + backward + SGD) on random
    /// input, per batch size: the figure to compare with PyTorch's step.
    BenchStep(BenchStepArgs),
    /// Train chapter 13's U-Net segmentation model on a cache written by
    /// `prepcache seg` (the book's recipe: Adam 1e-3, batch 16, 300,000
    /// samples an epoch, slice-and-mask augmentation); the same flags,
    /// resume, checkpoints and records as training the classifier.
    Seg(Box<TrainArgs>),
    /// Score a checkpoint on a split of the cache: metrics table, ROC AUC,
    /// average precision, LUNA16 FROC/CPM; writes eval.json and PNG plots.
    Eval(EvalArgs),
    /// Write LUNA16 submission rows (seriesuid,coordX,coordY,coordZ,probability)
    /// for every candidate of a split; labels are not used.
    Predict(PredictArgs),
    /// Score any LUNA16 submission CSV exactly as the challenge's evaluation
    /// script does: sensitivities at 1/8..8 FPs/scan, CPM, bootstrap
    /// intervals; writes score.json, CADAnalysis.txt and froc.png.
    Score(ScoreSubmissionArgs),
    /// Import the book's `.state` checkpoint (or any torch.save file of a
    /// LunaModel or UNetWrapper state dict) as DIR/model.safetensors, which
    /// `eval` and `predict` load like a run's.
    #[command(long_about = IMPORT_STATE_HELP)]
    ImportState(ImportStateArgs),
    /// Find the nodules in CT scans (chapter 14): the U-Net over every
    /// slice, its mask's components as candidates, each classified as a
    /// nodule and, with --mal-model, as malignant; writes nodules.csv,
    /// report.json and a picture per scan, and with annotations the book's
    /// table and the LUNA16 FROC/CPM.
    #[command(long_about = ANALYZE_HELP)]
    Analyze(Box<AnalyzeArgs>),
    /// Compare runs side by side: the settings that differ, the best and
    /// last epochs' validation metrics (mean ± sd over runs that differ
    /// only in their seed); writes compare.md, compare.csv and F1/recall
    /// plots per epoch.
    Compare(CompareArgs),
    /// Run a study: every variant of a base config (a [grid] of values
    /// and/or named [[variant]]s) for each seed, as child runs, a few at a
    /// time; resumable; writes <out>/sweep.json.
    #[command(after_long_help = crate::sweep::FORMAT_HELP)]
    Sweep(SweepArgs),
}

const IMPORT_STATE_HELP: &str = "Import a torch.save file of the book's models as our \
model.safetensors.\n\nReads the book's `.state` checkpoints (`{'model_state': \
model.state_dict(), 'epoch': ..., ...}`, written by torch < 1.6 in the legacy format) or \
any torch.save file, zip or legacy, of a bare state dict. Nothing in the file is executed: \
only tensors and plain values are read. The model is recognised by its tensor names \
(the book's LunaModel, chapters 11-12, or its UNetWrapper, chapter 13), and every tensor's \
name and shape must be those of that model in the book's configuration; the first that \
is not is named. Writes DIR/model.safetensors with the architecture metadata training \
records: a classifier is then scored with `train eval --checkpoint DIR`.";

const ANALYZE_HELP: &str = "Find the nodules in CT scans, as the book's chapter 14 \
(p2ch14/nodule_analysis.py) does.\n\nFor each scan: the U-Net (--seg-model) runs over every \
slice with 3 context slices on either side; P > 0.5 is the mask, eroded once (the 3-D cross) \
and cut into 6-connected components; each component's HU-weighted centre of mass is a \
candidate, classified by --cls-model on the 32×48×48 crop around it and, at or above \
--threshold, by --mal-model. Models are a run's checkpoint folder (its best epoch when it has \
one), a model.safetensors, or the book's .state files as they are.\n\nWrites OUT/nodules.csv \
(every candidate: seriesuid,coordX,coordY,coordZ,probability,malignancy; `train score` reads \
it), OUT/report.json, OUT/<seriesuid>.png (each nodule on its slice) and with --keep-mask \
OUT/<seriesuid>.mask.mhd. With annotations (--annotations, or the data folder's \
annotations_with_malignancy.csv or annotations.csv) it prints the book's table (non-nodules, \
benign, malignant against complete miss, filtered out, predicted benign, predicted \
malignant; a detection matches a nodule within 0.7 of its diameter) and scores nodules.csv \
with the official LUNA16 FROC/CPM over the analysed scans.";

/// `train analyze`.
#[derive(Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["scan", "data"])))]
pub struct AnalyzeArgs {
    /// A scan to analyse (repeat for more): a .mhd/.mha file, whose name is
    /// its series UID as in LUNA16, or a folder holding one DICOM series
    /// (at any depth, e.g. LIDC-IDRI's patient/study/series), which names
    /// itself.
    #[arg(long, value_name = "PATH")]
    pub scan: Vec<PathBuf>,
    /// A LUNA16-layout folder (subset*/<uid>.mhd, annotations): analyse
    /// the series of --split, as the book's --run-validation does.
    #[arg(long, value_name = "DIR", conflicts_with = "scan")]
    pub data: Option<PathBuf>,
    /// With --data: val (every --val-stride-th series of the sorted list,
    /// those `prepcache seg` and `--split-by series` hold out), train or all.
    #[arg(long, value_parser = split_parser(), default_value = "val", requires = "data")]
    pub split: Split,
    /// With --data: every N-th series is validation.
    #[arg(long, default_value_t = 10, value_name = "N", value_parser = clap::value_parser!(u32).range(2..))]
    pub val_stride: u32,
    /// The segmentation U-Net: a `train seg` run's folder, its
    /// model.safetensors, or the book's seg_*.state.
    #[arg(long, value_name = "MODEL")]
    pub seg_model: PathBuf,
    /// The nodule classifier: a `train` run's folder, its
    /// model.safetensors, or the book's cls_*.state.
    #[arg(long, value_name = "MODEL")]
    pub cls_model: PathBuf,
    /// The malignancy classifier (optional), in the same forms.
    #[arg(long, value_name = "MODEL")]
    pub mal_model: Option<PathBuf>,
    /// Folder for nodules.csv, report.json and the pictures (created;
    /// never inside a training run's folder).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// P(nodule) from which a candidate is a nodule (the book's 0.5).
    #[arg(long, default_value_t = 0.5, value_name = "P", value_parser = probability)]
    pub threshold: f32,
    /// P(malignant) from which a nodule is predicted malignant.
    #[arg(long, default_value_t = 0.5, value_name = "P", value_parser = probability)]
    pub mal_threshold: f32,
    /// Annotations to score against (annotations.csv columns; with
    /// mal_bool, as annotations_with_malignancy.csv, the table splits
    /// benign from malignant). Default with --data: the folder's.
    #[arg(long, value_name = "CSV")]
    pub annotations: Option<PathBuf>,
    /// Where a component of the mask gets its candidates: book (one, at its
    /// HU-weighted centre of mass, as the book's groupSegmentationOutput)
    /// or thickest (that, and one at the component's thickest point when
    /// the centre of mass lies outside the ball inscribed there: a nodule
    /// grown into a vessel or the lung's edge pulls the centre of mass off
    /// itself) or balls (that, and up to two more at the centres of
    /// further balls inscribed in the component, 2 mm in radius or more,
    /// each overlapping none before it: two nodules in one component,
    /// or a nodule beside a thicker plaque).
    #[arg(long, default_value = "book", value_name = "RULE", value_parser = centre_rule)]
    pub centres: CentreRule,
    /// Score each candidate as the mean over its crop and the crop's three
    /// in-plane flips (beyond the book; four classifier passes instead of
    /// one: 2.8 → 10.4 s for a LUNA-size scan's ~930 candidates on two
    /// cores).
    #[arg(long)]
    pub flip_average: bool,
    /// Also write each scan's eroded mask as OUT/<seriesuid>.mask.mhd
    /// (uint8, the scan's geometry) for 3D Slicer and friends.
    #[arg(long)]
    pub keep_mask: bool,
    /// Slices per U-Net pass [default: 2 on the CPU, where larger batches
    /// only spill the caches (a 512×512×257 scan: 8.6 s at 2, 9.6 s at 8),
    /// 16 on CUDA].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch_size: Option<u32>,
    /// Crops per classifier pass.
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100000))]
    pub cls_batch_size: u32,
    /// Where to run: auto (CUDA when available), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_name = "DEVICE")]
    pub device: String,
    /// CPU threads libtorch may use (default: libtorch's choice).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,
    /// fp32, bf16, fp16 (CUDA) or auto: see `train --help`.
    #[arg(long, value_name = "P", value_parser = compute::parse_precision, default_value = "auto")]
    pub precision: Precision,
    /// channels-last, contiguous or auto: see `train --help`.
    #[arg(long, value_name = "F", value_parser = compute::parse_memory_format, default_value = "auto")]
    pub memory_format: MemoryFormat,
}

fn centre_rule(s: &str) -> Result<CentreRule, String> {
    match s {
        "book" => Ok(CentreRule::Book),
        "thickest" => Ok(CentreRule::Thickest),
        "balls" => Ok(CentreRule::Balls),
        _ => Err(format!("'{s}': expected book, thickest or balls")),
    }
}

fn probability(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{s:?}: a probability from 0 to 1")),
    }
}

fn split_by_parser() -> impl clap::builder::TypedValueParser<Value = SplitBy> {
    clap::builder::PossibleValuesParser::new(["candidate", "series"])
        .map(|s| s.parse::<SplitBy>().unwrap_or_default())
}

fn split_parser() -> impl clap::builder::TypedValueParser<Value = Split> {
    clap::builder::PossibleValuesParser::new(["val", "train", "all"])
        .map(|s| s.parse::<Split>().unwrap_or(Split::All))
}

/// Options shared by `eval` and `predict`: the model, the data and where to run.
#[derive(Args, Debug, Clone)]
pub struct ScoreArgs {
    /// Cache directory written by `prepcache build`.
    #[arg(long, value_name = "DIR")]
    pub cache: PathBuf,
    /// A run's checkpoint directory (`…-cls-…`) or its model.safetensors.
    #[arg(long, value_name = "CKPT")]
    pub checkpoint: PathBuf,
    /// Every N-th candidate (of the book-ordered list) is in the validation split.
    #[arg(long, default_value_t = 10, value_name = "N", value_parser = clap::value_parser!(u32).range(2..))]
    pub val_stride: u32,
    /// What --val-stride counts: every N-th `candidate` of the list, or
    /// every N-th `series` of the sorted series list with all its
    /// candidates; use what the model was trained with.
    #[arg(long, default_value = "candidate", value_name = "BY", value_parser = split_by_parser())]
    pub split_by: SplitBy,
    /// Samples per forward pass (1 to 100000).
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    /// Threads decoding cached crops (1 to 256).
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub num_workers: u32,
    /// Where to run: auto (CUDA when available), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_name = "DEVICE")]
    pub device: String,
    /// CPU threads libtorch may use (default: libtorch's choice).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,
    /// fp32, bf16, fp16 (CUDA) or auto: see `train --help`.
    #[arg(long, value_name = "P", value_parser = compute::parse_precision, default_value = "auto")]
    pub precision: Precision,
    /// channels-last, contiguous or auto: see `train --help`.
    #[arg(long, value_name = "F", value_parser = compute::parse_memory_format, default_value = "auto")]
    pub memory_format: MemoryFormat,
}

impl ScoreArgs {
    /// The settings `eval` and `predict` run with, as a [`RunConfig`] for
    /// [`resolve`](crate::config::resolve::resolve): the data and where to
    /// run (the model comes from the checkpoint).
    pub fn config(&self) -> RunConfig {
        let mut config = RunConfig::default();
        let d = &mut config.data;
        d.cache = Some(self.cache.clone());
        d.val_stride = self.val_stride;
        d.split_by = self.split_by;
        d.batch_size = self.batch_size;
        d.num_workers = self.num_workers;
        config.run.device = self.device.clone();
        config.run.threads = self.threads;
        config.compute = ComputeConfig {
            precision: self.precision,
            memory_format: self.memory_format,
        };
        config
    }
}

#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    #[command(flatten)]
    pub score: ScoreArgs,
    /// Candidates to evaluate: val (every --val-stride-th, as training
    /// validates), train, or all.
    #[arg(long, value_parser = split_parser(), default_value = "val")]
    pub split: Split,
    /// Folder for eval.json and the plots (default: the checkpoint's folder).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// LUNA16 annotations.csv: the FROC/CPM's nodules. Without it they are
    /// approximated by the cache's positive candidates (and the report says so).
    #[arg(long, value_name = "CSV")]
    pub annotations: Option<PathBuf>,
    /// LUNA16 annotations_excluded.csv: marks on these findings are ignored.
    #[arg(long, value_name = "CSV", requires = "annotations")]
    pub annotations_excluded: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct ImportStateArgs {
    /// The torch.save file: a book checkpoint such as
    /// `cls_2020-02-06_14.16.55_final-nodule-nonnodule.best.state`.
    #[arg(value_name = "FILE.state")]
    pub file: PathBuf,
    /// Folder to write model.safetensors into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace a model.safetensors already in DIR (a training run's folder,
    /// one with trainer.safetensors, is refused even so).
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug, Clone)]
pub struct SweepArgs {
    /// The sweep file (format below).
    #[arg(value_name = "SWEEP.toml")]
    pub file: PathBuf,
    /// Cache directory every run reads (default: the base config's).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Seeds each variant runs with (default: the base config's run.seed).
    #[arg(long, value_name = "S,...", value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Runs at once; the CPU threads are split between them.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..1025).map(|n| n as usize))]
    pub parallel: usize,
    /// Folder of the sweep's runs and sweep.json (default:
    /// <base run.runs>/sweeps/<sweep file stem>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// CPU threads of all the runs together (default: the machine's).
    #[arg(long, value_name = "T", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// Print what each run would do (start, resume, skip) and stop.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Run folders (`<runs>/<tb_prefix>/<stamp>-cls-<comment>/`) or folders
    /// searched for them, such as a `train sweep` output or a runs folder.
    #[arg(value_name = "RUN_OR_FOLDER", required = true)]
    pub runs: Vec<PathBuf>,
    /// Folder for compare.md, compare.csv and the plots (default: the
    /// folder given, when only one is, else ./compare).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct ScoreSubmissionArgs {
    /// The submission: seriesuid,coordX,coordY,coordZ,probability (header
    /// required, any row or column order, extra columns ignored).
    #[arg(long, value_name = "CSV")]
    pub predictions: PathBuf,
    /// LUNA16 annotations.csv (seriesuid,coordX,coordY,coordZ,diameter_mm).
    #[arg(long, value_name = "CSV")]
    pub annotations: PathBuf,
    /// annotations_excluded.csv: marks hitting these findings are ignored.
    #[arg(long, value_name = "CSV")]
    pub annotations_excluded: Option<PathBuf>,
    /// The scans to score, one uid per line (the challenge's seriesuids.csv);
    /// default: the scans of the annotations and of the submission.
    #[arg(long, value_name = "CSV")]
    pub seriesuids: Option<PathBuf>,
    /// Folder for score.json, CADAnalysis.txt and froc.png.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Bootstrap resamples of the scan list for 95% intervals (0 = off;
    /// at most 10000).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub bootstrap: usize,
    /// Seed of the bootstrap's resampling.
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
}

#[derive(Args, Debug, Clone)]
pub struct PredictArgs {
    #[command(flatten)]
    pub score: ScoreArgs,
    /// Candidates to score: val, train, or all (a test-set cache: all).
    #[arg(long, value_parser = split_parser(), default_value = "all")]
    pub split: Split,
    /// The CSV to write (atomically).
    #[arg(long, value_name = "CSV")]
    pub out: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct BenchStepArgs {
    /// Comma-separated batch sizes.
    #[arg(
        long,
        default_value = "32,128",
        value_delimiter = ',',
        value_name = "N,..."
    )]
    pub batch_sizes: Vec<usize>,
    /// Timed steps per batch size.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub steps: usize,
    /// Untimed steps first (allocator and kernel warm-up).
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub warmup: usize,
    /// CPU threads libtorch may use (default: libtorch's choice).
    #[arg(long, value_name = "N")]
    pub threads: Option<i32>,
    /// auto (CUDA when available), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// fp32, bf16, fp16 (CUDA) or auto.
    #[arg(long, value_name = "P", value_parser = compute::parse_precision, default_value = "auto")]
    pub precision: Precision,
    /// channels-last, contiguous or auto.
    #[arg(long, value_name = "F", value_parser = compute::parse_memory_format, default_value = "auto")]
    pub memory_format: MemoryFormat,
    /// Also time inference (eval mode, no autograd): per batch size for
    /// luna, over whole --size slices for unet.
    #[arg(long)]
    pub inference: bool,
    /// The model: luna (the classifier, on [1,32,48,48] crops) or unet
    /// (chapter 13's U-Net, on [7,W,W] windows; use --batch-sizes 16 for
    /// the book's batch).
    #[arg(long, value_enum, default_value_t = BenchModel::Luna)]
    pub model: BenchModel,
    /// unet: edge of the training windows (the book's 64).
    #[arg(long, default_value_t = 64, value_name = "W", value_parser = clap::value_parser!(i64).range(4..=4096))]
    pub window: i64,
    /// unet: edge of the inference slices (LUNA's 512).
    #[arg(long, default_value_t = 512, value_name = "S", value_parser = clap::value_parser!(i64).range(4..=4096))]
    pub size: i64,
    /// unet: slices per inference batch.
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub infer_batch: u32,
}

/// `bench-step --model`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchModel {
    /// LunaModel, the classifier.
    Luna,
    /// The chapter 13 U-Net.
    Unet,
}

impl BenchModel {
    /// The name the figures carry.
    pub fn name(self) -> &'static str {
        match self {
            BenchModel::Luna => "luna",
            BenchModel::Unet => "unet",
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct BenchLoaderArgs {
    /// Cache directory written by `prepcache build`.
    #[arg(long, value_name = "DIR")]
    pub cache: PathBuf,
    /// Measure with 1, 2, … up to N worker threads.
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub num_workers: u32,
    /// Samples per batch buffer.
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    /// Balanced order with RATIO negatives per positive (1 if no value), as training reads it.
    #[arg(long, value_name = "RATIO", num_args = 0..=1, default_missing_value = "1")]
    pub balanced: Option<u32>,
    /// Samples to load per configuration.
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    pub samples: usize,
    /// Where batches go: auto (CUDA when available), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}
