//! Makes the `train` binaries find libtorch and see CUDA without any
//! LD_LIBRARY_PATH: an rpath to torch's lib folder, and `libtorch_cuda` linked
//! with `--no-as-needed` (nothing references its symbols directly, so the
//! linker's default `--as-needed` drops it and CUDA silently reports
//! unavailable).

use std::env;
use std::fs;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=torch-sys did not report its lib dir; no rpath set");
        println!("cargo:rustc-env=LIBTORCH_VERSION=unknown");
        return;
    };
    let lib = Path::new(&lib);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    println!("cargo:rustc-env=LIBTORCH_LIB_DIR={}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    println!("cargo:rustc-env=LIBTORCH_VERSION={}", libtorch_version(lib));
}

/// The version as the wheel (`torch/version.py`) or a libtorch zip
/// (`build-version`) records it.
fn libtorch_version(lib: &Path) -> String {
    let root = lib.parent().unwrap_or(lib);
    if let Ok(text) = fs::read_to_string(root.join("version.py")) {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("__version__") {
                let v = rest
                    .trim_start_matches([' ', '=', ':'])
                    .split('=')
                    .next_back()
                    .unwrap_or("");
                return v.trim().trim_matches(['\'', '"']).to_owned();
            }
        }
    }
    if let Ok(text) = fs::read_to_string(root.join("build-version")) {
        return text.trim().to_owned();
    }
    "unknown".to_owned()
}
