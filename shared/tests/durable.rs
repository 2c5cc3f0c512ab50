//! Crash-safe writes leave the old file or the complete new one, and no
//! temporary file when they fail.

use std::fs;

use shared::cache::writer::{begin_update, ShardWriter};
use shared::durable::{tmp_path, write_atomically};

#[test]
fn a_write_replaces_the_file_whole_and_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.json");
    fs::write(&path, b"old").unwrap();
    write_atomically(&path, b"new contents").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"new contents");
    assert!(!tmp_path(&path).exists());
}

#[test]
fn a_failed_write_names_the_file_and_removes_its_temporary() {
    let dir = tempfile::tempdir().unwrap();
    // A non-empty directory where the file should go: the rename fails
    // after the temporary was written in full.
    let path = dir.path().join("taken");
    fs::create_dir(&path).unwrap();
    fs::write(path.join("keep"), b"x").unwrap();
    let err = write_atomically(&path, b"data").unwrap_err();
    assert_eq!(err.path, path);
    assert!(
        err.to_string().starts_with(&path.display().to_string()),
        "{err}"
    );
    assert!(!tmp_path(&path).exists(), "temporary left behind");
    assert_eq!(fs::read(path.join("keep")).unwrap(), b"x");
}

#[test]
fn an_unfinished_shard_removes_its_temporary_and_a_finished_one_stays() {
    let dir = tempfile::tempdir().unwrap();
    begin_update(dir.path()).unwrap();
    let mut abandoned = ShardWriter::create(dir.path(), "1.2.3").unwrap();
    abandoned.append(&[7u8; 1000]).unwrap();
    let final_path = abandoned.path().to_owned();
    assert!(tmp_path(&final_path).exists());
    drop(abandoned);
    assert!(!tmp_path(&final_path).exists(), "temporary left behind");
    assert!(!final_path.exists());

    let mut kept = ShardWriter::create(dir.path(), "1.2.3").unwrap();
    kept.append(&[7u8; 1000]).unwrap();
    assert_eq!(kept.finish().unwrap(), 1000);
    assert_eq!(fs::read(&final_path).unwrap(), vec![7u8; 1000]);
    assert!(!tmp_path(&final_path).exists());
}
