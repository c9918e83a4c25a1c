#!/usr/bin/env bash
# hot-fsync.sh — guests that flush after every write and keep rewriting the same blocks (a
# database, a guest's journal): four fio jobs, each on its own 1 GiB file laid out with unique
# data, 4 KiB random writes over a hot set (zipf 1.2), fsync after each, rate-limited to 400 a
# second each, for a while; on the plain disk, bindfs and dedupfs in one run. Prints the fsyncs'
# latency (median, p99, mean) and what the disk was given to write meanwhile (its own count, from
# /proc/diskstats: every layer's writes, the intent log's and the commits' included), per byte the
# guests wrote.
#
# Usage (as root: it mounts and installs bindfs when missing):
#     benchmarks/hot-fsync.sh [RUNS]        # RUNS rounds over every target (default 1)
# after `mvn -q -B -DskipTests package -pl engine,fs -am`. With RUNS > 1 each figure is the
# median, with the lowest and highest beside it.
#
# Settings (environment):
#     DEDUPFS_BENCH_DIR      where the stores, mountpoints and the disk directory go (default
#                            /var/tmp; not a tmpfs)
#     DEDUPFS_BENCH_RUNTIME  seconds of writing (default 75: longer than the minute after which
#                            dedupfs commits a file kept busy)
#     DEDUPFS_BENCH_TARGETS  which targets (default: disk bindfs dedupfs)
#     DEDUPFS_BENCH_LOG_SIZE dedupfs create --log-size for the store (default 1G, as
#                            scripts/setup.sh makes its store)
# About 7 minutes per round. Results: the table on stdout, the raw figures in
# benchmarks/target/results/hot-fsync-DATE.tsv.
set -euo pipefail

here=$(cd "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")" && pwd)
root=$(dirname -- "$here")
runs=${1:-1}
base=${DEDUPFS_BENCH_DIR:-/var/tmp}
runtime=${DEDUPFS_BENCH_RUNTIME:-75}
targets=${DEDUPFS_BENCH_TARGETS:-disk bindfs dedupfs}
log_size=${DEDUPFS_BENCH_LOG_SIZE:-1G}

say() { printf 'hot-fsync: %s\n' "$*" >&2; }
die() {
    say "$*"
    exit 1
}

[[ $EUID -eq 0 ]] || die "run as root (it mounts FUSE filesystems)"
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number, not '$runs'"
[[ $runtime =~ ^[1-9][0-9]*$ ]] || die "DEDUPFS_BENCH_RUNTIME must be a positive number of seconds"
if [[ " $targets " == *" bindfs "* ]]; then
    command -v bindfs >/dev/null || apt-get install -y bindfs >/dev/null || die "cannot install bindfs"
fi
for tool in fio python3 findmnt; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/deps.sh installs it)"
done
fstype=$(findmnt -n -o FSTYPE --target "$base" 2>/dev/null || stat -f -c %T "$base")
[[ "$fstype" != tmpfs && "$fstype" != ramfs ]] || die "DEDUPFS_BENCH_DIR=$base is on $fstype; point it at a disk"
device=$(basename -- "$(findmnt -n -o SOURCE --target "$base")")
grep -q " $device " /proc/diskstats || die "cannot find $device (the disk under $base) in /proc/diskstats"
[[ -f "$root/fs/target/dedupfs.jar" ]] ||
    die "$root/fs/target/dedupfs.jar not found: run mvn -q -B -DskipTests package -pl engine,fs -am first"

work=$(mktemp -d "$base/dedupfs-hot-fsync.XXXXXX")
mkdir -p "$root/benchmarks/target/results"
results=$root/benchmarks/target/results/hot-fsync-$(date -u +%Y%m%d-%H%M%S).tsv
: >"$results"
mnt=""

