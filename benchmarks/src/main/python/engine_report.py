#!/usr/bin/env python3
"""Prints the engine benchmarks' table from JMH's JSON results (-rf json).

Usage: engine_report.py RESULTS.json [--markdown]
Every throughput figure is in MiB/s (1 MiB = 1048576 bytes) or in operations per second; clone
times are in microseconds. A figure is JMH's score (the mean of the measurement iterations),
followed by the lowest and highest iteration in parentheses; ratios are of the means. Exit status: 0 when every target is met, 3 when one is missed.
"""
import json
import sys

NAMES = {
    "SequentialWriteBenchmark.unique": "seq write, unique data (1 MiB writes, flush per 64 MiB)",
    "SequentialWriteBenchmark.alreadyStored": "seq write, already-stored data, same offsets",
    "SequentialWriteBenchmark.alreadyStoredShifted": "seq write, already-stored data, shifted 1 leaf",
    "RandomWriteBenchmark.random4k": "random 4 KiB writes, 1 GiB file, flush per 256",
    "ReadBenchmark.sequential": "seq read 1 MiB, 1 GiB file",
    "ReadBenchmark.random4k": "random 4 KiB reads, 1 GiB file",
    "CloneBenchmark.wholeFile": "clone of a whole file",
    "HashCeilingBenchmark.sha256": "ceiling: SHA-256, one core",
    "LmdbCeilingBenchmark.put": "ceiling: LMDB puts, 64 MiB per commit",
    "LmdbCeilingBenchmark.putWithRefs": "LMDB puts + hash look-up + count put (the engine's pattern)",
}


def short(name):
    return ".".join(name.split(".")[-2:])


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    markdown = "--markdown" in sys.argv[2:]
    results = json.load(open(sys.argv[1]))
    by_leaf = {}
    for r in results:
        leaf = int(r.get("params", {}).get("leafSize", 16384))
        by_leaf.setdefault(leaf, []).append(r)
    missed = False
    for leaf in sorted(by_leaf):
        rows, leaf_missed = table(by_leaf[leaf])
        missed |= leaf_missed
        print()
        print(f"leaf size {leaf // 1024} KiB")
        show(rows, markdown)
    sys.exit(3 if missed else 0)


