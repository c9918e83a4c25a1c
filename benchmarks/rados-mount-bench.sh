#!/usr/bin/env bash
# rados-mount-bench.sh — a store whose blocks are in a RADOS pool, through its mount, beside
# `rados bench` with the same object size (the store's 16 KiB leaves) and concurrency (the pool
# store's 32 calls in flight, and 1), and beside a local store (blocks in its LMDB), in one run on
# one cluster; then the table of figures, ratios and issue 14's targets:
#     unique sequential write            >= 50 % of rados bench write, 16 KiB, 32 in flight
#     already-stored data                >= 80 % of the local store writing data it holds
#     read from the cache                >= 80 % of the local store's read (both the cache on the
#                                        local disk, after a remount, and the one in memory)
#
# Usage (as root: it mounts, and drops the page cache before every read):
#     benchmarks/rados-mount-bench.sh [SIZE_MB]      (48 to 256, default 128)
# after `mvn -q -B -DskipTests package -pl engine,rados,fs -am`. It uses a private copy of
# fs/target/dedupfs.jar (or $DEDUPFS_JAR). The cluster: a fresh one-node cluster (scripts/ceph.sh)
# on ports from $DEDUPFS_BENCH_PORT (default 17540), stopped and removed at the end, or the
# running one whose directory is $DEDUPFS_BENCH_CEPH_DIR. Stores and mounts go in
# $DEDUPFS_BENCH_DIR (default /var/tmp). A run takes about 4 minutes.
#
# The local store (local) and a store on the pool (pool, its cache on the local disk 2 GiB, so
# that the whole run's data fits) are mounted side by side and measured in turns: each figure below
# marked "x3" in three rounds, local then pool in each, and the table gives the median and the
# range of the rounds, the targets the ratio of the medians and the range of the rounds' ratios.
#     rados bench     rados bench write -b 16384 for 5 s, -t 32 (x3: before each round of
#                     writes) and -t 1 (once)
#     seq write       dd bs=1M conv=fdatasync of SIZE_MB of random data (a new file in /dev/shm
#                     each round) to file seqR; the fdatasync of a file with more than 8 MiB
#                     changed commits it (its blocks in the pool) rather than appending to the
#                     intent log, so the figure includes every pool call (x3)
#     again           the same data to file againR of the same store (every block stored) (x3)
#     rand write      fio randwrite 16 KiB, 4 jobs, psync, 5 s, fsync at the end, on a new
#                     file of SIZE_MB written first (once)
#     read cold       dd bs=1M of seq1 after a remount and drop_caches (pool: from the store's
#                     cache on the local disk; local: from the disk) (x3)
#     read warm       the same again after drop_caches, same daemon (pool: from the cache on
#                     the local disk again, as the memory's cache of checked blocks keeps the
#                     leaves of small reads only; local: LMDB from the disk) (x3)
#     rand read       fio randread 16 KiB, 4 jobs, psync, O_DIRECT, 5 s, on seq1 after a
#                     remount and drop_caches (x3)
#     read pool       dd bs=1M of seq1 after a remount with --pool-cache 0 (which empties the
#                     disk's cache) and drop_caches: every block from the pool (once)
#     pool-2          a second store on the pool writing the first round's data, which the pool
#                     holds already: a pool reference per block, no data (once)
# Results: the table on stdout. Exit status 0 whatever the targets (they are printed).
set -euo pipefail

here=$(cd "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")" && pwd)
root=$(dirname -- "$here")
size_mb=${1:-128}
base=${DEDUPFS_BENCH_DIR:-/var/tmp}
port=${DEDUPFS_BENCH_PORT:-17540}
dedupfs=$root/mount-scripts/dedupfs

say() { printf 'rados-mount-bench: %s\n' "$*" >&2; }
die() {
    say "$*"
    exit 1
}
[[ $size_mb =~ ^[1-9][0-9]*$ ]] && ((size_mb >= 48 && size_mb <= 256)) ||
    die "SIZE_MB must be 48 to 256, not '$size_mb'"
[[ $EUID -eq 0 ]] || die "run as root (it mounts FUSE filesystems and drops the page cache)"
for tool in dd fio rados python3 findmnt; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/deps.sh installs it)"
done
built_jar=${DEDUPFS_JAR:-$root/fs/target/dedupfs.jar}
[[ -f "$built_jar" ]] || die "$built_jar not found: run mvn -q -B -DskipTests package -pl engine,rados,fs -am"

