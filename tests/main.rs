//! End-to-end tests: the real binaries on real files they make themselves
//! (synthetic scans → cache → training → resume → eval → predict), and the
//! bad-input cases a user meets. One binary, one link.

mod analyze;
mod bench_loader;
mod cache_folder;
mod checkpoint_integrity;
mod compare;
mod config;
mod dicom;
mod eval_predict;
mod experiments;
mod gpu_check;
mod import_state;
mod interrupt;
mod learns;
mod lidc;
mod limits;
mod lunacache_py;
mod malignancy;
mod prepcache_build;
mod prepcache_seg;
mod prepcache_skipped;
mod resume;
mod run_folders;
mod score;
mod segmentation;
mod shards;
mod sweep;
mod tensorboard;
mod train_cli;
