//! The cross-check Python the integration tests run: the end-to-end
//! suite's helpers, so both suites find the same interpreter the same way.

pub use luna_e2e::python::{python, python_stdout, run_python};
