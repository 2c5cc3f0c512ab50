"""Write a candidates_V2.csv of LUNA16's V2 length over a synthetic data set.

The organisers' candidates_V2.csv has 754,975 rows with candidates.csv's
columns. Real scans are not available here, so the list is built over the
synthetic scans: every row of candidates.csv once (positives included), then
copies of them moved by up to JITTER mm per axis until the list has N rows.
Seeded, so two runs write the same file.

usage: candidates_v2.py DATA_DIR [--rows 754975] [--seed 1] [--jitter 8]
"""
import argparse
import csv
import os
import random


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--rows", type=int, default=754_975)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jitter", type=float, default=8.0)
    args = ap.parse_args()

    with open(os.path.join(args.data, "candidates.csv"), newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    rng = random.Random(args.seed)
    out_path = os.path.join(args.data, "candidates_V2.csv")
    tmp = out_path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for i in range(args.rows):
            uid, x, y, z, cls = rows[i % len(rows)]
            if i >= len(rows):
                x, y, z = (f"{float(v) + rng.uniform(-args.jitter, args.jitter):.2f}" for v in (x, y, z))
            w.writerow([uid, x, y, z, cls])
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out_path)
    print(f"{out_path}: {args.rows} rows over {len({r[0] for r in rows})} scans")


if __name__ == "__main__":
    main()
