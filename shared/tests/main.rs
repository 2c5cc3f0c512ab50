//! The data library's integration tests, one binary (one link) for all.

mod cache;
mod crop;
mod durable;
mod luna;
mod mapped;
mod nodule_mask;
mod seg;
