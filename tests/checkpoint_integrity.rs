//! What a checkpoint vouches for (issue #21 items 4 and 8): the cache it
//! was trained on (a resume on another cache refuses unless told to go on;
//! `eval`/`predict` say so) and the bytes of its tensors (damage is caught
//! by `eval`, `predict` and `--resume`; old checkpoints load with a note).

use std::fs;
use std::path::{Path, PathBuf};

use luna_e2e::prepcache::{build, fixed_cache, s, synth, synthetic_cache};
use luna_e2e::train::{find_dir, metrics_lines, tiny_run_args, train_output};

fn one_epoch(cache: &Path, runs: &Path, comment: &str) -> PathBuf {
    let mut args = tiny_run_args(cache, runs);
    args.push(comment.into());
    let (ok, out) = train_output(&args);
    assert!(ok, "{out}");
    find_dir(&runs.join("p2ch12"), &format!("-cls-{comment}"))
}

fn resume(run: &Path, cache: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec![
        "--resume",
        s(run),
        "--cache",
        s(cache),
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--threads",
        "1",
    ];
    args.extend_from_slice(extra);
    train_output(&args)
}

/// `train eval` (report into the folder `out`) or `train predict` (into
/// `out.csv`) of `ckpt` on `cache`.
fn score(tool: &str, ckpt: &Path, cache: &Path, out: &Path) -> (bool, String) {
    let out = match tool {
        "predict" => out.with_extension("csv"),
        _ => out.to_owned(),
    };
    train_output(&[
        tool,
        "--cache",
        s(cache),
        "--checkpoint",
        s(ckpt),
        "--device",
        "cpu",
        "--threads",
        "1",
        "--out",
        s(&out),
    ])
}

fn assert_one_line_error(out: &str) {
    let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("Error:")).collect();
    assert_eq!(errors.len(), 1, "{out}");
    assert!(!out.contains("panicked"), "{out}");
}

#[test]
fn resuming_on_a_cache_rebuilt_from_other_data_refuses_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = synthetic_cache(tmp.path(), 2, 5);
    let run = one_epoch(&cache, &tmp.path().join("runs"), "cached");
    let out_dir = tmp.path().join("scores");
    for tool in ["eval", "predict"] {
        let target = out_dir.join(format!("same-{tool}"));
        let (ok, out) = score(tool, &run, &cache, &target);
        assert!(ok, "{out}");
        assert!(!out.contains("another cache"), "{out}");
    }

    // The same folder, rebuilt from other scans.
    fs::remove_dir_all(&cache).unwrap();
    let other = synth(&tmp.path().join("other"), 3, 6);
    build(&other, &cache, &[]);
    let before = fs::read(run.join("model.safetensors")).unwrap();

    let (ok, out) = resume(&run, &cache, &[]);
    assert!(!ok, "{out}");
    assert_one_line_error(&out);
    assert!(
        out.contains("--allow-other-cache") && out.contains(s(&cache)),
        "{out}"
    );
    assert!(fs::read(run.join("model.safetensors")).unwrap() == before);

    for tool in ["eval", "predict"] {
        let target = out_dir.join(format!("other-{tool}"));
        let (ok, out) = score(tool, &run, &cache, &target);
        assert!(ok, "{out}");
        assert!(
            out.contains("was trained on another cache"),
            "{tool}: {out}"
        );
    }

    let (ok, out) = resume(&run, &cache, &["--allow-other-cache"]);
    assert!(ok, "{out}");
    assert!(out.contains("--allow-other-cache"), "{out}");
    let epochs: Vec<_> = metrics_lines(&run.join("metrics.jsonl"))
        .iter()
        .map(|l| l["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, [1, 1, 2, 2]);
    // The run now records the cache it went on with.
    let (ok, out) = resume(&run, &cache, &[]);
    assert!(ok, "{out}");
}

/// Flips 4 bytes of tensor data in the middle of the file's data section.
fn flip_bytes(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let at = 8 + header + (bytes.len() - 8 - header) / 2;
    for b in &mut bytes[at..at + 4] {
        *b ^= 0x5a;
    }
    fs::write(path, bytes).unwrap();
}

#[test]
fn flipped_bytes_in_the_weights_are_caught_by_eval_predict_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = synthetic_cache(tmp.path(), 2, 5);
    let run = one_epoch(&cache, &tmp.path().join("runs"), "flip");
    let model = run.join("model.safetensors");
    flip_bytes(&model);
    let damaged = |out: &str| {
        assert_one_line_error(out);
        let line = out.lines().find(|l| l.starts_with("Error:")).unwrap();
        assert!(
            line.contains(s(&model)) && line.contains("tensor") && line.contains("checksum"),
            "{out}"
        );
    };
    for tool in ["eval", "predict"] {
        let (ok, out) = score(tool, &run, &cache, &tmp.path().join(tool));
        assert!(!ok, "{tool} scored a damaged checkpoint:\n{out}");
        damaged(&out);
    }
    let (ok, out) = resume(&run, &cache, &[]);
    assert!(!ok, "resumed from a damaged checkpoint:\n{out}");
    damaged(&out);

    // The optimizer's state is checked too.
    let run = one_epoch(&cache, &tmp.path().join("runs2"), "flip2");
    let trainer = run.join("trainer.safetensors");
    flip_bytes(&trainer);
    let (ok, out) = resume(&run, &cache, &[]);
    assert!(!ok, "{out}");
    assert_one_line_error(&out);
    assert!(
        out.contains(s(&trainer)) && out.contains("checksum"),
        "{out}"
    );
}

#[test]
fn a_checkpoint_of_an_older_train_loads_with_a_note() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../train/tests/fixtures/checkpoint-v1");
    let tmp = tempfile::tempdir().unwrap();
    let cache = fixed_cache(&tmp.path().join("cache"));
    let run = tmp
        .path()
        .join("runs/p2ch12/2026-12-04_22.37.00-cls-fixture");
    fs::create_dir_all(&run).unwrap();
    for file in ["model.safetensors", "trainer.safetensors", "metrics.jsonl"] {
        fs::copy(fixture.join(file), run.join(file)).unwrap();
    }
    let (ok, out) = score("eval", &run, &cache, &tmp.path().join("eval"));
    assert!(ok, "{out}");
    let notes = checkpoint_notes(&out);
    assert_eq!(notes.len(), 1, "{out}");
    assert!(notes[0].contains("no tensor checksums"), "{out}");

    let (ok, out) = resume(&run, &cache, &[]);
    assert!(ok, "{out}");
    assert!(out.contains("no tensor checksums"), "{out}");
    assert!(out.contains("does not record its cache"), "{out}");
    assert!(out.contains("resuming after epoch 1"), "{out}");
    // Saved again by this train: checksummed and tied to its cache.
    let (ok, out) = score("eval", &run, &cache, &tmp.path().join("eval2"));
    assert!(ok, "{out}");
    assert!(checkpoint_notes(&out).is_empty(), "{out}");
}

/// eval's notes about the checkpoint (the split's partial-FROC note is
/// about the data, and every candidate-split eval prints it).
fn checkpoint_notes(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| l.contains("note:") && !l.contains("FROC is partial"))
        .collect()
}
