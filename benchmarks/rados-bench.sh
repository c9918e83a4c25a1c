#!/usr/bin/env bash
# rados-bench.sh — new 16 KiB blocks taken (RadosPool.take: stored with a reference count) and
# released per second, from 1 and 16 threads, beside `rados bench` writes of 16 KiB objects with
# 1 and 16 threads, on one fresh one-node cluster (scripts/ceph.sh) in the same minute; then what
# each kind of per-store reference change costs (RadosRefCostBench, one thread).
#
# Usage: benchmarks/rados-bench.sh [SECONDS]     (default 10 s per figure)
# after `mvn -q -B -DskipTests package -pl engine,fs,benchmarks -am`. The cluster goes in
# DEDUPFS_BENCH_DIR (default /var/tmp) on ports from 17500 and is stopped and removed at the end.
set -euo pipefail

here=$(cd "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")" && pwd)
root=$(dirname -- "$here")
seconds=${1:-10}
base=${DEDUPFS_BENCH_DIR:-/var/tmp}
jar=$root/benchmarks/target/benchmarks.jar

say() { printf 'rados-bench: %s\n' "$*" >&2; }
[[ $seconds =~ ^[1-9][0-9]*$ ]] || {
    say "SECONDS must be a positive number, not '$seconds'"
    exit 1
}
[[ -f "$jar" ]] || {
    say "$jar not found: run mvn -q -B -DskipTests package -pl engine,fs,benchmarks -am first"
    exit 1
}

work=$(mktemp -d "$base/dedupfs-rados-bench.XXXXXX")
cleanup() {
    "$root/scripts/ceph.sh" stop "$work/cluster" >/dev/null 2>&1 || true
    rm -rf -- "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$root/scripts/ceph.sh" start "$work/cluster" --port 17500 >"$work/ceph.sh.log" 2>&1 || {
    cat "$work/ceph.sh.log" >&2
    exit 1
}
conf=$work/cluster/ceph.conf

say "RadosPool.take and release, ${seconds} s per thread count"
java -cp "$jar" io.dedupfs.bench.rados.RadosTakeBench "$conf" blocks "$seconds" 1 16 >"$work/take.tsv"

say "per-store reference changes, one thread, 1,000 new blocks"
java -cp "$jar" io.dedupfs.bench.rados.RadosRefCostBench "$conf" blocks 1000 >"$work/refs.tsv"

ops() { # ops THREADS: rados bench's write IOPS for 16 KiB objects
    rados -c "$conf" bench -p blocks "$seconds" write -b 16384 -t "$1" |
        sed -n 's/^Average IOPS: *\([0-9]*\).*/\1/p'
}
say "rados bench write -b 16384, ${seconds} s per thread count"
bench1=$(ops 1)
bench16=$(ops 16)

printf '%-8s %14s %16s %24s %8s\n' threads "take/s" "release/s" "rados bench write/s" "take %"
while IFS=$'\t' read -r threads take release; do
    ceiling=$bench1
    ((threads == 1)) || ceiling=$bench16
    printf '%-8s %14s %16s %24s %7s%%\n' "$threads" "$take" "$release" "$ceiling" \
        "$((100 * take / ceiling))"
done <"$work/take.tsv"

echo
printf '%-26s %10s %10s\n' "one thread, 16 KiB" "ops/s" "ms/op"
while IFS=$'\t' read -r kind rate ms; do
    printf '%-26s %10s %10s\n' "$kind" "$rate" "$ms"
done <"$work/refs.tsv"
