#!/usr/bin/env bash
# sync-bench.sh — what VM guests do to a datastore: fsync'd small writes, several writers at once,
# O_DIRECT queues (qemu cache=none), through dedupfs, beside the plain disk, bindfs (a FUSE
# filesystem that passes everything to the disk), libfuse's own low-level passthrough example in C
# (passthrough_ll, built from the copy Debian's libfuse3-dev ships: a FUSE filesystem that does
# nothing but forward each request to the disk; not the O_DIRECT jobs, whose unaligned buffers it
# passes on to an O_DIRECT file: EINVAL) and dedupfs's do-nothing mount
# (benchmarks/nullfs), all in one run, and the ratios to the disk, to bindfs and to passthrough_ll.
#
# Usage (as root: it mounts, drops the page cache and installs bindfs, and for passthrough_ll gcc
# and libfuse3-dev, when missing):
#     benchmarks/sync-bench.sh [RUNS]        # RUNS rounds over every target (default 1)
# after `mvn -q -B -DskipTests package -pl engine,fs,benchmarks -am`. With RUNS > 1 each figure is
# the median, with the lowest and highest beside it.
#
# The fio jobs (4 KiB jobs on 256 MiB files, one per job, laid out with unique data first; every
# job refill_buffers, so dedupfs never sees data it already holds; time-based):
#     fsync1      4 KiB random write, psync, fsync after each write, 1 job            IOPS
#     fsync4      the same, 4 jobs                                                   IOPS
#     direct64    4 KiB random write, O_DIRECT, psync, fsync every 64 writes, 4 jobs   IOPS
#     seq16       1 MiB sequential write, O_DIRECT, libaio, queue depth 16, 1 job     MiB/s (and p99)
#     rand32      4 KiB random write, O_DIRECT, libaio, queue depth 32, 1 job         IOPS
#     read32      4 KiB random read, O_DIRECT, libaio, queue depth 32, 1 job          IOPS
#     buffered    1 MiB sequential write, buffered, the final fsync timed, 1 job      MiB/s
# and, only when named in DEDUPFS_BENCH_JOBS,
#     vm4         fsync4 on 2 GiB files, one a job (images the size of a small VM's     IOPS
#                 disk, 8 GiB laid out first), so that few writes meet a block
#                 written since the last commit
# and, on dedupfs only, fsync1 again after 4 GiB of other unique data went into the store
# (fsync1-4g: an fsync must not cost more in a larger store); on the disk only, with fsync1,
#     logwrite    8 KiB sequential write, O_DIRECT and O_DSYNC, psync, 1 job, into a    IOPS
#                 written file: the intent log's write for one fsync'd 4 KiB write
# from which, with the do-nothing mount's fsync1, the summary works out what one job of fsync'd
# writes gets through a FUSE filesystem whose fsync costs that one write after the round trips:
# 1 / (1/logwrite + 1/nullfs's fsync1), and how near bindfs and dedupfs came to it (fio's own
# time a write is counted in both figures, so a filesystem may pass it by a few per cent).
# Between targets the machine settles: what the last one wrote is synced and the page cache
# dropped.
#
# Settings (environment):
#     DEDUPFS_BENCH_DIR      where the stores, mountpoints and the disk directory go (default
#                            /var/tmp; not a tmpfs)
#     DEDUPFS_BENCH_RUNTIME  seconds per job after the ramp (default 6)
#     DEDUPFS_BENCH_RAMP     seconds of each job not counted (default 5: a daemon just
#                            mounted runs its first seconds of small writes at half speed
#                            while the JVM compiles them; every target gets the same ramp)
#     DEDUPFS_BENCH_TARGETS  which targets (default: disk bindfs passthrough dedupfs nullfs);
#                            dedupfs and nullfs take requests through FUSE over io_uring where the
#                            kernel offers it (their default; Linux 6.14 or later), else through
#                            /dev/fuse, and say which; also dedupfs-devfuse and nullfs-devfuse: the
#                            same mounts with --no-io-uring, whose ratios to them the summary
#                            prints (dedupfs-uring and nullfs-uring: with --io-uring, as before
#                            it was the default)
#     DEDUPFS_BENCH_FILL_GB  GiB written before fsync1-4g (default 4; 0 skips it)
#     DEDUPFS_BENCH_JOBS     which jobs (default: the seven listed before vm4, in that order)
#     DEDUPFS_BENCH_LOG_SIZE dedupfs create --log-size for the store (default 1G, as
#                            scripts/setup.sh makes its store)
#     DEDUPFS_BENCH_INTENT_LOG_DIR  a directory on another device for the store's intent log
#                            (dedupfs create --intent-log DIR/sync-bench-intent.log; default:
#                            in the store, on the disk measured)
# About 10 minutes per round on 2 cores (vm4 adds about 4: bindfs lays out its 8 GiB slowly).
# Results: the table on stdout, the raw figures in benchmarks/target/results/sync-bench-DATE.tsv.
set -euo pipefail