work=$(mktemp -d "$base/dedupfs-rados-mount-bench.XXXXXX")
shm=$(mktemp -d /dev/shm/dedupfs-rados-mount-bench.XXXXXX)
cluster=${DEDUPFS_BENCH_CEPH_DIR:-}
own_cluster=""
mounted=()
cleanup() {
    set +e
    for m in "${mounted[@]}"; do
        if findmnt -rn --mountpoint "$m" >/dev/null 2>&1; then
            "$dedupfs" umount "$m" >/dev/null 2>&1 || umount -l "$m"
        fi
    done
    if [[ -n "$own_cluster" ]]; then
        "$root/scripts/ceph.sh" stop "$own_cluster" >/dev/null 2>&1
    fi
    rm -rf -- "$shm" "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cp -- "$built_jar" "$work/dedupfs.jar"
python3 -c 'import sys, zipfile; sys.exit(zipfile.ZipFile(sys.argv[1]).testzip() is not None)' \
    "$work/dedupfs.jar" || die "$built_jar is not a valid jar (a build in progress?)"
export DEDUPFS_JAR=$work/dedupfs.jar

if [[ -z "$cluster" ]]; then
    own_cluster=$work/cluster
    cluster=$own_cluster
    say "starting a one-node cluster in $cluster"
    "$root/scripts/ceph.sh" start "$cluster" --port "$port" >"$work/ceph.sh.log" 2>&1 || {
        cat "$work/ceph.sh.log" >&2
        exit 1
    }
fi
conf=$cluster/ceph.conf
[[ -r "$conf" ]] || die "no cluster configuration at $conf"

say "load before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"

mib_s() { # BYTES SECONDS
    python3 -c 'import sys; print("%.1f" % (int(sys.argv[1]) / float(sys.argv[2]) / 1048576))' "$1" "$2"
}
dd_rate() { # dd ARGS...: MiB/s
    local out
    out=$(LC_ALL=C dd "$@" 2>&1 | tail -1)
    mib_s "$(awk '{print $1}' <<<"$out")" "$(sed -E 's/.* copied, ([0-9.]+) s.*/\1/' <<<"$out")"
}
fio_rate() { # NAME RW FILE: MiB/s over 4 jobs
    local file=$3
    fio --name="$1" --rw="$2" --bs=16k --ioengine=psync --numjobs=4 --time_based --runtime=5 \
        --filename="$file" --size="${size_mb}M" --group_reporting --output-format=terse \
        --terse-version=3 ${4:+$4} 2>/dev/null |
        awk -F';' -v rw="$2" '{ if (rw == "randread") print $7; else print $48 }' |
        python3 -c 'import sys; print("%.1f" % (int(sys.stdin.read().strip()) / 1024))'
}
dropcaches() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
}

declare -A fig # NAME.FIGURE -> the space-separated MiB/s of its rounds
note() { fig[$1]="${fig[$1]:+${fig[$1]} }$2"; }
mountstore() { # NAME [create options...]; mount options in the array mount_opts
    local name=$1
    shift
    if [[ ! -d "$work/$name" ]]; then
        "$dedupfs" create "$@" "$work/$name" >/dev/null
        mkdir -p "$work/mnt-$name"
    fi
    "$dedupfs" mount "${mount_opts[@]}" --log "$work/$name.log" "$work/$name" "$work/mnt-$name" \
        >/dev/null 2>&1 ||
        die "mount of $name failed: see $work/$name.log"
    mounted+=("$work/mnt-$name")
}
umountstore() {
    "$dedupfs" umount "$work/mnt-$1" >/dev/null
}
remount() { # NAME: a fresh daemon, nothing of the store in its memory or the page cache
    umountstore "$1"
    mountstore "$1"
    dropcaches
}
bench() { # THREADS: rados bench 16 KiB writes, MiB/s
    rados -c "$conf" bench -p blocks 5 write -b 16384 -t "$1" 2>/dev/null |
        sed -n 's/^Average IOPS: *\([0-9]*\).*/\1/p' |
        python3 -c 'import sys; print("%.1f" % (int(sys.stdin.read().strip()) * 16384 / 1048576))'
}

# The local store and the pool store are measured in turns, each figure in $rounds rounds, so that
# both see the same moments of a shared machine (whose speed varies by half from one minute to the
# next); the table gives each figure's median and its range.
rounds=3
stores=(local pool)
mount_opts=()
mountstore local
# the whole run's data fits in the cache on the local disk (reads are meant to come from it)
mount_opts=(--pool-cache 2G)
mountstore pool --blocks rados:blocks --ceph-conf "$conf"
for ((r = 1; r <= rounds; r++)); do
    say "writes, round $r of $rounds: rados bench -t 32, then each store"
    head -c "${size_mb}M" /dev/urandom >"$shm/data$r"
    note bench.32 "$(bench 32)"
    for s in "${stores[@]}"; do
        note "$s.seq" "$(dd_rate if="$shm/data$r" of="$work/mnt-$s/seq$r" bs=1M conv=fdatasync)"
        note "$s.again" "$(dd_rate if="$shm/data$r" of="$work/mnt-$s/again$r" bs=1M conv=fdatasync)"
    done
