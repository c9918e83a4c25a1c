#!/usr/bin/env bash
# send-receive-bench.sh — stream size and time of `dedupfs send` (whole, and incremental after
# 1 MiB of changes) and of `dedupfs receive`, against the image size, between two mounted stores on
# this machine. Not part of the test run.
#
# Usage (as root: it mounts):
#     benchmarks/send-receive-bench.sh
# after `mvn -q -B -DskipTests package -pl engine,fs -am` (it runs a private copy of
# fs/target/dedupfs.jar, or of $DEDUPFS_JAR).
#
# For each image size S (sparse-ish: S/4 of unique random data in 4 MiB pieces at random 4 MiB
# places, the rest holes; leaf size 16 KiB), in a fresh pair of stores a and b:
#     whole        `dedupfs send base A > FILE` (time, stream bytes), `dedupfs receive B < FILE`
#     incremental  16 runs of 64 KiB rewritten at random 64 KiB places (1 MiB), snapshot, then
#                  `dedupfs send next --from base A > FILE` and `dedupfs receive B < FILE`
#     ceiling      reading the image's data through the mount (`cat` of the snapshot's image,
#                  holes included, to /dev/null), in the same run: what a sender that must read
#                  every data byte can reach at best
# and, for comparison, what a ZFS-like send would carry: a whole stream every data byte; an
# incremental one every changed 128 KiB record (16 runs of 64 KiB: 16 to 32 records, 2-4 MiB).
# Command times include a JVM start (about 0.3-0.5 s here).
#
# Settings (environment):
#     DEDUPFS_BENCH_DIR       where stores and mountpoints go (default /var/tmp; not a tmpfs)
#     DEDUPFS_BENCH_SIZES_MB  image sizes in MiB (default "256 1024 4096")
# Takes about 3 minutes on 2 cores. Results: the table on stdout, also under
# benchmarks/target/results/.
set -euo pipefail

here=$(cd "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")" && pwd)
root=$(dirname -- "$here")
base=${DEDUPFS_BENCH_DIR:-/var/tmp}
sizes=${DEDUPFS_BENCH_SIZES_MB:-256 1024 4096}

log() { printf 'send-receive-bench: %s\n' "$*" >&2; }
die() {
    log "$*"
    exit 1
}

[[ $EUID -eq 0 ]] || die "run as root (it mounts a FUSE filesystem)"
for tool in python3 findmnt; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/deps.sh installs it)"
done
built_jar=${DEDUPFS_JAR:-$root/fs/target/dedupfs.jar}
[[ -f "$built_jar" ]] || die "$built_jar not found: run mvn -q -B -DskipTests package -pl engine,fs -am first"

work=$(mktemp -d "$base/dedupfs-send-bench.XXXXXX")
export DEDUPFS_JAR=$work/dedupfs.jar
cp "$built_jar" "$DEDUPFS_JAR"
dedupfs=$root/mount-scripts/dedupfs

cleanup() {
    set +e
    for m in "$work"/mnt-*; do
        if findmnt -rn --mountpoint "$m" >/dev/null 2>&1; then
            "$dedupfs" umount "$m" >/dev/null 2>&1 || umount -l "$m"
        fi
    done
    rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
secs() { python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$2"; }
mib() { python3 -c "import sys; print('%.2f' % (int(sys.argv[1]) / 1048576))" "$1"; }

mkdir -p "$root/benchmarks/target/results"
out="$root/benchmarks/target/results/send-receive-$(date -u +%Y%m%dT%H%M%SZ).md"
{
    echo "| image | data | whole: stream MiB | send s | receive s | read ceiling s | incremental: stream MiB | send s | receive s |"
    echo "|---|---|---|---|---|---|---|---|---|"
} | tee "$out"

for s in $sizes; do
    a=$work/mnt-a-$s b=$work/mnt-b-$s
    mkdir -p "$a" "$b"
    "$dedupfs" create "$work/store-a-$s" >/dev/null
    "$dedupfs" create "$work/store-b-$s" >/dev/null
    "$dedupfs" mount --log "$work/a-$s.log" "$work/store-a-$s" "$a" >/dev/null
    "$dedupfs" mount --log "$work/b-$s.log" "$work/store-b-$s" "$b" >/dev/null
    python3 - "$a/img" "$s" <<'PY'
import os, random, sys
path, size = sys.argv[1], int(sys.argv[2]) << 20
r = random.Random(size)
M = 1 << 20
fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
os.ftruncate(fd, size)
slots = r.sample(range(size // (4 * M)), size // (16 * M))
for k in slots:
    os.pwrite(fd, r.randbytes(4 * M), k * 4 * M)
os.fsync(fd)
os.close(fd)
PY
    "$dedupfs" snapshot create base "$a" >/dev/null
    sync
    t0=$(now); cat "$a/.snapshots/base/img" >/dev/null; t1=$(now)
    ceiling=$(secs "$t0" "$t1")
    t0=$(now); "$dedupfs" send base "$a" >"$work/full.stream" 2>/dev/null; t1=$(now)
    send_full=$(secs "$t0" "$t1")
    full_bytes=$(stat -c %s "$work/full.stream")
    t0=$(now); "$dedupfs" receive "$b" <"$work/full.stream" >/dev/null; t1=$(now)
    recv_full=$(secs "$t0" "$t1")
    rm -f "$work/full.stream"
    python3 - "$a/img" "$s" <<'PY'
import os, random, sys
path, size = sys.argv[1], int(sys.argv[2]) << 20
r = random.Random(size + 1)
fd = os.open(path, os.O_WRONLY)
for _ in range(16):
    os.pwrite(fd, r.randbytes(65536), r.randrange(size // 65536) * 65536)
os.fsync(fd)
os.close(fd)
PY
    "$dedupfs" snapshot create next "$a" >/dev/null
    t0=$(now); "$dedupfs" send next --from base "$a" >"$work/inc.stream" 2>/dev/null; t1=$(now)
    send_inc=$(secs "$t0" "$t1")
    inc_bytes=$(stat -c %s "$work/inc.stream")
    t0=$(now); "$dedupfs" receive "$b" <"$work/inc.stream" >/dev/null; t1=$(now)
    recv_inc=$(secs "$t0" "$t1")
    cmp "$a/.snapshots/next/img" "$b/.snapshots/next/img" || die "the received image differs"
    rm -f "$work/inc.stream"
    echo "| $s MiB | $((s / 4)) MiB | $(mib "$full_bytes") | $send_full | $recv_full | $ceiling | $(mib "$inc_bytes") | $send_inc | $recv_inc |" | tee -a "$out"
    "$dedupfs" umount "$a" >/dev/null
    "$dedupfs" umount "$b" >/dev/null
    rm -rf "$work/store-a-$s" "$work/store-b-$s"
done
log "results: $out"
