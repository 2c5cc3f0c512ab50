//! The Python with torch, tensorboard, safetensors and SimpleITK that the
//! cross-checks run: `LUNA_PYTHON`, else the project's virtualenv.

use std::path::PathBuf;
use std::process::Command;

/// Fails the test when that Python is absent.
pub fn python() -> PathBuf {
    let path = std::env::var_os("LUNA_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/luna-toolkit/venv/bin/python"))
        })
        .expect("neither LUNA_PYTHON nor HOME is set");
    assert!(
        path.exists(),
        "cross-check Python {} not found: run scripts/setup.sh or set LUNA_PYTHON",
        path.display()
    );
    path
}

/// `<workspace>/scripts`, where the Python readers live.
pub fn scripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts")
}

/// Runs `script` and returns its stdout as JSON.
pub fn run_python(script: &str, args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let stdout = python_stdout(script, args, |_| {});
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("python printed no JSON ({e}):\n{stdout}"))
}

/// Runs `script` after `configure` has set up the command (environment,
/// …); fails the test with Python's stderr when the script fails, else
/// returns its stdout.
pub fn python_stdout(
    script: &str,
    args: &[&std::ffi::OsStr],
    configure: impl FnOnce(&mut Command),
) -> String {
    let mut cmd = Command::new(python());
    cmd.arg("-c").arg(script).args(args);
    configure(&mut cmd);
    let out = cmd
        .output()
        .expect("failed to start the cross-check Python");
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `scripts/mhd_to_dicom.py MHD SERIES`: the scan written as a DICOM series
/// into `series`; `shuffled` also shuffles the file names and stores it
/// unsigned with a per-slice rescale (`--shuffle --rescale`).
pub fn mhd_to_dicom(mhd: &std::path::Path, series: &std::path::Path, shuffled: bool) {
    let script = scripts_dir().join("mhd_to_dicom.py");
    let mut cmd = Command::new(python());
    cmd.arg(&script).arg(mhd).arg(series);
    if shuffled {
        cmd.args(["--shuffle", "--rescale"]);
    }
    assert!(cmd.status().unwrap().success(), "{}", script.display());
}
