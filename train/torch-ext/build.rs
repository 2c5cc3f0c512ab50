//! Compiles the C++ shim in `csrc/` against the exact libtorch that torch-sys
//! links (its lib dir arrives as `DEP_TCH_LIBTORCH_LIB`, the headers sit next
//! to it), so the `at::` symbols and the `at::Tensor` layout agree with tch.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=csrc/torch_ext.cpp");
    println!("cargo:rerun-if-changed=csrc/torch_ext.h");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");

    let lib = PathBuf::from(env::var("DEP_TCH_LIBTORCH_LIB").unwrap_or_else(|_| {
        panic!("torch-sys did not report its libtorch lib dir (DEP_TCH_LIBTORCH_LIB)")
    }));
    let root = lib.parent().unwrap_or(&lib).to_path_buf();
    let include = root.join("include");
    let api_include = include.join("torch/csrc/api/include");
    assert!(
        include.join("ATen/autocast_mode.h").exists(),
        "no libtorch headers under {}",
        include.display()
    );
    let abi = cxx11_abi(&lib);

    cc::Build::new()
        .cpp(true)
        .pic(true)
        .std("c++17")
        .file("csrc/torch_ext.cpp")
        // at::parallel_for is a header template over `#pragma omp parallel`
        // (libtorch is built with AT_PARALLEL_OPENMP): without -fopenmp it
        // compiles to a serial loop. The GOMP calls resolve to the libgomp
        // libtorch_cpu already loads, so the shim's loops join its team.
        .flag("-fopenmp")
        .include("csrc")
        // -isystem keeps libtorch's own warnings out of the build log while
        // the shim's warnings stay visible.
        .flag("-isystem")
        .flag(include.to_string_lossy().as_ref())
        .flag("-isystem")
        .flag(api_include.to_string_lossy().as_ref())
        .define("_GLIBCXX_USE_CXX11_ABI", abi)
        .define("GLOG_USE_GLOG_EXPORT", None)
        .warnings(true)
        .compile("torch_ext_shim");

    // torch-sys links these as well, but its flags come after ours on the link
    // line only by accident of crate order; naming them here puts them after
    // the static shim, as --as-needed requires.
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    // Nothing here calls into libtorch_cuda, so --as-needed would drop it and
    // this crate's tests would never see a GPU; a link arg reaches only this
    // crate's own tests and examples (dependents link it themselves).
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    // Lets this crate's own tests and examples run without LD_LIBRARY_PATH;
    // dependents set their own rpath.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
}

/// The `_GLIBCXX_USE_CXX11_ABI` value libtorch was built with: the same
/// environment override torch-sys honours, else read off libc10's symbols
/// (new-ABI `std::string` mangles with the `B5cxx11` tag), which also covers
/// the PyPI wheel that torch-sys asks Python about.
fn cxx11_abi(lib: &Path) -> &'static str {
    if let Ok(v) = env::var("LIBTORCH_CXX11_ABI") {
        return if v.trim() == "0" { "0" } else { "1" };
    }
    match fs::read(lib.join("libc10.so")) {
        Ok(bytes) if !bytes.windows(7).any(|w| w == b"B5cxx11") => "0",
        _ => "1",
    }
}