here=$(cd "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")" && pwd)
root=$(dirname -- "$here")
runs=${1:-1}
base=${DEDUPFS_BENCH_DIR:-/var/tmp}
runtime=${DEDUPFS_BENCH_RUNTIME:-6}
ramp=${DEDUPFS_BENCH_RAMP:-5}
targets=${DEDUPFS_BENCH_TARGETS:-disk bindfs passthrough dedupfs nullfs}
fill_gb=${DEDUPFS_BENCH_FILL_GB:-4}
log_size=${DEDUPFS_BENCH_LOG_SIZE:-1G}
jobs=${DEDUPFS_BENCH_JOBS:-fsync1 fsync4 direct64 seq16 rand32 read32 buffered}
intent_log_dir=${DEDUPFS_BENCH_INTENT_LOG_DIR:-}
intent_log_where="" # the directory and its device, for the summary

say() { printf 'sync-bench: %s\n' "$*" >&2; }
die() {
    say "$*"
    exit 1
}

[[ $EUID -eq 0 ]] || die "run as root (it mounts FUSE filesystems and drops the page cache)"
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number, not '$runs'"
command -v bindfs >/dev/null || apt-get install -y bindfs >/dev/null || die "cannot install bindfs"
for tool in fio python3 findmnt; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/deps.sh installs it)"
done
fstype=$(findmnt -n -o FSTYPE --target "$base" 2>/dev/null || stat -f -c %T "$base")
[[ "$fstype" != tmpfs && "$fstype" != ramfs ]] || die "DEDUPFS_BENCH_DIR=$base is on $fstype; point it at a disk"
if [[ -n "$intent_log_dir" ]]; then
    [[ -d "$intent_log_dir" ]] || die "DEDUPFS_BENCH_INTENT_LOG_DIR=$intent_log_dir is not a directory"
    intent_log_dir=$(readlink -f -- "$intent_log_dir")
    intent_log_where="$intent_log_dir ($(findmnt -n -o SOURCE,FSTYPE --target "$intent_log_dir"))"
    say "dedupfs's intent log in $intent_log_where"
fi
for j in "$root/fs/target/dedupfs.jar" "$root/benchmarks/target/benchmarks.jar"; do
    [[ -f "$j" ]] || die "$j not found: run mvn -q -B -DskipTests package -pl engine,fs,benchmarks -am first"
done

work=$(mktemp -d "$base/dedupfs-sync-bench.XXXXXX")
mkdir -p "$root/benchmarks/target/results"
results=$root/benchmarks/target/results/sync-bench-$(date -u +%Y%m%d-%H%M%S).tsv
: >"$results"
mnt=""
daemon=""

cleanup() {
    set +e
    if [[ -n "$mnt" ]] && findmnt -rn --mountpoint "$mnt" >/dev/null 2>&1; then
        umount "$mnt" 2>/dev/null || umount -l "$mnt"
    fi
    if [[ -n "$daemon" ]] && kill -0 "$daemon" 2>/dev/null; then
        kill "$daemon"
        wait "$daemon" 2>/dev/null
    fi
    rm -rf -- "$work"
    [[ -z "$intent_log_dir" ]] || rm -f -- "$intent_log_dir/sync-bench-intent.log"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Private copies of the jars: a rebuild during the run cannot change the daemons.
cp -- "$root/fs/target/dedupfs.jar" "$work/dedupfs.jar"
cp -- "$root/benchmarks/target/benchmarks.jar" "$work/benchmarks.jar"
export DEDUPFS_JAR=$work/dedupfs.jar DEDUPFS_BENCH_JAR=$work/benchmarks.jar
dedupfs=$root/mount-scripts/dedupfs
if [[ " $targets " == *" passthrough "* ]]; then
    passthrough_src=/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c
    [[ -f $passthrough_src ]] && command -v gcc >/dev/null && command -v pkg-config >/dev/null ||
        apt-get install -y gcc pkg-config libfuse3-dev >/dev/null ||
        die "cannot install gcc, pkg-config and libfuse3-dev for the passthrough target"
    # shellcheck disable=SC2046 # pkg-config's flags are words
    gcc -O2 -o "$work/passthrough_ll" "$passthrough_src" $(pkg-config fuse3 --cflags --libs) \
        2>"$work/gcc.err" || die "cannot build $passthrough_src: $(tail -n 5 "$work/gcc.err")"
fi

wait_mounted() { # MNT PID LOG
    local i
    for ((i = 0; i < 600; i++)); do
        findmnt -rn --mountpoint "$1" >/dev/null 2>&1 && return
        kill -0 "$2" 2>/dev/null || die "the daemon for $1 exited: $(tail -n 5 "$3")"
        sleep 0.1
    done
    die "$1 was not mounted in 60 s"
}

uring_option() { # TARGET: --io-uring for the -uring targets, --no-io-uring for the -devfuse ones
    case "$1" in
        *-uring) echo --io-uring ;;
        *-devfuse) echo --no-io-uring ;;
    esac
}

