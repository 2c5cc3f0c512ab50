//! The command line: help, doctor, and clean errors for bad input.

#[test]
fn train_seg_help_states_the_chapter_13_defaults() {
    let (ok, seg) = luna_e2e::train::train_output(&["seg", "--help"]);
    assert!(ok, "{seg}");
    let (_, cls) = luna_e2e::train::train_output(&["--help"]);
    let flat = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let (seg, cls) = (flat(&seg), flat(&cls));
    for (cls_says, seg_says) in [
        (
            "Samples per training step, 1 to 100000 [default: 32]",
            "Samples per training step, 1 to 100000 [default: 16]",
        ),
        ("[default: sgd]", "[default: adam]"),
        ("[default: p2ch12]", "[default: p2ch13]"),
        ("written by `prepcache build`", "written by `prepcache seg`"),
        ("Default: every epoch", "[default: 5]"),
    ] {
        assert!(
            cls.contains(cls_says),
            "train --help lacks {cls_says:?}: {cls}"
        );
        assert!(
            seg.contains(seg_says),
            "train seg --help lacks {seg_says:?}: {seg}"
        );
        assert!(
            !seg.contains(cls_says),
            "train seg --help says {cls_says:?}"
        );
    }
}

#[test]
fn help_lists_the_books_flags() {
    let (ok, text) = luna_e2e::train::train_output(&["--help"]);
    assert!(ok, "{text}");
    for flag in [
        "--cache",
        "--epochs",
        "--batch-size",
        "--num-workers",
        "--balanced",
        "--augmented",
        "--augment-flip",
        "--augment-offset",
        "--augment-scale",
        "--augment-rotate",
        "--augment-noise",
        "--tb-prefix",
        "--device",
        "--lr",
        "--momentum",
        "--val-stride",
        "--epoch-samples",
        "--val-samples",
        "--seed",
        "--runs",
        "--resume",
        "--threads",
        "--book-bias-init",
        "[COMMENT]",
        "doctor",
    ] {
        assert!(
            text.contains(flag),
            "--help does not mention {flag}:\n{text}"
        );
    }
}

#[test]
fn doctor_runs_without_a_cache() {
    let (ok, text) = luna_e2e::train::train_output(&["doctor"]);
    assert!(ok, "{text}");
    assert!(text.contains("libtorch"), "{text}");
    assert!(
        text.contains("CPU bf16:") && text.contains("fused inference:"),
        "{text}"
    );
}

#[test]
fn missing_or_bad_input_fails_with_a_message_not_a_panic() {
    let (ok, text) = luna_e2e::train::train_output::<&str>(&[]);
    assert!(!ok);
    assert!(text.contains("--cache"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-cache");
    let (ok, text) =
        luna_e2e::train::train_output(&["--cache", missing.to_str().unwrap(), "--device", "cpu"]);
    assert!(!ok);
    assert!(text.contains("no-such-cache"), "{text}");
    assert!(!text.contains("panicked"), "{text}");

    let (ok, text) =
        luna_e2e::train::train_output(&["--cache", missing.to_str().unwrap(), "--device", "tpu"]);
    assert!(!ok);
    assert!(text.contains("tpu"), "{text}");

    let (ok, text) = luna_e2e::train::train_output(&["--cache", "x", "--balanced", "0"]);
    assert!(!ok, "a zero ratio must be refused: {text}");
}