def table(results):
    fig = {}
    for r in results:
        p = r.get("params", {})
        key = short(r["benchmark"])
        extra = p.get("source") or p.get("size")
        m = r["primaryMetric"]
        samples = [x for fork in m.get("rawData", []) for x in fork]
        lo, hi = (min(samples), max(samples)) if samples else (float("nan"), float("nan"))
        pct = m.get("scorePercentiles", {})
        fig[(key, extra)] = (float(m["score"]), (lo, hi), m["scoreUnit"], pct)

    def get(key, extra=None):
        return fig.get((key, extra))

    sha = get("HashCeilingBenchmark.sha256")
    lmdb = get("LmdbCeilingBenchmark.put")
    rows = []
    missed = False

    def num(v, unit):
        lo, hi = v[1]
        spread = "" if lo != lo or lo == hi else f" ({lo:,.0f}-{hi:,.0f})"
        return f"{v[0]:,.0f} {unit}{spread}"

    def rate(v):
        return num(v, "MiB/s")

    def ops(v):
        return num(v, "op/s")

    def verdict(ratio, need, at_least=True):
        nonlocal missed
        ok = ratio >= need if at_least else ratio <= need
        missed |= not ok
        return "PASS" if ok else "FAIL"

    low = None
    if sha and lmdb:
        low = ("SHA-256", sha) if sha[0] <= lmdb[0] else ("LMDB put", lmdb)
    u = get("SequentialWriteBenchmark.unique")
    if u:
        if low:
            ratio = u[0] / low[1][0]
            rows.append([NAMES["SequentialWriteBenchmark.unique"], rate(u), f"{low[1][0]:,.0f} MiB/s ({low[0]}, the lower)",
                         f"{ratio:.2f}", ">= 0.50", verdict(ratio, 0.50)])
        else:
            rows.append([NAMES["SequentialWriteBenchmark.unique"], rate(u), "ceilings not run", "", ">= 0.50", "?"])
    for k in ("SequentialWriteBenchmark.alreadyStored", "SequentialWriteBenchmark.alreadyStoredShifted"):
        v = get(k)
        if v:
            if sha:
                ratio = v[0] / sha[0]
                rows.append([NAMES[k], rate(v), f"{sha[0]:,.0f} MiB/s (SHA-256)", f"{ratio:.2f}", ">= 0.70", verdict(ratio, 0.70)])
            else:
                rows.append([NAMES[k], rate(v), "ceiling not run", "", ">= 0.70", "?"])
    v = get("RandomWriteBenchmark.random4k")
    if v:
        rows.append([NAMES["RandomWriteBenchmark.random4k"], f"{v[0] * 4096 / 2**20:,.1f} MiB/s = " + ops(v), "", "", "none", "info"])
    for source, where in (("lmdb", "from LMDB, verified"), ("cache", "from the verified cache")):
        v = get("ReadBenchmark.sequential", source)
        if v:
            ceiling, ratio = ("", "")
            if sha and source == "lmdb":
                ceiling, ratio = f"{sha[0]:,.0f} MiB/s (SHA-256: every leaf is verified)", f"{v[0] / sha[0]:.2f}"
            rows.append([f"{NAMES['ReadBenchmark.sequential']}, {where}", rate(v), ceiling, ratio, "none", "info"])
    for source, where in (("lmdb", "from LMDB, verified"), ("cache", "from the verified cache")):
        v = get("ReadBenchmark.random4k", source)
        if v:
            rows.append([f"{NAMES['ReadBenchmark.random4k']}, {where}", ops(v), "", "", "none", "info"])
    small = get("CloneBenchmark.wholeFile", "1048576")
    big = get("CloneBenchmark.wholeFile", "1073741824")

    def median(v):
        # sample mode: the median clone; other modes: the mean
        return float(v[3].get("50.0", v[0])) if v[3] else v[0]

    def clone(v):
        if not v[3]:
            return num(v, "us")
        return f"median {median(v):,.0f} us (mean {v[0]:,.0f}, p90 {float(v[3].get('90.0', 'nan')):,.0f})"

    if small:
        rows.append(["clone of a 1 MiB file (copyRange + commit)", clone(small), "", "", "reference", "info"])
    if big:
        if small:
            ratio = median(big) / median(small)
            rows.append(["clone of a 1 GiB file (copyRange + commit)", clone(big),
                         f"{median(small):,.0f} us (the 1 MiB clone)", f"{ratio:.2f}", "<= 2.00", verdict(ratio, 2.0, at_least=False)])
        else:
            rows.append(["clone of a 1 GiB file", clone(big), "1 MiB clone not run", "", "<= 2.00", "?"])
    if sha:
        rows.append([NAMES["HashCeilingBenchmark.sha256"], rate(sha), "", "", "", "ceiling"])
    if lmdb:
        rows.append([NAMES["LmdbCeilingBenchmark.put"], rate(lmdb), "", "", "", "ceiling"])
    v = get("LmdbCeilingBenchmark.putWithRefs")
    if v:
        rows.append([NAMES["LmdbCeilingBenchmark.putWithRefs"], rate(v), f"{lmdb[0]:,.0f} MiB/s (LMDB put)" if lmdb else "",
                     f"{v[0] / lmdb[0]:.2f}" if lmdb else "", "none", "info"])
    return rows, missed


def show(rows, markdown):
    head = ["benchmark", "figure", "ceiling", "ratio", "target", "result"]
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in rows:
            print("| " + " | ".join(r) + " |")
        return
    widths = [max(len(str(x[i])) for x in rows + [head]) for i in range(len(head))]
    line = "  ".join("-" * w for w in widths)
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    print(line)
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


if __name__ == "__main__":
    main()
