//! The training loop runs a task it has never seen: a linear model telling
//! points above a plane from those below, fed from memory, with its own
//! batch type and loss. The trainer, phase driver, recorder, checkpoints,
//! best-epoch selection and resume are the ones `train` runs LunaModel
//! with; nothing here reaches into them.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Result;
use tch::nn::{self, Module};
use tch::{Device, Kind, Reduction, Tensor};
use train::config::{ComputeConfig, MemoryFormat, Precision, RunConfig, Select};
use train::evaluate::metrics_log;
use train::evaluate::{roc_auc, EpochMetrics, MetricRows};
use train::run::phase::PhaseKind;
use train::run::profile::{Laps, Part};
use train::run::{
    run_task, BatchSource, Epochs, Located, PhaseSummary, Step, Task, TaskRun, TrainPlan, Trainer,
};

const FEATURES: i64 = 4;

/// Points in memory; a point is positive when its features sum above 0.
struct Points {
    x: Tensor,
    labels: Tensor,
    batch_size: usize,
}

impl Points {
    fn new(samples: i64, batch_size: usize) -> Self {
        tch::manual_seed(11);
        let x = Tensor::randn([samples, FEATURES], (Kind::Float, Device::Cpu));
        let labels = x
            .sum_dim_intlist(1, false, Kind::Float)
            .gt(0.0)
            .to_kind(Kind::Int64);
        Points {
            x,
            labels,
            batch_size,
        }
    }

    fn is_positive(&self, i: u32) -> bool {
        self.labels.int64_value(&[i as i64]) == 1
    }
}

struct PointBatch {
    index: usize,
    start: usize,
    x: Tensor,
    labels: Tensor,
}

impl Located for PointBatch {
    fn index(&self) -> usize {
        self.index
    }
    fn start(&self) -> usize {
        self.start
    }
    fn len(&self) -> usize {
        self.labels.size()[0] as usize
    }
}

impl BatchSource for Points {
    type Batch<'a> = PointBatch;

    fn run_epoch(
        &mut self,
        _kind: PhaseKind,
        order: &[u32],
        consume: &mut dyn FnMut(PointBatch) -> Result<()>,
    ) -> Result<()> {
        for (index, chunk) in order.chunks(self.batch_size).enumerate() {
            let ids: Vec<i64> = chunk.iter().map(|&i| i as i64).collect();
            let ids = Tensor::from_slice(&ids);
            consume(PointBatch {
                index,
                start: index * self.batch_size,
                x: self.x.index_select(0, &ids),
                labels: self.labels.index_select(0, &ids),
            })?;
        }
        Ok(())
    }

    fn last_wait(&self) -> Duration {
        Duration::ZERO
    }
}

/// One linear layer, cross-entropy, and the shared classification metrics.
struct Plane {
    layer: nn::Linear,
}

struct PlaneOutput {
    loss: Tensor,
    prob_pos: Tensor,
}

impl Task for Plane {
    type Source = Points;
    type Output = PlaneOutput;
    type Rows = MetricRows;

    fn step(&self, batch: &PointBatch, _train: bool, laps: &mut Laps) -> Step<PlaneOutput> {
        laps.lap(Part::Input);
        let logits = self.layer.forward(&batch.x);
        let loss =
            logits.cross_entropy_loss::<Tensor>(&batch.labels, None, Reduction::None, -100, 0.0);
        Step {
            loss: loss.mean(Kind::Float),
            output: PlaneOutput {
                prob_pos: logits.softmax(1, Kind::Float).select(1, 1),
                loss,
            },
        }
    }

    fn rows(&self, samples: usize, device: Device) -> MetricRows {
        MetricRows::new(samples, device)
    }

    fn push(&self, rows: &mut MetricRows, batch: &PointBatch, out: &PlaneOutput) {
        rows.push(&batch.labels, &out.prob_pos, &out.loss);
    }

    fn summarize(&self, rows: &MetricRows, kind: PhaseKind) -> PhaseSummary {
        let samples = rows.to_host();
        PhaseSummary {
            metrics: EpochMetrics::compute(&samples),
            auc: (kind == PhaseKind::Validate).then(|| roc_auc(&samples.prob_pos, &samples.labels)),
            samples: None,
        }
    }

    fn describe(&self) -> String {
        "Plane".to_owned()
    }
}

fn config(runs: &std::path::Path, epochs: usize) -> RunConfig {
    let mut c = RunConfig::default();
    c.run.seed = Some(5);
    c.run.epochs = epochs;
    c.run.runs = runs.to_owned();
    c.run.select = Some(Select::Auc);
    c.data.batch_size = 16;
    c.optimizer.lr = 0.5;
    c.compute = ComputeConfig {
        precision: Precision::Fp32,
        memory_format: MemoryFormat::Contiguous,
    };
    c
}

fn task_run(config: &RunConfig) -> TaskRun<Plane> {
    let points = Points::new(400, config.data.batch_size as usize);
    let (train, val) = shared::luna::split_indices(400, 10).unwrap();
    let epochs = Epochs::new(train, val, |i| points.is_positive(i), config).unwrap();
    let trainer = Trainer::with_task(config, Device::Cpu, epochs.samples_per_epoch(), |root| {
        Plane {
            layer: nn::linear(root / "plane", FEATURES, 2, Default::default()),
        }
    });
    TaskRun {
        config: config.clone(),
        epochs,
        trainer,
        source: points,
        fingerprint: "points-400".to_owned(),
        data_line: "test: 400 points".to_owned(),
        probe: None,
    }
}

#[test]
fn a_second_task_trains_records_checkpoints_and_resumes_through_the_same_loop() {
    let runs = tempfile::tempdir().unwrap();
    let stop = AtomicBool::new(false);
    let first = run_task(
        &TrainPlan::default(),
        task_run(&config(runs.path(), 2)),
        &stop,
    )
    .unwrap();
    let dir = first.dir.root.clone();
    assert_eq!(first.state.epoch, 2);
    let val = first.last_val.expect("a validation phase ran");
    assert!(val.samples > 0 && val.loss_all.is_finite());

    // Resume the same folder for a third epoch: the loop goes on from the
    // checkpoint, and metrics.jsonl holds one line per phase of each epoch.
    let plan = TrainPlan {
        resume: Some(dir.clone()),
        ..TrainPlan::default()
    };
    let resumed = run_task(&plan, task_run(&config(runs.path(), 3)), &stop).unwrap();
    assert_eq!(resumed.dir.root, dir);
    assert_eq!(resumed.state.epoch, 3);
    assert!(resumed.state.steps > first.state.steps);
    let lines: Vec<_> = metrics_log::read(&dir.join(metrics_log::METRICS_FILE))
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let phases: Vec<(usize, &str)> = lines.iter().map(|l| (l.epoch, l.phase.as_str())).collect();
    assert_eq!(
        phases,
        [
            (1, "trn"),
            (1, "val"),
            (2, "trn"),
            (2, "val"),
            (3, "trn"),
            (3, "val")
        ]
    );
    // A plane through the origin separates the points: the task learned it.
    let last = lines.last().unwrap();
    assert!(last.auc().unwrap() > 0.95, "{last:?}");
    assert!(
        resumed.state.best.is_some(),
        "--select auc kept a best epoch"
    );
    assert!(dir.join("best").join("model.safetensors").is_file());
}
