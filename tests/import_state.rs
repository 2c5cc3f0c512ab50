//! `train import-state` on book-style `.state` files the venv's torch
//! writes: a classifier imports and `train eval` scores it; a U-Net of
//! another shape, random bytes, a truncated file and a run's folder each
//! fail with one line.

use std::ffi::OsStr;
use std::path::Path;

use luna_e2e::book_state;
use luna_e2e::prepcache::fixed_cache;
use luna_e2e::train::{train, train_output};

fn import(file: &Path, out: &Path) -> (bool, String) {
    train_output(&[
        OsStr::new("import-state"),
        file.as_os_str(),
        OsStr::new("--out"),
        out.as_os_str(),
    ])
}

/// A failure is one line on stderr and no panic or backtrace.
fn assert_one_line_failure(ok: bool, text: &str, needle: &str) {
    assert!(!ok, "import-state succeeded:\n{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {text}");
    assert!(lines[0].starts_with("Error: "), "{text}");
    assert!(lines[0].contains(needle), "{needle:?} in {text}");
    assert!(
        !text.contains("panicked") && !text.contains("backtrace"),
        "{text}"
    );
}

#[test]
fn a_book_classifier_state_imports_and_eval_scores_it() {
    let tmp = tempfile::tempdir().unwrap();
    // PyTorch's own reading of the imported file, strictly, against the original.
    let check = r#"
import sys, torch
from luna_model import load_safetensors
model = load_safetensors(sys.argv[1] + "/model.safetensors")
state = torch.load(sys.argv[2], weights_only=False)["model_state"]
for k, v in model.state_dict().items():
    assert torch.equal(v, state[k]), k
"#;
    let files = book_state::write(tmp.path(), "cls", "luna", 4, "");
    let cache = fixed_cache(&tmp.path().join("cache"));
    for (name, file) in [("legacy", &files.legacy), ("zip", &files.zip)] {
        let out = tmp.path().join(name);
        let (ok, text) = import(file, &out);
        assert!(ok, "{text}");
        assert!(
            text.contains("the book's LunaModel with every one of its"),
            "{text}"
        );
        assert!(text.contains("epoch = 3"), "{text}");
        luna_e2e::python::python_stdout(check, &[out.as_os_str(), file.as_os_str()], |cmd| {
            cmd.env("PYTHONPATH", luna_e2e::python::scripts_dir());
        });
        let eval = train(&[
            OsStr::new("eval"),
            OsStr::new("--cache"),
            cache.as_os_str(),
            OsStr::new("--checkpoint"),
            out.as_os_str(),
            OsStr::new("--device"),
            OsStr::new("cpu"),
            OsStr::new("--threads"),
            OsStr::new("2"),
        ]);
        assert!(eval.contains("eval: ROC AUC"), "{eval}");
        assert!(out.join("eval.json").is_file());
    }
    // Importing again into the same folder needs --force.
    let (ok, text) = import(&files.zip, &tmp.path().join("zip"));
    assert_one_line_failure(ok, &text, "--force");
}

#[test]
fn bad_state_files_fail_in_one_line_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");

    let wide = book_state::write(tmp.path(), "wide", "unet", 5, "");
    let (ok, text) = import(&wide.legacy, &out);
    assert_one_line_failure(
        ok,
        &text,
        &format!(
            "{}: tensor \"unet.down_path.0.block.0.weight\" is [32, 7, 3, 3], the book's U-Net (UNetWrapper, depth 3, wf 4) expects [16, 7, 3, 3]",
            wide.legacy.display()
        ),
    );

    let noise = tmp.path().join("noise.state");
    std::fs::write(
        &noise,
        (0..3000u32)
            .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let (ok, text) = import(&noise, &out);
    assert_one_line_failure(
        ok,
        &text,
        &format!("{}: not a torch.save file", noise.display()),
    );

    for whole in [&wide.legacy, &wide.zip] {
        let data = std::fs::read(whole).unwrap();
        let cut = tmp.path().join("cut.state");
        std::fs::write(&cut, &data[..data.len() * 2 / 3]).unwrap();
        let (ok, text) = import(&cut, &out);
        assert_one_line_failure(ok, &text, &format!("{}: truncated", cut.display()));
    }
    assert!(!out.exists(), "nothing written for a bad file");

    // A training run's folder is refused, --force or not.
    let run = tmp.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::write(run.join("trainer.safetensors"), b"x").unwrap();
    let book = book_state::write(tmp.path(), "seg", "unet", 4, "");
    let (ok, text) = train_output(&[
        OsStr::new("import-state"),
        book.zip.as_os_str(),
        OsStr::new("--out"),
        run.as_os_str(),
        OsStr::new("--force"),
    ]);
    assert_one_line_failure(ok, &text, "a training run's folder");
    let (ok, text) = import(&book.legacy, &out);
    assert!(ok, "{text}");
    assert!(text.contains("the book's U-Net"), "{text}");
}
