//! The PyTorch `LunaDataset` (scripts/lunacache_torch.py) reads what the Rust
//! reader reads, splits and balances like the book and the Rust sampler, and
//! shards deterministically across ranks.

use std::collections::BTreeSet;

use crate::pytorch_support::{build_cache, run_python};
use shared::luna::SplitBy;
use train::data::augment::AugmentConfig;
use train::data::sampler::balanced_pick;
use train::data::split::{Split, SplitRule};

fn indices(v: &serde_json::Value) -> Vec<u32> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn chunks_labels_and_split_match_the_rust_reader() {
    let dir = tempfile::tempdir().unwrap();
    let reader = build_cache(dir.path(), 3, 15);
    let got = run_python(
        r#"
import json, sys, zlib, torch
from lunacache_torch import LunaDataset
trn = LunaDataset(sys.argv[1], val_stride=10, is_val=False)
val = LunaDataset(sys.argv[1], val_stride=10, is_val=True)
rows = []
for ndx in [0, 1, 17, len(trn) - 1]:
    chunk, label = trn[ndx]
    rows.append(dict(ndx=ndx, cache_index=trn.cache_index(ndx), shape=list(chunk.shape),
                     dtype=str(chunk.dtype), integral=bool(torch.equal(chunk, chunk.round())),
                     crc=zlib.crc32(chunk.numpy().astype("<i2").tobytes()), label=int(label)))
by_series = {str(is_val): LunaDataset(sys.argv[1], val_stride=2, is_val=is_val,
                                      split_by="series").indices for is_val in (False, True)}
print(json.dumps(dict(train=trn.indices, val=val.indices, rows=rows, by_series=by_series)))
"#,
        &[dir.path().as_os_str()],
    );
    let rule = SplitRule {
        by: SplitBy::Candidate,
        val_stride: 10,
    };
    let (train, val) = (Split::Train.of(&reader, rule), Split::Val.of(&reader, rule));
    assert_eq!(indices(&got["train"]), train);
    assert_eq!(indices(&got["val"]), val);
    // By series, the Python split is the Rust one, and no series is in both.
    let rule = SplitRule {
        by: SplitBy::Series,
        val_stride: 2,
    };
    let (train_s, val_s) = (Split::Train.of(&reader, rule), Split::Val.of(&reader, rule));
    assert_eq!(indices(&got["by_series"]["False"]), train_s);
    assert_eq!(indices(&got["by_series"]["True"]), val_s);
    let series = |part: &[u32]| -> BTreeSet<u32> {
        part.iter()
            .map(|&i| reader.entries()[i as usize].series)
            .collect()
    };
    assert!(!val_s.is_empty() && !train_s.is_empty());
    assert!(series(&train_s).is_disjoint(&series(&val_s)));

    let mut decoder = reader.decoder();
    let mut chunk = vec![0i16; reader.chunk_voxels()];
    for row in got["rows"].as_array().unwrap() {
        let ndx = row["ndx"].as_u64().unwrap() as usize;
        let i = train[ndx] as usize;
        assert_eq!(row["cache_index"], i);
        assert_eq!(row["shape"], serde_json::json!([1, 32, 48, 48]));
        assert_eq!(row["dtype"], "torch.float32");
        assert_eq!(row["integral"], true);
        reader.read_chunk(&mut decoder, i, &mut chunk).unwrap();
        let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            row["crc"],
            crc32fast::hash(&bytes),
            "chunk of candidate {i}"
        );
        assert_eq!(row["label"], u8::from(reader.entries()[i].is_nodule));
    }
}

