//! `--tb-histograms-every` and `--tb-activations` in a real run: the event
//! files read back with TensorBoard's own loader hold a weight and a
//! gradient histogram of every parameter at every step, and the activation
//! images of the fixed validation samples after the epoch.

use luna_e2e::prepcache::{fixed_cache, s};
use luna_e2e::train::{find_dir, train};
use shared::cache::CacheReader;

const BATCH: &str = "4";
const SAMPLES: &str = "8";

/// The run's event folders and final weights, read with TensorBoard's
/// EventAccumulator; each weight histogram of the last step is compared
/// with numpy's histogram of that weight in model.safetensors.
const READ_RUN: &str = r#"
import io, json, sys
import numpy as np
from PIL import Image
from safetensors.numpy import load_file
from tensorboard.backend.event_processing import event_accumulator as ea

def load(path):
    acc = ea.EventAccumulator(path, size_guidance={ea.HISTOGRAMS: 0, ea.IMAGES: 0})
    acc.Reload()
    return acc

trn, val = load(sys.argv[1]), load(sys.argv[2])
weights = load_file(sys.argv[3])
last_step = int(sys.argv[4])
out = {"params": sorted(k for k in weights), "histograms": {}, "images": {},
       "val_histograms": sorted(val.Tags()["histograms"]), "trn_images": trn.Tags()["images"]}
for tag in trn.Tags()["histograms"]:
    events = trn.Histograms(tag)
    h = {"steps": [e.step for e in events],
         "counts_sum": [sum(e.histogram_value.bucket) for e in events],
         "num": [e.histogram_value.num for e in events]}
    name = tag.split("/", 1)[1] if "/" in tag else None
    if tag.startswith("weights/") and name in weights:
        x = weights[name].astype(np.float64).ravel()
        final = [e for e in events if e.step == last_step][0].histogram_value
        expected, _ = np.histogram(x, bins=len(final.bucket), range=(x.min(), x.max()))
        h["size"] = int(x.size)
        h["final_matches_numpy"] = bool(list(final.bucket) == expected.tolist()
                                        and final.min == x.min() and final.max == x.max())
    out["histograms"][tag] = h
for tag in val.Tags()["images"]:
    events = val.Images(tag)
    img = Image.open(io.BytesIO(events[0].encoded_image_string))
    out["images"][tag] = {"steps": [e.step for e in events], "size": [events[0].width, events[0].height],
                          "decoded": [img.width, img.height], "mode": img.mode,
                          "distinct_greys": len(np.unique(np.asarray(img)))}
print(json.dumps(out))
"#;

/// Positives and negatives of the cache's validation split.
fn val_classes(cache: &std::path::Path, val_stride: usize) -> (u64, u64) {
    let reader = CacheReader::open(cache).unwrap();
    let (_, val) = shared::luna::split_indices(reader.len(), val_stride).unwrap();
    let positives = val
        .iter()
        .filter(|&&i| reader.entries()[i as usize].is_nodule)
        .count();
    (positives as u64, (val.len() - positives) as u64)
}

#[test]
fn histograms_of_every_parameter_and_activation_images_land_in_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = fixed_cache(&tmp.path().join("cache"));
    let runs = tmp.path().join("runs");
    train(
        &[
            "--cache",
            s(&cache),
            "--runs",
            s(&runs),
            "--device",
            "cpu",
            "--threads",
            "2",
            "--epochs",
            "1",
            "--batch-size",
            BATCH,
            "--epoch-samples",
            SAMPLES,
            "--seed",
            "11",
            "--tb-histograms-every",
            "1",
            "--tb-activations",
            "tb",
        ]
        .map(std::ffi::OsStr::new),
    );
    let group = runs.join("p2ch12");
    let run = find_dir(&group, "-cls-tb");
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(config.contains("tb_histograms_every = 1"), "{config}");
    assert!(config.contains("tb_activations = true"), "{config}");
    let (trn, val) = (
        find_dir(&group, "-trn_cls-tb"),
        find_dir(&group, "-val_cls-tb"),
    );
    let got = luna_e2e::python::run_python(
        READ_RUN,
        &[
            trn.as_os_str(),
            val.as_os_str(),
            run.join("model.safetensors").as_os_str(),
            SAMPLES.as_ref(),
        ],
    );

    // Trainable parameters: model.safetensors less BatchNorm's buffers.
    let params: Vec<String> = serde_json::from_value::<Vec<String>>(got["params"].clone())
        .unwrap()
        .into_iter()
        .filter(|p| !p.contains(".running_") && !p.ends_with(".num_batches_tracked"))
        .collect();
    assert_eq!(params.len(), 20, "{params:?}");
    let steps = serde_json::json!([4, 8]);
    let histograms = got["histograms"].as_object().unwrap();
    for param in &params {
        for kind in ["weights", "grads"] {
            let tag = format!("{kind}/{param}");
            let h = histograms
                .get(&tag)
                .unwrap_or_else(|| panic!("no {tag} histogram in {}", trn.display()));
            assert_eq!(h["steps"], steps, "{tag}: one per step");
            assert_eq!(h["counts_sum"], h["num"], "{tag}: buckets hold every value");
            if kind == "weights" {
                let size = h["size"].as_f64().unwrap();
                assert!(h["num"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|n| n.as_f64() == Some(size)));
                assert_eq!(
                    h["final_matches_numpy"], true,
                    "{tag}: last step vs saved weights"
                );
            }
        }
    }
    // Nothing but those besides the book's P(nodule) histograms, and
    // neither parameter histograms nor images in the other event file.
    let extra: Vec<&String> = histograms
        .keys()
        .filter(|t| !["is_neg", "is_pos"].contains(&t.as_str()))
        .collect();
    assert_eq!(extra.len(), 2 * params.len(), "{extra:?}");
    let val_histograms = got["val_histograms"].as_array().unwrap();
    assert!(
        val_histograms
            .iter()
            .all(|t| t == "is_neg" || t == "is_pos"),
        "{val_histograms:?}"
    );
    assert_eq!(got["trn_images"], serde_json::json!([]));

    // Activations after the epoch's validation: 48 px input tiles, block
    // tiles enlarged to 24 px, a 1 px gap between tiles.
    // The first 3 positives and first 3 negatives of the validation split.
    let (positives, negatives) = val_classes(&cache, 10);
    assert!(
        positives > 0 && negatives > 0,
        "the fixed cache validates both classes"
    );
    let rows = positives.min(3) + negatives.min(3);
    let height = |tile: u64| rows * tile + rows - 1;
    let expected = [
        ("activations/input", 48, height(48)),
        ("activations/block1", 8 * 24 + 7, height(24)),
        ("activations/block2", 16 * 24 + 15, height(24)),
        ("activations/block3", 32 * 24 + 31, height(24)),
        ("activations/block4", 64 * 24 + 63, height(24)),
    ];
    let images = got["images"].as_object().unwrap();
    assert_eq!(images.len(), expected.len(), "{images:?}");
    for (tag, width, height) in expected {
        let image = &images[tag];
        assert_eq!(image["steps"], serde_json::json!([8]), "{tag}");
        assert_eq!(image["size"], serde_json::json!([width, height]), "{tag}");
        assert_eq!(
            image["decoded"],
            serde_json::json!([width, height]),
            "{tag}"
        );
        assert_eq!(image["mode"], "L", "{tag}");
        assert!(
            image["distinct_greys"].as_u64().unwrap() > 2,
            "{tag}: not a blank image"
        );
    }
}
