#!/usr/bin/env bash
# fuse-bench.sh — dd and fio through a dedupfs mount, beside a do-nothing FUSE filesystem on the
# same binding (`benchmarks/nullfs`) and beside the plain disk, in one run on one machine, and the
# table of figures, ratios and the issue's targets:
#     sequential write of unique data  >= 40 % of the do-nothing mount
#     sequential read                  >= 60 %
#     random 4 KiB read and write IOPS >= 50 %
#
# Usage (as root: it mounts, and drops the page cache before every read):
#     benchmarks/fuse-bench.sh
# after `mvn -q -B -DskipTests package -pl engine,fs,benchmarks` (it uses private copies of
# fs/target/dedupfs.jar, or of $DEDUPFS_JAR, and of benchmarks/target/benchmarks.jar, or of
# $DEDUPFS_BENCH_JAR, so a rebuild during the run cannot break it).
#
# Targets measured, in this order, each on a fresh mount (and a fresh store):
#     disk        a directory on the disk that holds the stores ($DEDUPFS_BENCH_DIR)
#     nullfs      benchmarks/nullfs MNT                  (writes discarded, reads return zeros)
#     dedupfs     dedupfs mount STORE MNT
#     nullfs-wb   benchmarks/nullfs --writeback-cache MNT
#     dedupfs-wb  dedupfs mount --writeback-cache STORE MNT
# Each mount first gets the same unmeasured warm-up (256 MiB written and read back with dd, 3 s
# of fio random 4 KiB reads and writes on other files): the daemons are JVMs.
# Measures, on each:
#     seq write   dd bs=1M of a pre-generated random file (in /dev/shm; a different file for each
#                 of the two writes, so dedupfs never sees data it already has), conv=fdatasync;
#                 then the same with oflag=direct (conv=fdatasync too)
#     seq read    dd bs=1M of the first file, after `sync; echo 3 > /proc/sys/vm/drop_caches`
#     random      fio, 4 KiB, psync, numjobs 1 and 4 (one file per job, $DEDUPFS_BENCH_FIO_MB MiB
#                 each, written first with unique data by fio), time-based:
#                 randread with O_DIRECT (every read reaches the filesystem), after drop_caches;
#                 randwrite with O_DIRECT; randwrite buffered, with the final fsync in the time.
# dedupfs-wb is compared with nullfs-wb (same kernel caching), dedupfs with nullfs and disk.
#
# Settings (environment):
#     DEDUPFS_BENCH_DIR       where the stores, mountpoints and the disk directory go (default
#                             /var/tmp; must not be a tmpfs)
#     DEDUPFS_BENCH_SIZE_MB   size of each dd file (default 1024)
#     DEDUPFS_BENCH_FIO_MB    size of each fio file (default 256)
#     DEDUPFS_BENCH_RUNTIME   seconds per fio run, after 1 s of ramp (default 8)
#     DEDUPFS_BENCH_TARGETS   which targets, space-separated (default: all five)
#     DEDUPFS_JAVA_OPTS       JVM options of the daemons (see mount-scripts/dedupfs)
# A full run takes about 7-9 minutes on 2 cores (idle; longer when the machine is busy). Results: the table on stdout, also saved
# with the raw figures under benchmarks/target/results/.
# Exit status: 0 all targets met, 3 a target missed, anything else: the run failed.
set -euo pipefail

here=$(cd "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")" && pwd)
root=$(dirname -- "$here")
base=${DEDUPFS_BENCH_DIR:-/var/tmp}
size_mb=${DEDUPFS_BENCH_SIZE_MB:-1024}
fio_mb=${DEDUPFS_BENCH_FIO_MB:-256}
runtime=${DEDUPFS_BENCH_RUNTIME:-8}
targets=${DEDUPFS_BENCH_TARGETS:-disk nullfs dedupfs nullfs-wb dedupfs-wb}

log() { printf 'fuse-bench: %s\n' "$*" >&2; }
die() {
    log "$*"
    exit 1
}

[[ $EUID -eq 0 ]] || die "run as root (it mounts FUSE filesystems and drops the page cache)"
for tool in dd fio python3 findmnt; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/deps.sh installs it)"
done
fstype=$(findmnt -n -o FSTYPE --target "$base" 2>/dev/null || stat -f -c %T "$base")
[[ "$fstype" != tmpfs && "$fstype" != ramfs ]] || die "DEDUPFS_BENCH_DIR=$base is on $fstype; point it at a disk"
built_jar=${DEDUPFS_JAR:-$root/fs/target/dedupfs.jar}
built_bench_jar=${DEDUPFS_BENCH_JAR:-$root/benchmarks/target/benchmarks.jar}
for j in "$built_jar" "$built_bench_jar"; do
    [[ -f "$j" ]] || die "$j not found: run mvn -q -B -DskipTests package -pl engine,fs,benchmarks first"
