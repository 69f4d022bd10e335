#!/usr/bin/env python3
"""Side-by-side table of BENCH lines from nde and the peers.

Reads BENCH lines (from the files named, or stdin when none / "-"):
  BENCH lib=<lib> workload=<W> mode=<m> ms=<x> nfe_f=<n> nfe_b=<n> loss=<x> iters=<n> [note=...]
Other lines are ignored; a BENCH line may carry a prefix (e.g. from make).
When a (lib, workload, mode) appears more than once, the last line wins.
Prints one Markdown table: workload | mode | nde ms | <peer> ms (ratio) ... |
NFE f/b of each library; ratio = peer_ms / nde_ms (> 1: nde is faster).
--csv PATH writes the same rows (plus the losses) as CSV. Standard library only.
"""
import argparse
import csv
import math
import sys

LIBS = ["nde", "torchdiffeq", "torchdyn", "diffrax"]
MODE_ORDER = ["direct", "adjoint", "interp", "gq", "checkpoint"]


def parse_line(line):
    i = line.find("BENCH ")
    if i < 0:
        return None
    body = line[i + len("BENCH "):].rstrip("\n")
    rec = {}
    j = body.find(" note=")
    if body.startswith("note="):
        j = -1
        rec["note"] = body[5:]
        body = ""
    elif j >= 0:
        rec["note"] = body[j + len(" note="):].strip()
        body = body[:j]
    for tok in body.split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            rec[k] = v
    if not all(k in rec for k in ("lib", "workload", "mode", "ms")):
        return None
    return rec


def fnum(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return float("nan")


def read_records(paths):
    recs = {}
    streams = []
    if not paths or paths == ["-"]:
        streams.append(sys.stdin)
    else:
        for p in paths:
            streams.append(sys.stdin if p == "-" else open(p, encoding="utf-8", errors="replace"))
    for f in streams:
        for line in f:
            r = parse_line(line)
            if r is not None:
                recs[(r["lib"], r["workload"], r["mode"])] = r
    return recs


def wkey(w):
    digits = "".join(ch for ch in w if ch.isdigit())
    return (int(digits) if digits else 1 << 30, w)


def mkey(m):
    return (MODE_ORDER.index(m) if m in MODE_ORDER else len(MODE_ORDER), m)


def fmt_ms(x):
    if math.isnan(x):
        return "n/a"
    return f"{x:.1f}" if x >= 100 else f"{x:.2f}"


def nfe_str(r):
    if r is None:
        return "-"
    f, b = r.get("nfe_f", "-1"), r.get("nfe_b", "-1")
    f = "?" if f == "-1" else f
    b = "?" if b == "-1" else b
    return f"{f}/{b}"


def build_rows(recs):
    libs = LIBS + sorted({k[0] for k in recs} - set(LIBS))
    keys = sorted({(k[1], k[2]) for k in recs}, key=lambda wm: (wkey(wm[0]), mkey(wm[1])))
    rows = []
    for w, m in keys:
        row = {"workload": w, "mode": m}
        base = recs.get(("nde", w, m))
        base_ms = fnum(base["ms"]) if base else float("nan")
        for lib in libs:
            r = recs.get((lib, w, m))
            ms = fnum(r["ms"]) if r else float("nan")
            ratio = ms / base_ms if (r and lib != "nde" and base_ms > 0) else float("nan")
            row[lib] = dict(rec=r, ms=ms, ratio=ratio)
        rows.append(row)
    return libs, rows


def markdown(libs, rows, with_loss=False):
    peers = [l for l in libs if l != "nde"]
    head = ["workload", "mode", "nde ms"] + [f"{p} ms (ratio)" for p in peers]
    head += [f"NFE f/b {l}" for l in libs]
    if with_loss:
        head += [f"loss {l}" for l in libs]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    notes = []
    for row in rows:
        cells = [row["workload"], row["mode"]]
        nde = row["nde"]
        cells.append(fmt_ms(nde["ms"]) if nde["rec"] else "-")
        for p in peers:
            c = row[p]
            if c["rec"] is None:
                cells.append("-")
                continue
            s = fmt_ms(c["ms"])
            if not math.isnan(c["ratio"]):
                s += f" ({c['ratio']:.2f}x)"
            if c["rec"].get("note"):
                notes.append(f"{p} {row['workload']} {row['mode']}: {c['rec']['note']}")
                s += f" [{len(notes)}]"
            cells.append(s)
        for l in libs:
            cells.append(nfe_str(row[l]["rec"]))
        if with_loss:
            for l in libs:
                r = row[l]["rec"]
                cells.append(r.get("loss", "-") if r else "-")
        out.append("| " + " | ".join(cells) + " |")
    if notes:
        out.append("")
        out += [f"[{i + 1}] {n}" for i, n in enumerate(notes)]
    out.append("")
    out.append("ratio = peer ms / nde ms (> 1: nde faster). NFE f/b: forward / backward field "
               "evaluations of the first iteration; ? = not reported.")
    return "\n".join(out)


def write_csv(path, libs, rows):
    cols = ["workload", "mode"]
    for l in libs:
        cols += [f"{l}_ms"] + ([f"{l}_ratio"] if l != "nde" else []) + \
                [f"{l}_nfe_f", f"{l}_nfe_b", f"{l}_loss", f"{l}_iters", f"{l}_note"]
    with open(path, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(cols)
        for row in rows:
            vals = [row["workload"], row["mode"]]
            for l in libs:
                c = row[l]
                r = c["rec"] or {}
                vals.append("" if not r else r.get("ms", ""))
                if l != "nde":
                    vals.append("" if math.isnan(c["ratio"]) else f"{c['ratio']:.4f}")
                vals += [r.get("nfe_f", ""), r.get("nfe_b", ""), r.get("loss", ""),
                         r.get("iters", ""), r.get("note", "")]
            wr.writerow(vals)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", help="files with BENCH lines (default / '-': stdin)")
    ap.add_argument("--csv", metavar="PATH", help="also write the table as CSV")
    ap.add_argument("--loss", action="store_true", help="add the first-iteration losses to the table")
    a = ap.parse_args(argv)
    recs = read_records(a.files)
    if not recs:
        print("compare.py: no BENCH lines found", file=sys.stderr)
        return 1
    libs, rows = build_rows(recs)
    print(markdown(libs, rows, a.loss))
    if a.csv:
        write_csv(a.csv, libs, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