cleanup() {
    set +e
    if [[ -n "$mnt" ]] && findmnt -rn --mountpoint "$mnt" >/dev/null 2>&1; then
        umount "$mnt" 2>/dev/null || umount -l "$mnt"
    fi
    rm -rf -- "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A private copy of the jar: a rebuild during the run cannot change the daemon.
cp -- "$root/fs/target/dedupfs.jar" "$work/dedupfs.jar"
export DEDUPFS_JAR=$work/dedupfs.jar
dedupfs=$root/mount-scripts/dedupfs

mount_target() { # TARGET -> sets $mnt ("" for the disk itself)
    mnt=$work/mnt-$1
    mkdir -p "$mnt"
    case "$1" in
        disk) mnt="" ;;
        bindfs)
            mkdir -p "$work/bindfs-under"
            bindfs "$work/bindfs-under" "$mnt"
            ;;
        dedupfs)
            "$dedupfs" create --log-size "$log_size" "$work/store" >/dev/null
            "$dedupfs" mount --log "$work/dedupfs.log" "$work/store" "$mnt" >/dev/null
            ;;
        *) die "unknown target $1" ;;
    esac
}

unmount_target() { # TARGET
    case "$1" in
        disk) ;;
        dedupfs) "$dedupfs" umount "$mnt" >/dev/null ;;
        *) umount "$mnt" ;;
    esac
    mnt=""
    rm -rf -- "$work/store" "$work/bindfs-under" "$work/mnt-$1" "$work/disk"
    sync
}

sectors_written() { awk -v d="$device" '$3 == d { print $10 }' /proc/diskstats; }

for ((run = 1; run <= runs; run++)); do
    for target in $targets; do
        say "round $run: $target"
        mount_target "$target"
        dir=${mnt:-$work/disk}
        mkdir -p "$dir"
        fio --name=layout --directory="$dir" --filename_format='f.$jobnum' --size=1G --rw=write \
            --bs=1M --numjobs=4 --refill_buffers=1 --end_fsync=1 --output="$work/layout.txt" \
            >/dev/null || die "fio could not lay out its files in $dir"
        sync
        sleep 8 # what the layout left to the background (commits, reclaim) is done
        before=$(sectors_written)
        fio --name=hot --directory="$dir" --filename_format='f.$jobnum' --size=1G --rw=randwrite \
            --bs=4k --ioengine=psync --fsync=1 --numjobs=4 --rate_iops=400 \
            --random_distribution=zipf:1.2 --refill_buffers=1 --randrepeat=0 --norandommap \
            --time_based --runtime="$runtime" --group_reporting --output-format=json \
            --output="$work/hot.json" >/dev/null 2>"$work/fio.err" ||
            die "fio in $dir failed: $(tail -n 5 "$work/fio.err")"
        after=$(sectors_written)
        python3 - "$work/hot.json" "$((after - before))" "$run" "$target" >>"$results" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
job = json.loads(text[text.index("{"):])["jobs"][0]
if job["error"]:
    sys.exit(f"fio job error {job['error']}")
sync, wrote = job["sync"]["lat_ns"], job["write"]["io_bytes"]
disk = int(sys.argv[2]) * 512
print(sys.argv[3], sys.argv[4], round(sync["percentile"]["50.000000"] / 1e3),
      round(sync["percentile"]["99.000000"] / 1e3), round(sync["mean"] / 1e3),
      round(disk / 2**20), f"{disk / wrote:.1f}", sep="\t")
PY
        unmount_target "$target"
    done
done

python3 - "$results" "$targets" "$runtime" <<'PY'
import statistics, sys
rows = [line.split("\t") for line in open(sys.argv[1]).read().splitlines()]
targets = sys.argv[2].split()
names = ["fsync p50 us", "fsync p99 us", "fsync mean us", "disk wrote MiB", "disk bytes per byte written"]
def cell(values):
    values = sorted(float(v) for v in values)
    med = statistics.median(values)
    fmt = (lambda v: f"{v:.1f}") if any(v != int(v) for v in values) else (lambda v: f"{v:,.0f}")
    return fmt(med) if len(values) == 1 else f"{fmt(med)} ({fmt(values[0])}-{fmt(values[-1])})"
print(f"4 jobs, 4 KiB random writes over a hot set (zipf 1.2), fsync each, 400/s each, {sys.argv[3]} s")
print("| figure | " + " | ".join(targets) + " |")
print("|---" * (len(targets) + 1) + "|")
for i, name in enumerate(names):
    cells = [cell([r[2 + i] for r in rows if r[1] == t]) for t in targets]
    print(f"| {name} | " + " | ".join(cells) + " |")
PY
