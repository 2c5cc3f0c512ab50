"""Markdown table of scripts/bench/analysis.sh's results (whole-scan
analysis, chapter 14): `python render_analysis.py RESULTS_DIR` prints it;
render.py puts `section(dir)` into BENCHMARKS.md."""

import json
import pathlib
import statistics
import sys

LABELS = {
    "book": "book's nodule_analysis.py path (fp32, DataLoader 4 workers)",
    "ours-fp32": "train analyze --precision fp32",
}


def _median(runs, key):
    return statistics.median(r["seconds"][key] for r in runs)


def section(results_dir):
    d = pathlib.Path(results_dir)
    env = dict(l.split("=", 1) for l in (d / "machine.env").read_text().splitlines() if "=" in l)
    runs = {p.stem: [json.loads(l) for l in p.read_text().splitlines()] for p in sorted(d.glob("*.jsonl"))}
    book = _median(runs["book"], "total")
    lines = [
        "### Whole-scan analysis (chapter 14)",
        "",
        f"`bash scripts/bench/analysis.sh`: one {runs['book'][0]['shape']} synthetic scan (luna preset), "
        f"{env['weights']} weights, {env['threads']} threads, median of {env['rounds']} interleaved rounds; "
        f"{env['cpu']}, load {env['load_before']} before and {env.get('load_after', '?')} after; "
        f"{env['date']}, {env['git']}. Seconds from reading the scan to the classified candidates "
        "(process start-up and model loading left out on both sides).",
        "",
        "| pipeline | read s | segment s | group s | classify s | total s | × book | candidates |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ["book", "ours-fp32", "ours-auto"]:
        rs = runs[name]
        group = "group" if name == "book" else "components"
        label = LABELS.get(name, f"train analyze ({rs[0].get('compute', 'auto')})")
        cells = [_median(rs, k) for k in ("read", "segment", group, "classify", "total")]
        lines.append(
            f"| {label} | " + " | ".join(f"{c:.1f}" for c in cells) + f" | {book / cells[-1]:.2f} | {rs[0]['candidates']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(section(sys.argv[1]))