#[test]
fn balanced_mapping_is_the_books_and_reshuffles_per_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let reader = build_cache(dir.path(), 3, 15);
    let got = run_python(
        r#"
import json, sys
from lunacache_torch import LunaDataset
ds = LunaDataset(sys.argv[1], val_stride=10, ratio_int=2, epoch_samples=60, seed=4)
out = dict(len=len(ds), pos_list=ds.pos_list, neg_list=ds.neg_list, epochs=[])
for epoch in [1, 2, 1]:
    ds.set_epoch(epoch)
    out["epochs"].append(dict(pos=ds._pos, neg=ds._neg,
                              picks=[ds.cache_index(n) for n in range(len(ds))],
                              labels=[int(ds[n][1]) for n in range(6)]))
print(json.dumps(out))
"#,
        &[dir.path().as_os_str()],
    );
    assert_eq!(got["len"], 60);
    let train = Split::Train.of(
        &reader,
        SplitRule {
            by: SplitBy::Candidate,
            val_stride: 10,
        },
    );
    let is_nodule = |i: &u32| reader.entries()[*i as usize].is_nodule;
    let positives: Vec<u32> = train.iter().copied().filter(is_nodule).collect();
    let negatives: Vec<u32> = train.iter().copied().filter(|i| !is_nodule(i)).collect();
    assert_eq!(indices(&got["pos_list"]), positives);
    assert_eq!(indices(&got["neg_list"]), negatives);

    let epochs = got["epochs"].as_array().unwrap();
    for e in epochs {
        let (pos, neg, picks) = (indices(&e["pos"]), indices(&e["neg"]), indices(&e["picks"]));
        // Shuffled, never changed as a set.
        assert_eq!(
            pos.iter().collect::<BTreeSet<_>>(),
            positives.iter().collect()
        );
        assert_eq!(
            neg.iter().collect::<BTreeSet<_>>(),
            negatives.iter().collect()
        );
        // The book's ratio-1 mapping by hand: ndx 0 → pos[0], 1 → neg[0], 2 → neg[1], 3 → pos[1], 4 → neg[2].
        assert_eq!(picks[..5], [pos[0], neg[0], neg[1], pos[1], neg[2]]);
        for (ndx, &pick) in picks.iter().enumerate() {
            assert_eq!(pick, balanced_pick(ndx, 2, &pos, &neg), "ndx {ndx}");
        }
        assert_eq!(e["labels"], serde_json::json!([1, 0, 0, 1, 0, 0]));
    }
    assert_ne!(epochs[0]["neg"], epochs[1]["neg"], "epoch 2 reshuffles");
    assert_eq!(
        epochs[0], epochs[2],
        "an epoch's order is a function of seed and epoch"
    );
}

#[test]
fn rank_shards_are_disjoint_cover_everything_and_are_reproducible() {
    let got = run_python(
        r#"
import json
from lunacache_torch import shard_indices
print(json.dumps({str(e): [shard_indices(103, r, 3, seed=5, epoch=e) for r in range(3)]
                  for e in [1, 2]} | {"again": shard_indices(103, 1, 3, seed=5, epoch=1)}))
"#,
        &[],
    );
    for epoch in ["1", "2"] {
        let shards: Vec<Vec<u32>> = serde_json::from_value(got[epoch].clone()).unwrap();
        let lens: Vec<usize> = shards.iter().map(Vec::len).collect();
        assert_eq!(lens, vec![35, 34, 34]);
        let all: BTreeSet<u32> = shards.iter().flatten().copied().collect();
        assert_eq!(all.len(), 103, "disjoint");
        assert_eq!(all, (0..103).collect(), "covering");
    }
    assert_eq!(got["again"], got["1"][1]);
    assert_ne!(got["1"], got["2"], "each epoch deals a new permutation");
}

#[test]
fn augmentation_draws_the_rust_affine_and_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    build_cache(dir.path(), 1, 10);
    let u = [0.7, 0.2, 0.9, 0.3, 0.6, 0.1, 0.55, 0.45, 0.05, 0.3];
    let got = run_python(
        r#"
import json, sys, torch
from lunacache_torch import Augment, LunaDataset
u = json.loads(sys.argv[2])
t = Augment.book().transform(u)
plain = LunaDataset(sys.argv[1], val_stride=1, is_val=True, seed=1)
aug = LunaDataset(sys.argv[1], val_stride=1, is_val=True, seed=1, augment=Augment.book())
noise = LunaDataset(sys.argv[1], val_stride=1, is_val=True, seed=1, augment=Augment(noise=25.0))
aug.set_epoch(1)
a1, a2 = aug[3][0], aug[3][0]
aug.set_epoch(2)
a3 = aug[3][0]
diff = noise[3][0] - plain[3][0]
print(json.dumps(dict(t=t.tolist(), same=bool(torch.equal(a1, a2)), changed=not torch.equal(a1, a3),
                      differs_from_plain=not torch.equal(a1, plain[3][0]),
                      noise_std=diff.std().item(), noise_mean=diff.mean().item())))
"#,
        &[
            dir.path().as_os_str(),
            serde_json::to_string(&u).unwrap().as_ref(),
        ],
    );
    let ours = AugmentConfig::book().transform(&u);
    let theirs: Vec<Vec<f64>> = serde_json::from_value(got["t"].clone()).unwrap();
    for (r, row) in ours.iter().enumerate() {
        for (c, &v) in row.iter().enumerate() {
            assert!(
                (v - theirs[r][c]).abs() < 1e-12,
                "T[{r}][{c}]: {v} vs {}",
                theirs[r][c]
            );
        }
    }
    assert_eq!(got["same"], true);
    assert_eq!(got["changed"], true);
    assert_eq!(got["differs_from_plain"], true);
    let std = got["noise_std"].as_f64().unwrap();
    assert!((std - 25.0).abs() < 1.0, "noise std {std}");
    assert!(got["noise_mean"].as_f64().unwrap().abs() < 1.0);
}