say_transport() { # LOG...: which way the mount just made takes its requests (its rings start at INIT)
    local i
    for ((i = 0; i < 20; i++)); do
        grep -q -s "FUSE over io_uring: " "$@" && { say "  requests through io_uring"; return; }
        sleep 0.1
    done
    say "  requests through /dev/fuse"
}

mount_target() { # TARGET -> sets $mnt, the directory to measure in
    local target=$1
    mnt=$work/mnt-$target
    mkdir -p "$mnt"
    case "$target" in
        disk) mnt="" ;;
        bindfs)
            mkdir -p "$work/bindfs-under"
            bindfs "$work/bindfs-under" "$mnt"
            ;;
        passthrough)
            mkdir -p "$work/passthrough-under"
            "$work/passthrough_ll" -f -o source="$work/passthrough-under" "$mnt" \
                >"$work/passthrough.log" 2>&1 &
            daemon=$!
            wait_mounted "$mnt" "$daemon" "$work/passthrough.log"
            ;;
        dedupfs | dedupfs-uring | dedupfs-devfuse)
            "$dedupfs" create --log-size "$log_size" \
                ${intent_log_dir:+--intent-log "$intent_log_dir/sync-bench-intent.log"} \
                "$work/store" >/dev/null
            "$dedupfs" mount $(uring_option "$target") --log "$work/dedupfs.log" "$work/store" "$mnt" \
                >/dev/null 2>"$work/mount.err" || die "cannot mount dedupfs: $(tail -n 5 "$work/mount.err")"
            say_transport "$work/dedupfs.log"
            ;;
        nullfs | nullfs-uring | nullfs-devfuse)
            "$here/nullfs" -f $(uring_option "$target") "$mnt" >"$work/nullfs.log" 2>&1 &
            daemon=$!
            wait_mounted "$mnt" "$daemon" "$work/nullfs.log"
            say_transport "$work/nullfs.log"
            ;;
        *) die "unknown target $target" ;;
    esac
}

unmount_target() { # TARGET
    case "$1" in
        disk) ;;
        dedupfs | dedupfs-uring | dedupfs-devfuse)
            "$dedupfs" umount "$mnt" >/dev/null
            [[ -z "$intent_log_dir" ]] || rm -f -- "$intent_log_dir/sync-bench-intent.log"
            ;;
        *)
            umount "$mnt"
            if [[ -n "$daemon" ]]; then
                wait "$daemon" || true
                daemon=""
            fi
            ;;
    esac
    mnt=""
    rm -rf -- "$work/store" "$work/bindfs-under" "$work/passthrough-under" "$work/mnt-$1" "$work/disk"
    # What a target left dirty is written back and the page cache emptied, so that the next target
    # neither shares the disk with that writeback nor faults its memory in against a full cache.
    sync
    echo 3 >/proc/sys/vm/drop_caches
}

