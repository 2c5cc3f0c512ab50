"""Render the segmentation benchmark (scripts/bench/seg.sh's results) as
Markdown: medians over the interleaved rounds, ratios and goal verdicts.

    python scripts/bench/render_seg.py bench-out/results/seg

scripts/bench/render.py includes the same section in BENCHMARKS.md.
"""

import json
import os
import statistics
import sys

STEP_LAYOUTS = [(p, m) for p in ("fp32", "bf16") for m in ("contiguous", "channels-last")]
PRECISION_NAME = {"fp32": "fp32", "bf16": "bf16 autocast"}
# PyTorch recipes by the precision they run in.
TORCH_FP32 = ("eager", "cl")
TORCH_BF16 = ("bf16", "cl-bf16", "compile")


def rows(results, name):
    path = os.path.join(results, name + ".jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def env(results):
    out = {}
    with open(os.path.join(results, "machine.env")) as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("=")
            out[key] = value
    return out


def cmd(results, name):
    with open(os.path.join(results, name + ".cmd")) as f:
        text = f.read().strip()
    return "`" + text.replace("ours_end_to_end ", "").replace("\\,", ",") + "`"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def spread(values):
    return f"{min(values):.1f}–{max(values):.1f}" if len(values) > 1 else ""


def fmt(v, digits=1):
    return "–" if v is None else f"{v:.{digits}f}"


def verdict(ok):
    return "**met**" if ok else "**missed**"


def figures(results):
    """{(who, recipe, mode): [samples/s per round]}."""
    table = {}
    for r in rows(results, "torch_seg_step"):
        if "skipped" not in r:
            table.setdefault(("PyTorch", r["recipe"], r["mode"]), []).append(r["samples_per_s"])
    for p, m in STEP_LAYOUTS:
        for r in rows(results, f"train_bench_step_{p}_{m}"):
            table.setdefault(("ours", f"{PRECISION_NAME[p]} + {m}", r["mode"]), []).append(r["samples_per_s"])
    return table


def best(table, who, mode, recipes=None):
    """(median samples/s, recipe) of the best recipe of `who` for `mode`."""
    picks = [(median(v), rec) for (w, rec, m), v in table.items()
             if w == who and m == mode and (recipes is None or rec in recipes)]
    return max(picks, default=(None, "–"))


def end_to_end(results, lines):
    book = [r["samples_per_s"] for r in rows(results, "book_seg_train")]
    ours = [r["samples_per_s"] for r in rows(results, "train_seg")]
    lines += ["### End to end: `train seg` vs the book's training app", "",
              "Book: " + cmd(results, "book_seg_train"), "",
              "Ours: " + cmd(results, "train_seg") + " (its default compute modes: bf16 autocast and "
              "channels-last on a CPU with native bf16, else fp32 channels-last)", "",
              "| run | samples/s (median) | rounds | vs book |", "|---|---:|---|---:|"]
    b, o = median(book), median(ours)
    lines.append(f"| book (PyTorch, fp32 eager) | {fmt(b)} | {spread(book)} | 1.0× |")
    ratio = o / b if b and o else None
    lines.append(f"| `train seg` | {fmt(o)} | {spread(ours)} | {fmt(ratio, 2)}× |")
    lines += ["", f"Goal ≥ 5× the book end to end: {fmt(ratio, 2)}× ({verdict(ratio is not None and ratio >= 5)}).", ""]


def step_table(results, table, lines):
    lines += ["### Step and full-slice inference: `train bench-step --model unet` vs PyTorch's recipes", "",
              "PyTorch: " + cmd(results, "torch_seg_step"), "",
              "Ours: " + cmd(results, "train_bench_step_bf16_channels-last") + " (and `--precision fp32`, "
              "`--memory-format contiguous`)", "",
              "| who | recipe | train samples/s (batch 16, 64²) | inference slices/s (512², batch 4) |",
              "|---|---|---:|---:|"]
    for who, recipe in sorted({(w, r) for (w, r, _m) in table}, key=lambda k: (k[0] != "PyTorch", k[1])):
        t = table.get((who, recipe, "train"), [])
        i = table.get((who, recipe, "inference"), [])
        lines.append(f"| {who} | {recipe} | {fmt(median(t))} | {fmt(median(i), 2)} |")
    lines.append("")


def ratios(table, lines):
    o32, or32 = best(table, "ours", "train", [f"fp32 + {m}" for m in ("contiguous", "channels-last")])
    p32, pr32 = best(table, "PyTorch", "train", TORCH_FP32)
    o16, or16 = best(table, "ours", "train", [f"bf16 autocast + {m}" for m in ("contiguous", "channels-last")])
    p16, pr16 = best(table, "PyTorch", "train", TORCH_BF16)
    oi, ori = best(table, "ours", "inference")
    pi, pri = best(table, "PyTorch", "inference")
    r = lambda a, b: fmt(a / b, 2) if a and b else "–"  # noqa: E731
    lines += [f"- Step, fp32: ours {fmt(o32)} samples/s ({or32}) vs PyTorch {fmt(p32)} ({pr32}): {r(o32, p32)}×.",
              f"- Step, bf16: ours {fmt(o16)} samples/s ({or16}) vs PyTorch {fmt(p16)} ({pr16}): {r(o16, p16)}×.",
              f"- Full-slice inference: ours {fmt(oi, 2)} slices/s ({ori}) vs PyTorch best {fmt(pi, 2)} ({pri}): "
              f"{r(oi, pi)}× (goal ≥ 1×: {verdict(bool(oi and pi and oi >= pi))}).", ""]


def section(results):
    e = env(results)
    lines = ["## 7. Segmentation (chapter 13): training and full-slice inference", "",
             f"- {e.get('date', '?')}, commit `{e.get('git', '?')}`; CPU: {e.get('cpu', '?')}, "
             f"`nproc` = {e.get('nproc', '?')}, {e.get('threads', '?')} compute threads; "
             f"{e.get('rounds', '?')} interleaved rounds, medians (ranges when more than one round)",
             f"- load average before: {e.get('load_before', '?')}, after: {e.get('load_after', '?')} "
             "(above `nproc`: other work competed for the cores, and the figures are contended)",
             "- data: `prepcache synth --series 40 --seed 7`, then `prepcache seg` (96×96 training crops; "
             "every sample is a random 64×64 window of one); step and inference inputs are random",
             ""]
    end_to_end(results, lines)
    table = figures(results)
    step_table(results, table, lines)
    ratios(table, lines)
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(section(sys.argv[1]))