done

work=$(mktemp -d "$base/dedupfs-fuse-bench.XXXXXX")
shm=$(mktemp -d /dev/shm/dedupfs-fuse-bench.XXXXXX)
results=$work/results.tsv
: >"$results"
current_mnt=""
current_kind=""
nullfs_pid=""

cleanup() {
    set +e
    if [[ -n "$current_mnt" ]] && findmnt -rn --mountpoint "$current_mnt" >/dev/null 2>&1; then
        if [[ "$current_kind" == dedupfs ]]; then
            "$root/mount-scripts/dedupfs" umount "$current_mnt" || umount -l "$current_mnt"
        else
            umount "$current_mnt" || umount -l "$current_mnt"
        fi
    fi
    if [[ -n "$nullfs_pid" ]] && kill -0 "$nullfs_pid" 2>/dev/null; then
        kill "$nullfs_pid"
        wait "$nullfs_pid" 2>/dev/null
    fi
    rm -rf -- "$shm" "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Private copies of the jars: the daemons load classes from them lazily.
# Taken whole: a build may be rewriting one right now (zip test, a few tries).
private_copy() { # BUILT COPY
    local attempt
    for attempt in 1 2 3 4 5 6; do
        cp -- "$1" "$2"
        if python3 -c 'import sys, zipfile; sys.exit(zipfile.ZipFile(sys.argv[1]).testzip() is not None)' \
            "$2" 2>/dev/null; then
            return
        fi
        ((attempt < 6)) || die "$1 is not a valid jar (a build in progress?)"
        sleep 5
    done
}
private_copy "$built_jar" "$work/dedupfs.jar"
private_copy "$built_bench_jar" "$work/benchmarks.jar"
export DEDUPFS_JAR=$work/dedupfs.jar DEDUPFS_BENCH_JAR=$work/benchmarks.jar
dedupfs=$root/mount-scripts/dedupfs
nullfs=$here/nullfs

drop_caches() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
}

# Unique data, fast: AES-CTR keystream (openssl), else the kernel's generator.
random_file() { # FILE MIB SEED
    if command -v openssl >/dev/null; then
        openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass "pass:dedupfs-bench-$3" </dev/zero 2>/dev/null |
            head -c "$(($2 << 20))" >"$1" || true
    else
        head -c "$(($2 << 20))" /dev/urandom >"$1"
    fi
    [[ $(stat -c %s "$1") -eq $(($2 << 20)) ]] || die "could not generate $1"
}

# measure TARGET METRIC COMMAND...: runs the command, which prints one figure, and records it.
measure() {
    local target=$1 metric=$2 value
    shift 2
    value=$("$@") || exit 1
    record "$target" "$metric" "$value"
}

record() { # TARGET METRIC VALUE
    printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$results"
    log "  $1 $2: $3"
}

# dd ... ; prints MB/s (10^6 bytes per second) from dd's own summary line.
dd_rate() {
    local line
    line=$(LC_ALL=C dd "$@" 2>&1 | tail -n 1)
    awk -v l="$line" 'BEGIN { n = split(l, f, " "); if (f[n-3] + 0 <= 0) exit 1; printf "%.0f\n", f[1] / f[n-3] / 1e6 }' ||
        die "dd $* failed: $line"
}

# fio_iops DIR RW JOBS DIRECT [more fio options]: prints the IOPS of the whole group.
fio_iops() {
    local dir=$1 rw=$2 jobs=$3 direct=$4 json
    shift 4
    json=$work/fio-$RANDOM.json
    fio --name=bench --directory="$dir" --filename_format='bench.$jobnum' --size="${fio_mb}M" \
        --rw="$rw" --bs=4k --ioengine=psync --direct="$direct" --numjobs="$jobs" --group_reporting \
        --time_based --runtime="$runtime" --ramp_time=1 --norandommap --randrepeat=0 --refill_buffers=1 \
        --output-format=json --output="$json" "$@" >/dev/null ||
        die "fio $rw numjobs=$jobs direct=$direct on $dir failed: $(cat "$json" 2>/dev/null | tail -n 5)"
    python3 - "$json" "$rw" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
doc = json.loads(text[text.index("{"):])  # fio may print notes before the JSON
job = doc["jobs"][0]
if job["error"]:
    sys.exit(f"fio job error {job['error']}")
print(round(job["read" if "read" in sys.argv[2] else "write"]["iops"]))
PY
}