# fio_job DIR JOB: runs one job, prints "figure p99_ms" (IOPS or MiB/s).
fio_job() {
    local dir=$1 job=$2 json=$work/fio.json
    local common=(--directory="$dir" --refill_buffers=1 --randrepeat=0 --norandommap
        --group_reporting --output-format=json --output="$json")
    local timed=(--filename_format='f.$jobnum' --size=256M --time_based --runtime="$runtime" --ramp_time="$ramp")
    local opts unit=iops
    case "$job" in
        fsync1) opts=("${timed[@]}" --rw=randwrite --bs=4k --ioengine=psync --fsync=1 --numjobs=1) ;;
        logwrite) opts=("${timed[@]}" --filename_format=log --rw=write --bs=8k --ioengine=psync --direct=1 --sync=dsync --numjobs=1) ;;
        fsync4 | vm4) # vm4: the same on 2 GiB files (the later option wins)
            opts=("${timed[@]}" --rw=randwrite --bs=4k --ioengine=psync --fsync=1 --numjobs=4)
            [[ $job == vm4 ]] && opts+=(--filename_format='vm.$jobnum' --size=2G) ;;
        direct64) opts=("${timed[@]}" --rw=randwrite --bs=4k --ioengine=psync --direct=1 --fsync=64 --numjobs=4) ;;
        seq16) opts=("${timed[@]}" --rw=write --bs=1M --ioengine=libaio --direct=1 --iodepth=16 --numjobs=1) unit=mib ;;
        rand32) opts=("${timed[@]}" --rw=randwrite --bs=4k --ioengine=libaio --direct=1 --iodepth=32 --numjobs=1) ;;
        read32) opts=("${timed[@]}" --rw=randread --bs=4k --ioengine=libaio --direct=1 --iodepth=32 --numjobs=1) ;;
        buffered) opts=(--filename_format='b.$jobnum' --size=1G --rw=write --bs=1M --ioengine=psync --end_fsync=1 --numjobs=1) unit=mib ;;
        *) die "unknown job $job" ;;
    esac
    [[ $job == read32 ]] && { sync; echo 3 >/proc/sys/vm/drop_caches; }
    fio --name="$job" "${common[@]}" "${opts[@]}" >/dev/null 2>"$work/fio.err" ||
        die "fio $job in $dir failed: $(tail -n 5 "$work/fio.err")"
    python3 - "$json" "$unit" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
job = json.loads(text[text.index("{"):])["jobs"][0]
if job["error"]:
    sys.exit(f"fio job error {job['error']}")
side = job["read"] if job["read"]["io_bytes"] > 0 else job["write"]
figure = side["iops"] if sys.argv[2] == "iops" else side["bw_bytes"] / 2**20
p99 = side["clat_ns"]["percentile"].get("99.000000", 0) / 1e6
print(f"{figure:.0f} {p99:.2f}")
PY
}

# lay_out DIR [PREFIX SIZE]: the files of the 4 KiB jobs (f.0-f.3, 256 MiB), with unique data,
# durable.
lay_out() {
    fio --name=layout --directory="$1" --filename_format="${2:-f}."'$jobnum' --size="${3:-256M}" \
        --rw=write --bs=1M --numjobs=4 --refill_buffers=1 --end_fsync=1 --output="$work/layout.txt" \
        >/dev/null || die "fio could not lay out its files in $1"
}

# measure DIR JOB: runs one job on the current target and round ($target, $run) and records it.
measure() {
    local figure p99
    read -r figure p99 < <(fio_job "$1" "$2")
    printf '%s\t%s\t%s\t%s\t%s\n' "$run" "$target" "$2" "$figure" "$p99" >>"$results"
    say "  $2: $figure (p99 $p99 ms)"
}

for ((run = 1; run <= runs; run++)); do
    for target in $targets; do
        say "round $run: $target"
        mount_target "$target"
        dir=${mnt:-$work/disk}
        mkdir -p "$dir"
        lay_out "$dir"
        if [[ $target == disk && " $jobs " == *" fsync1 "* ]]; then
            dd if=/dev/zero of="$dir/log" bs=1M count=256 conv=fsync status=none
            measure "$dir" logwrite
            rm -f -- "$dir/log"
        fi
        for job in $jobs; do
            if [[ $target == passthrough && $job =~ ^(direct64|seq16|rand32|read32)$ ]]; then
                continue # passthrough_ll opens the disk's file O_DIRECT and writes unaligned buffers
            fi
            [[ $job == vm4 ]] && lay_out "$dir" vm 2G
            measure "$dir" "$job"
            [[ $job == buffered ]] && rm -f -- "$dir"/b.*
            [[ $job == vm4 ]] && rm -f -- "$dir"/vm.*
        done
        if [[ $target == dedupfs* && $fill_gb -gt 0 ]]; then
            say "  filling the store with $fill_gb GiB of other data"
            fio --name=fill --directory="$dir" --filename_format='fill.$jobnum' --size="${fill_gb}G" \
                --rw=write --bs=1M --numjobs=1 --refill_buffers=1 --end_fsync=1 \
                --output="$work/fill.txt" >/dev/null || die "fio could not fill the store"
            lay_out "$dir"
            read -r figure p99 < <(fio_job "$dir" fsync1)
            printf '%s\t%s\t%s\t%s\t%s\n' "$run" "$target" "fsync1-4g" "$figure" "$p99" >>"$results"
            say "  fsync1 after $fill_gb GiB: $figure (p99 $p99 ms)"
        fi
        unmount_target "$target"
    done
done

