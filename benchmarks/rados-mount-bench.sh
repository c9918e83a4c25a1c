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
#     benchmarks/rados-mount-bench.sh [SIZE_MB]      (default 128; at most the 256 MiB cache)
# after `mvn -q -B -DskipTests package -pl engine,rados,fs -am`. It uses a private copy of
# fs/target/dedupfs.jar (or $DEDUPFS_JAR). The cluster: a fresh one-node cluster (scripts/ceph.sh)
# on ports from $DEDUPFS_BENCH_PORT (default 17540), stopped and removed at the end, or the
# running one whose directory is $DEDUPFS_BENCH_CEPH_DIR. Stores and mounts go in
# $DEDUPFS_BENCH_DIR (default /var/tmp). A run takes about 3 minutes.
#
# Measured on each of: local (a local store), pool (a store on the pool), pool-2 (a second store
# on the same pool, for data the pool holds already):
#     seq write       dd bs=1M conv=fdatasync of SIZE_MB of random data (a file in /dev/shm);
#                     above 32 MiB the fdatasync commits the file (blocks in the pool) rather
#                     than appending to the intent log, so the figure includes every pool call
#     again           the same data to a second file of the same store (every block stored)
#     read cold       dd bs=1M of the first file after a remount and drop_caches (pool: from
#                     the store's cache on the local disk, which holds what it wrote, 1 GiB;
#                     local: from the disk)
#     read warm       the same again after drop_caches, same daemon (pool: from the cache on
#                     the local disk again, as the memory's cache of checked blocks keeps the
#                     leaves of small reads only; local: LMDB from the disk)
#     rand read       fio randread 16 KiB, 4 jobs, psync, O_DIRECT, 5 s, on the first file after
#                     a remount and drop_caches
#     read pool       dd bs=1M of the first file after a remount with --pool-cache 0 (which
#                     empties the disk's cache) and drop_caches: pool, every block from the pool
#     rand write      fio randwrite 16 KiB, 4 jobs, psync, 5 s, fsync at the end, on a new
#                     file of SIZE_MB written first
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
head -c "${size_mb}M" /dev/urandom >"$shm/data"
head -c "${size_mb}M" /dev/urandom >"$shm/data2"

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

declare -A fig
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

measure() { # NAME [create options...]
    local name=$1 m=$work/mnt-$1
    say "$name: writes"
    mountstore "$@"
    fig[$name.seq]=$(dd_rate if="$shm/data" of="$m/seq" bs=1M conv=fdatasync)
    fig[$name.again]=$(dd_rate if="$shm/data" of="$m/again" bs=1M conv=fdatasync)
    dd if="$shm/data2" of="$m/rand" bs=1M conv=fdatasync status=none
    fig[$name.randwrite]=$(fio_rate randwrite randwrite "$m/rand" --end_fsync=1)
    umountstore "$name"
    say "$name: reads"
    mountstore "$name"
    dropcaches
    fig[$name.cold]=$(dd_rate if="$m/seq" of=/dev/null bs=1M)
    dropcaches
    fig[$name.warm]=$(dd_rate if="$m/seq" of=/dev/null bs=1M)
    umountstore "$name"
    mountstore "$name"
    dropcaches
    fig[$name.randread]=$(fio_rate randread randread "$m/seq" --direct=1)
    umountstore "$name"
    mount_opts=(--pool-cache 0)
    mountstore "$name"
    mount_opts=()
    dropcaches
    fig[$name.pool]=$(dd_rate if="$m/seq" of=/dev/null bs=1M)
    umountstore "$name"
}
mount_opts=()

bench() { # THREADS: rados bench 16 KiB writes, MiB/s
    rados -c "$conf" bench -p blocks 5 write -b 16384 -t "$1" 2>/dev/null |
        sed -n 's/^Average IOPS: *\([0-9]*\).*/\1/p' |
        python3 -c 'import sys; print("%.1f" % (int(sys.stdin.read().strip()) * 16384 / 1048576))'
}
say "rados bench write -b 16384, 5 s, -t 32 and -t 1"
fig[bench.32]=$(bench 32)
fig[bench.1]=$(bench 1)

measure local
measure pool --blocks rados:blocks --ceph-conf "$conf"
say "pool-2: the same data on a second store of the pool"
mountstore pool-2 --blocks rados:blocks --ceph-conf "$conf"
fig[pool-2.seq]=$(dd_rate if="$shm/data" of="$work/mnt-pool-2/seq" bs=1M conv=fdatasync)
umountstore pool-2
say "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

pct() { python3 -c 'import sys; print("%d" % round(100 * float(sys.argv[1]) / float(sys.argv[2])))' "$1" "$2"; }
printf '%s, %s MiB, 16 KiB blocks, load %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" "$size_mb" \
    "$(cut -d' ' -f1 /proc/loadavg)"
printf '%-40s %10s %10s\n' "MiB/s" local pool
for k in seq again randwrite cold warm randread pool; do
    case $k in
    seq) label="seq write, unique" ;;
    again) label="seq write, data the store holds" ;;
    randwrite) label="rand write 16 KiB x4, fsync at end" ;;
    cold) label="seq read, cold (pool: local cache)" ;;
    warm) label="seq read, warm (pool: local cache)" ;;
    randread) label="rand read 16 KiB x4 direct, cold" ;;
    pool) label="seq read, cold (pool: from the pool)" ;;
    esac
    printf '%-40s %10s %10s\n' "$label" "${fig[local.$k]}" "${fig[pool.$k]}"
done
printf '%-40s %10s %10s\n' "seq write, data another store holds" "" "${fig[pool-2.seq]}"
printf '%-40s %10s %10s\n' "rados bench write 16 KiB, -t 32" "" "${fig[bench.32]}"
printf '%-40s %10s %10s\n' "rados bench write 16 KiB, -t 1" "" "${fig[bench.1]}"
echo
printf 'target: unique seq write / rados bench -t 32       %4s %% (>= 50)\n' "$(pct "${fig[pool.seq]}" "${fig[bench.32]}")"
printf 'target: data the store holds, pool / local         %4s %% (>= 80)\n' "$(pct "${fig[pool.again]}" "${fig[local.again]}")"
printf '        data another store holds / local (same)    %4s %%\n' "$(pct "${fig[pool-2.seq]}" "${fig[local.again]}")"
printf 'target: read from the cache, pool warm / local     %4s %% (>= 80)\n' "$(pct "${fig[pool.warm]}" "${fig[local.warm]}")"
printf 'target: read from the cache, pool cold / local     %4s %% (>= 80)\n' "$(pct "${fig[pool.cold]}" "${fig[local.cold]}")"
printf '        read from the pool / local cold            %4s %%\n' "$(pct "${fig[pool.pool]}" "${fig[local.cold]}")"