mount_target() { # TARGET MNT
    local target=$1 mnt=$2
    mkdir -p "$mnt"
    current_mnt=$mnt
    case "$target" in
        disk)
            current_mnt=""
            ;;
        dedupfs | dedupfs-wb)
            current_kind=dedupfs
            local opts=()
            [[ "$target" == dedupfs-wb ]] && opts+=(--writeback-cache)
            local out
            out=$("$dedupfs" create "$work/$target-store" 2>&1) || die "dedupfs create failed: $out"
            out=$("$dedupfs" mount "${opts[@]}" --log "$work/$target.log" "$work/$target-store" "$mnt" 2>&1) ||
                die "dedupfs mount failed: $out"
            ;;
        nullfs | nullfs-wb)
            current_kind=nullfs
            local opts=()
            [[ "$target" == nullfs-wb ]] && opts+=(--writeback-cache)
            "$nullfs" -f "${opts[@]}" "$mnt" >"$work/$target.log" 2>&1 &
            nullfs_pid=$!
            local i
            for ((i = 0; i < 600; i++)); do
                findmnt -rn --mountpoint "$mnt" >/dev/null 2>&1 && break
                kill -0 "$nullfs_pid" 2>/dev/null || die "nullfs exited: $(cat "$work/$target.log")"
                sleep 0.1
            done
            findmnt -rn --mountpoint "$mnt" >/dev/null 2>&1 || die "nullfs did not mount in 60 s"
            ;;
        *) die "unknown target $target" ;;
    esac
}

unmount_target() { # TARGET MNT
    local target=$1 mnt=$2
    case "$target" in
        dedupfs | dedupfs-wb)
            "$dedupfs" umount "$mnt" >/dev/null || die "dedupfs umount $mnt failed"
            rm -rf -- "$work/$target-store"
            ;;
        nullfs | nullfs-wb)
            umount "$mnt" || die "umount $mnt failed"
            wait "$nullfs_pid" || log "nullfs exited with $?"
            nullfs_pid=""
            ;;
    esac
    current_mnt=""
    rm -rf -- "$mnt"
}

bench_target() { # TARGET
    local target=$1 dir=$work/$1
    log "$target: mounting"
    mount_target "$target" "$dir"
    # The same warm-up everywhere, not measured: the daemons are JVMs, and the first gigabyte
    # through a fresh one runs partly interpreted (a mount serving VMs runs warm). Its own data.
    log "$target: warm-up"
    dd if="$shm/warm" of="$dir/warm" bs=1M conv=fdatasync status=none
    drop_caches
    dd if="$dir/warm" of=/dev/null bs=1M status=none
    fio --name=warm --directory="$dir" --filename_format='warm.$jobnum' --size=64M --rw=randrw --bs=4k \
        --direct=1 --numjobs=2 --time_based --runtime=3 --refill_buffers=1 --output="$work/warm.txt" >/dev/null ||
        die "fio warm-up failed in $dir"
    log "$target: sequential (dd, ${size_mb} MiB)"
    drop_caches
    measure "$target" seq_write_fdatasync dd_rate if="$shm/src1" of="$dir/seq1" bs=1M conv=fdatasync
    drop_caches
    measure "$target" seq_write_direct dd_rate if="$shm/src2" of="$dir/seq2" bs=1M oflag=direct conv=fdatasync
    drop_caches
    measure "$target" seq_read dd_rate if="$dir/seq1" of=/dev/null bs=1M
    rm -f -- "$dir/seq1" "$dir/seq2"

    log "$target: random 4 KiB (fio, ${runtime} s each)"
    fio --name=bench --directory="$dir" --filename_format='bench.$jobnum' --size="${fio_mb}M" --rw=write \
        --bs=1M --numjobs=4 --refill_buffers=1 --end_fsync=1 --output="$work/prep.txt" >/dev/null ||
        die "fio could not write its files in $dir"
    local jobs
    for jobs in 1 4; do
        drop_caches
        measure "$target" "randread_direct_j$jobs" fio_iops "$dir" randread "$jobs" 1
    done
    for jobs in 1 4; do
        measure "$target" "randwrite_direct_j$jobs" fio_iops "$dir" randwrite "$jobs" 1
    done
    for jobs in 1 4; do
        measure "$target" "randwrite_buffered_j$jobs" fio_iops "$dir" randwrite "$jobs" 0 --end_fsync=1
    done
    unmount_target "$target" "$dir"
}

