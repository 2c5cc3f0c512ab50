//! The segmentation task trains through the same loop as the classifier:
//! a segmentation cache written from synthetic scans (`shared::seg`), the
//! U-Net, the book's Dice loss, per-pixel metrics into metrics.jsonl, a
//! best epoch by recall, and a resume.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use shared::cache::{CacheReader, Codec};
use shared::geometry::Geometry;
use shared::seg::{write_seg_cache, Positive, SegSeries, TRAIN_DIR, VAL_DIR};
use shared::volume::Volume;
use tch::Device;
use train::config::{ComputeConfig, MemoryFormat, OptimizerKind, Precision, RunConfig, Select};
use train::data::loader::{Loader, LoaderConfig};
use train::evaluate::metrics_log;
use train::model::UNetConfig;
use train::run::{run_task, Epochs, SegSource, Segment, TaskRun, TrainPlan, Trainer};

const SHAPE: [usize; 3] = [10, 96, 96];

/// Air with a little noise and bright spheres at `blobs` (i, r, c).
fn scan(blobs: &[[usize; 3]], seed: u64) -> Volume {
    let mut hu = Vec::with_capacity(SHAPE.iter().product());
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in 0..SHAPE[0] {
        for r in 0..SHAPE[1] {
            for c in 0..SHAPE[2] {
                let inside = blobs.iter().any(|b| {
                    let d = |a: usize, x: usize| (a as f64 - x as f64).powi(2);
                    d(b[0], i) * 4.0 + d(b[1], r) + d(b[2], c) <= 20.0
                });
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let noise = (state % 41) as i16 - 20;
                hu.push(if inside { 60 } else { -850 } + noise);
            }
        }
    }
    let dir = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    let geometry = Geometry::new([0.0, 0.0, 0.0], [0.8, 0.8, 2.0], dir);
    Volume::new(SHAPE, hu, geometry).unwrap()
}

/// Six scans, two blobs each; every third series (by uid) validates.
fn write_cache(out: &Path) -> Vec<String> {
    let uids: Vec<String> = (0..6).map(|k| format!("1.2.{k}")).collect();
    let series = uids.iter().enumerate().map(|(k, uid)| {
        let blobs = [[4, 30 + 5 * k, 40], [6, 60, 55 - 3 * k]];
        let volume = scan(&blobs, k as u64 + 1);
        let positives = blobs
            .iter()
            .map(|b| Positive {
                center_xyz: volume.geometry.irc_to_xyz(b.map(|x| x as f64)),
                diameter_mm: 6.0,
            })
            .collect();
        SegSeries {
            uid: uid.clone(),
            volume,
            positives,
        }
    });
    write_seg_cache(out, &uids, 3, Codec::default(), "seg-train-test", series).unwrap();
    uids
}

fn config(runs: &Path, epochs: usize) -> RunConfig {
    let mut c = RunConfig::default();
    c.run.seed = Some(4);
    c.run.epochs = epochs;
    c.run.runs = runs.to_owned();
    c.run.select = Some(Select::Recall);
    c.data.batch_size = 4;
    c.data.cache = Some(runs.join("seg-cache"));
    c.optimizer.name = OptimizerKind::Adam;
    c.optimizer.lr = 1e-3;
    c.compute = ComputeConfig {
        precision: Precision::Fp32,
        memory_format: MemoryFormat::Contiguous,
    };
    c
}

fn loader(dir: &Path) -> (Loader, Arc<CacheReader>) {
    let reader = Arc::new(CacheReader::open(dir).unwrap());
    let config = LoaderConfig {
        batch_size: 4,
        num_workers: 1,
        device: Device::Cpu,
    };
    (Loader::new(Arc::clone(&reader), config), reader)
}

fn task_run(cache: &Path, config: &RunConfig) -> TaskRun<Segment> {
    let (train, train_reader) = loader(&cache.join(TRAIN_DIR));
    let (val, val_reader) = loader(&cache.join(VAL_DIR));
    // As the book validates: the validation scans' slices that hold nodule pixels.
    let val_slices: Vec<u32> = (0..val_reader.len() as u32)
        .filter(|&i| val_reader.entries()[i as usize].is_nodule)
        .collect();
    let train_crops: Vec<u32> = (0..train_reader.len() as u32).collect();
    let epochs = Epochs::new(train_crops, val_slices, |_| true, config).unwrap();
    let trainer = Trainer::with_task(config, Device::Cpu, epochs.samples_per_epoch(), |root| {
        Segment::new(root, &UNetConfig::default(), config.augment, config.compute)
    });
    TaskRun {
        config: config.clone(),
        epochs,
        trainer,
        source: SegSource::new(train, val),
        fingerprint: train_reader.manifest().fingerprint.clone(),
        data_line: format!("test: {} training crops", train_reader.len()),
        probe: None,
    }
}

#[test]
fn the_unet_trains_on_a_segmentation_cache_through_the_same_loop_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path();
    let cache = runs.join("seg-cache");
    write_cache(&cache);
    let stop = AtomicBool::new(false);
    let first = run_task(
        &TrainPlan::default(),
        task_run(&cache, &config(runs, 3)),
        &stop,
    )
    .unwrap();
    let dir = first.dir.root.clone();
    let plan = TrainPlan {
        resume: Some(dir.clone()),
        ..TrainPlan::default()
    };
    let resumed = run_task(&plan, task_run(&cache, &config(runs, 4)), &stop).unwrap();
    assert_eq!(resumed.state.epoch, 4);

    let lines: Vec<_> = metrics_log::read(&dir.join(metrics_log::METRICS_FILE))
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(lines.len(), 8, "trn and val for 4 epochs");
    let (train_reader, val_reader) = (
        CacheReader::open(&cache.join(TRAIN_DIR)).unwrap(),
        CacheReader::open(&cache.join(VAL_DIR)).unwrap(),
    );
    let val_slices = val_reader.entries().iter().filter(|e| e.is_nodule).count();
    for line in &lines {
        let m = &line.metrics;
        let pixels = if line.is_validation() {
            val_slices * 96 * 96
        } else {
            train_reader.len() * 64 * 64
        };
        assert_eq!(m.positives + m.negatives, pixels as u64, "{line:?}");
        assert!(m.loss_all.is_finite() && m.loss_neg.is_nan(), "{line:?}");
        assert!(line.auc.is_none(), "no AUC for pixels");
    }
    // The Dice loss falls as the U-Net learns the bright blobs.
    let train_loss: Vec<f64> = lines
        .iter()
        .filter(|l| !l.is_validation())
        .map(|l| l.metrics.loss_all)
        .collect();
    assert!(
        train_loss[3] < train_loss[0],
        "training Dice loss {train_loss:?}"
    );
    assert!(dir.join("best").join("model.safetensors").is_file());
    // The weights file names its model: the U-Net's key, not LunaModel's.
    let meta = train::run::tensor_file::read_metadata(&dir.join("model.safetensors")).unwrap();
    let unet: UNetConfig =
        serde_json::from_str(&meta[train::run::checkpoint::UNET_ARCHITECTURE_KEY]).unwrap();
    assert_eq!(unet, UNetConfig::default());
    assert!(!meta.contains_key("luna_architecture"), "{meta:?}");
}