python3 - "$results" "$targets" "$intent_log_where" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(list)
p99s = collections.defaultdict(list)
for line in open(sys.argv[1]):
    run, target, job, figure, p99 = line.split("\t")
    rows[(target, job)].append(float(figure))
    p99s[(target, job)].append(float(p99))
targets = sys.argv[2].split()
log_elsewhere = sys.argv[3]
jobs = ["fsync1", "fsync4", "direct64", "seq16", "rand32", "read32", "buffered", "vm4", "fsync1-4g",
        "logwrite"]
names = {
    "fsync1": "4K randwrite, fsync each, 1 job (IOPS)",
    "fsync4": "4K randwrite, fsync each, 4 jobs (IOPS)",
    "direct64": "4K randwrite O_DIRECT, fsync/64, 4 jobs (IOPS)",
    "seq16": "1M seq write O_DIRECT, libaio qd16 (MiB/s)",
    "rand32": "4K randwrite O_DIRECT, libaio qd32 (IOPS)",
    "read32": "4K randread O_DIRECT, libaio qd32 (IOPS)",
    "buffered": "1M seq write buffered + fsync (MiB/s)",
    "vm4": "4K randwrite, fsync each, 4 jobs on 2 GiB files (IOPS)",
    "fsync1-4g": "fsync1 on a store holding 4 GiB more (IOPS)",
    "logwrite": "8K seq write O_DIRECT+O_DSYNC, 1 job: the log's write (IOPS)",
}
def cell(t, j):
    v = rows.get((t, j))
    if not v:
        return "", None
    m = statistics.median(v)
    text = f"{m:,.0f}" + (f" ({min(v):,.0f}-{max(v):,.0f})" if len(v) > 1 else "")
    return text, m
refs = [t for t in ("disk", "bindfs", "passthrough") if t in targets]
head = ["job"] + targets + [f"dedupfs/{r}" for r in refs] + ["dedupfs p99 ms"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for j in jobs:
    cells, med = [], {}
    for t in targets:
        text, m = cell(t, j)
        cells.append(text)
        med[t] = m
    if all(c == "" for c in cells):
        continue
    d = med.get("dedupfs")
    ref = "fsync1" if j == "fsync1-4g" else j
    ratio = lambda a, b: f"{a / b:.0%}" if a and b else ""
    ratios = [ratio(d, statistics.median(rows[(r, ref)])) if (r, ref) in rows else "" for r in refs]
    p = p99s.get(("dedupfs", j))
    print("| " + " | ".join([names[j]] + cells + ratios +
        [f"{statistics.median(p):.2f}" if p else ""]) + " |")
median = lambda t, j: statistics.median(rows[(t, j)])
if ("dedupfs", "fsync1-4g") in rows and ("dedupfs", "fsync1") in rows:
    a, b = median("dedupfs", "fsync1-4g"), median("dedupfs", "fsync1")
    print(f"\nfsync1 on the filled store / on the fresh store: {a / b:.0%}")
if ("disk", "logwrite") in rows and ("nullfs", "fsync1") in rows:
    lw, rt = median("disk", "logwrite"), median("nullfs", "fsync1")
    model = 1 / (1 / lw + 1 / rt)
    line = ("\none job of fsync'd writes at the do-nothing mount's round trips plus the log's"
            f" write, one after the other: 1 / (1/{lw:,.0f} + 1/{rt:,.0f}) = {model:,.0f} a second")
    if ("disk", "fsync1") in rows:
        line += f", {model / median('disk', 'fsync1'):.0%} of the disk"
    # dedupfs's log elsewhere costs no write on the disk: the line is not its ceiling then
    reached = [f"{t} {median(t, 'fsync1') / model:.0%}"
               for t in ("bindfs", "passthrough", "dedupfs") if (t, "fsync1") in rows
               and not (t == "dedupfs" and log_elsewhere)]
    if reached:
        line += "; of that, " + ", ".join(reached)
    print(line)
per_job = lambda a, b: [f"{j} {median(a, j) / median(b, j):.0%}" for j in jobs
                        if (a, j) in rows and (b, j) in rows]
pairs = per_job("passthrough", "disk")
if pairs:
    print("\nlibfuse's passthrough_ll (forwarding each request to the disk) / the disk: "
          + ", ".join(pairs))
for t in ("dedupfs", "nullfs"):
    for a, b in ((t + "-uring", t), (t, t + "-devfuse")):
        pairs = per_job(a, b)
        if pairs:
            print(f"\n{a} / {b}: " + ", ".join(pairs))
if log_elsewhere:
    print(f"\ndedupfs's intent log was on {log_elsewhere}, not on the disk measured")
print(f"\nraw figures: {sys.argv[1]}")
PY