started=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "generating 2 x ${size_mb} MiB + 256 MiB of random data in $shm"
random_file "$shm/src1" "$size_mb" 1
random_file "$shm/src2" "$size_mb" 2
random_file "$shm/warm" 256 3
for t in $targets; do
    bench_target "$t"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
elapsed=$(($(date +%s) - started))

out_dir=$here/target/results
mkdir -p "$out_dir"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
report=$out_dir/fuse-$stamp.txt
cp -- "$results" "$out_dir/fuse-$stamp.tsv"
{
    echo "date:     $(date -u '+%Y-%m-%d %H:%M UTC'), $elapsed s"
    echo "machine:  $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, $(uname -sr), load $load_before before, $load_after after"
    echo "commit:   $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "disk:     $base ($fstype, $(findmnt -n -o SOURCE --target "$base" 2>/dev/null || echo '?'))"
    echo "settings: dd ${size_mb} MiB; fio 4 KiB psync, ${fio_mb} MiB per job, ${runtime} s + 1 s ramp"
    echo
    python3 - "$results" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    target, metric, value = line.rstrip("\n").split("\t")
    rows.setdefault(metric, {})[target] = float(value)

metrics = [
    ("seq_write_fdatasync", "seq write 1M, fdatasync (MB/s)", 0.40),
    ("seq_write_direct", "seq write 1M, O_DIRECT (MB/s)", 0.40),
    ("seq_read", "seq read 1M, cold cache (MB/s)", 0.60),
    ("randread_direct_j1", "rand read 4K O_DIRECT j1 (IOPS)", 0.50),
    ("randread_direct_j4", "rand read 4K O_DIRECT j4 (IOPS)", 0.50),
    ("randwrite_direct_j1", "rand write 4K O_DIRECT j1 (IOPS)", 0.50),
    ("randwrite_direct_j4", "rand write 4K O_DIRECT j4 (IOPS)", 0.50),
    ("randwrite_buffered_j1", "rand write 4K buffered j1 (IOPS)", 0.50),
    ("randwrite_buffered_j4", "rand write 4K buffered j4 (IOPS)", 0.50),
]

def fig(v):
    return "-" if v is None else f"{v:,.0f}"

def ratio(a, b):
    return None if a is None or not b else a / b

def pct(r):
    return "-" if r is None else f"{100 * r:.0f}%"

def verdict(r, target):
    return "" if r is None else ("ok" if r >= target else "MISSED")

head = (f"{'':34} {'disk':>9} {'nullfs':>9} {'dedupfs':>9} {'ded/null':>8} {'ded/disk':>8} {'target':>6} {'':6}"
        f" {'nullfs-wb':>9} {'dedupfs-wb':>10} {'wb/wb':>6} {'':6}")
print(head)
print("-" * len(head))
missed = 0
for key, label, target in metrics:
    r = rows.get(key, {})
    d, n, x, nw, xw = (r.get(t) for t in ("disk", "nullfs", "dedupfs", "nullfs-wb", "dedupfs-wb"))
    rn, rd, rw = ratio(x, n), ratio(x, d), ratio(xw, nw)
    v1, v2 = verdict(rn, target), verdict(rw, target)
    missed += (v1 == "MISSED") + (v2 == "MISSED")
    print(f"{label:34} {fig(d):>9} {fig(n):>9} {fig(x):>9} {pct(rn):>8} {pct(rd):>8} {'>=' + pct(target):>6} {v1:6}"
          f" {fig(nw):>9} {fig(xw):>10} {pct(rw):>6} {v2:6}")
print()
print("ded/null = dedupfs / nullfs, ded/disk = dedupfs / plain disk, wb/wb = dedupfs-wb / nullfs-wb;")
print("target = the issue's minimum share of the do-nothing mount (seq write 40 %, seq read 60 %, random 50 %).")
print(f"targets missed: {missed}")
sys.exit(3 if missed else 0)
PY
} | tee "$report" && status=0 || status=$?
log "report: $report"
exit "$status"