done
note bench.1 "$(bench 1)"
say "random writes"
head -c "${size_mb}M" /dev/urandom >"$shm/rand"
for s in "${stores[@]}"; do
    dd if="$shm/rand" of="$work/mnt-$s/rand" bs=1M conv=fdatasync status=none
    note "$s.randwrite" "$(fio_rate randwrite randwrite "$work/mnt-$s/rand" --end_fsync=1)"
done
for ((r = 1; r <= rounds; r++)); do
    say "reads, round $r of $rounds"
    for s in "${stores[@]}"; do
        remount "$s"
        note "$s.cold" "$(dd_rate if="$work/mnt-$s/seq1" of=/dev/null bs=1M)"
        dropcaches
        note "$s.warm" "$(dd_rate if="$work/mnt-$s/seq1" of=/dev/null bs=1M)"
        remount "$s"
        note "$s.randread" "$(fio_rate randread randread "$work/mnt-$s/seq1" --direct=1)"
    done
done
say "reads from the pool (--pool-cache 0), once"
umountstore pool
mount_opts=(--pool-cache 0)
mountstore pool
dropcaches
note pool.pool "$(dd_rate if="$work/mnt-pool/seq1" of=/dev/null bs=1M)"
umountstore pool
umountstore local
say "pool-2: the first round's data on a second store of the pool"
mount_opts=()
mountstore pool-2 --blocks rados:blocks --ceph-conf "$conf"
note pool-2.seq "$(dd_rate if="$shm/data1" of="$work/mnt-pool-2/seq" bs=1M conv=fdatasync)"
umountstore pool-2
say "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

med() { # FIGURE: its median (nothing for no figure)
    [[ -n "$1" && -n "${fig[$1]:-}" ]] || return 0
    python3 -c 'import statistics, sys; print("%.1f" % statistics.median(map(float, sys.argv[1:])))' ${fig[$1]}
}
range() { # FIGURE: "min-max" of its rounds, or nothing for one round
    [[ -n "$1" && -n "${fig[$1]:-}" ]] || return 0
    python3 -c 'import sys; v = sorted(map(float, sys.argv[1:])); print("%.0f-%.0f" % (v[0], v[-1]) if len(v) > 1 else "")' ${fig[$1]}
}
row() { # LABEL LOCAL_FIGURE POOL_FIGURE
    printf '%-38s %8s %-10s %8s %s\n' "$1" "$(med "$2")" "$(range "$2")" "$(med "$3")" "$(range "$3")" |
        sed 's/ *$//'
}
pct() { python3 -c 'import sys; print("%d" % round(100 * float(sys.argv[1]) / float(sys.argv[2])))' "$1" "$2"; }
ratio() { # POOL_FIGURE LOCAL_FIGURE: the median ratio and the range of the rounds' ratios
    python3 -c '
import statistics, sys
a, b = [list(map(float, x.split())) for x in sys.argv[1:3]]
r = [100 * x / y for x, y in zip(a, b)]
print("%d %% (rounds %.0f-%.0f)" % (round(100 * statistics.median(a) / statistics.median(b)), min(r), max(r)))' \
        "${fig[$1]}" "${fig[$2]}"
}

printf '%s, %s MiB, 16 KiB blocks, %d rounds, load %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" \
    "$size_mb" "$rounds" "$(cut -d' ' -f1 /proc/loadavg)"
printf '%-38s %8s %-10s %8s\n' "MiB/s: median, range of rounds" local "" pool
row "seq write, unique" local.seq pool.seq
row "seq write, data the store holds" local.again pool.again
row "rand write 16 KiB x4, fsync at end" local.randwrite pool.randwrite
row "seq read, cold (pool: local cache)" local.cold pool.cold
row "seq read, warm (pool: local cache)" local.warm pool.warm
row "rand read 16 KiB x4 direct, cold" local.randread pool.randread
row "seq read, cold (pool: from the pool)" "" pool.pool
row "seq write, data another store holds" "" pool-2.seq
row "rados bench write 16 KiB, -t 32" "" bench.32
row "rados bench write 16 KiB, -t 1" "" bench.1
echo
line() { printf '%-48s %s\n' "$1" "$2"; }
line "target: unique seq write / rados bench -t 32" "$(ratio pool.seq bench.32) (>= 50)"
line "target: data the store holds, pool / local" "$(ratio pool.again local.again) (>= 80)"
line "        data another store holds / local" "$(pct "$(med pool-2.seq)" "$(med local.again)") %"
line "target: read from the cache, pool warm / local" "$(ratio pool.warm local.warm) (>= 80)"
line "target: read from the cache, pool cold / local" "$(ratio pool.cold local.cold) (>= 80)"
line "        rand read, pool / local" "$(ratio pool.randread local.randread)"
line "        read from the pool / local cold" "$(pct "$(med pool.pool)" "$(med local.cold)") %"
