//! Book-style `.state` files written by the venv's torch: the book's
//! checkpoint dict (`model_state`, `optimizer_state`, `epoch`, …) around
//! a LunaModel or UNetWrapper moved off its init by two training steps,
//! in torch.save's legacy (pre-1.6) and zip formats, plus a safetensors
//! copy of the same state dict to compare against.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The files [`write`] made.
pub struct BookState {
    /// `_use_new_zipfile_serialization=False`, as the book's files are.
    pub legacy: PathBuf,
    /// torch.save's default since 1.6.
    pub zip: PathBuf,
    /// The same `model_state`, every tensor, for comparisons.
    pub reference: PathBuf,
    /// What the script printed (the model's eval-mode output on the
    /// input the caller's script computes, when it prints one).
    pub printed: serde_json::Value,
}

const SCRIPT: &str = r#"
import json, sys, torch
from safetensors.torch import save_file
from luna_model import LunaModel
from unet_model import UNetWrapper
kind, wf, stem = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.manual_seed(3)
if kind == "unet":
    m = UNetWrapper(in_channels=7, n_classes=1, depth=3, wf=wf, padding=True, batch_norm=True, up_mode="upconv")
    x = torch.randn(2, 7, 64, 64) * 300.0 - 200.0
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
else:
    m = LunaModel()
    x = torch.randn(2, 1, 32, 48, 48) * 300.0 - 200.0
    opt = torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.99)
m.train()
for _ in range(2):  # moves the weights and every BatchNorm's running statistics
    out = m(x)
    (out[1] if isinstance(out, tuple) else out).mean().backward()
    opt.step(); opt.zero_grad()
state = {
    "sys_argv": ["training.py", "--epochs", "3"],
    "time": "2020-01-26 20:08:07.273894",
    "model_name": type(m).__name__,
    "model_state": m.state_dict(),
    "optimizer_name": type(opt).__name__,
    "optimizer_state": opt.state_dict(),
    "epoch": 3,
    "totalTrainingSamples_count": 1234,
}
torch.save(state, stem + ".legacy.state", _use_new_zipfile_serialization=False)
torch.save(state, stem + ".zip.state")
save_file({k: v.contiguous() for k, v in m.state_dict().items()}, stem + ".reference.safetensors")
m.eval()
printed = {}
"#;

/// Writes `<dir>/<name>.{legacy,zip}.state` and the reference for the
/// book's `kind` ("unet" or "luna"; `wf` is the U-Net's width exponent,
/// 4 in the book), then runs `extra` (Python with `m` in eval mode; it
/// may fill the dict `printed`, which is printed as JSON).
pub fn write(dir: &Path, name: &str, kind: &str, wf: u32, extra: &str) -> BookState {
    let stem = dir.join(name);
    let script = format!("{SCRIPT}{extra}\nprint(json.dumps(printed))\n");
    let wf = wf.to_string();
    let stdout = crate::python::python_stdout(
        &script,
        &[OsStr::new(kind), OsStr::new(&wf), stem.as_os_str()],
        |cmd| {
            cmd.env("PYTHONPATH", crate::python::scripts_dir())
                .env("OMP_NUM_THREADS", "1");
        },
    );
    let last = stdout.lines().last().unwrap_or_default();
    let printed = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("python printed no JSON ({e}):\n{stdout}"));
    let with = |ext: &str| dir.join(format!("{name}.{ext}"));
    BookState {
        legacy: with("legacy.state"),
        zip: with("zip.state"),
        reference: with("reference.safetensors"),
        printed,
    }
}
