#!/usr/bin/env bash
# clone-snapshot-bench.sh — how long a copy, a clone and a snapshot take against the file's size,
# on a real dedupfs mount, and what they add to the store. Not part of the test run.
#
# Usage (as root: it mounts):
#     benchmarks/clone-snapshot-bench.sh
# after `mvn -q -B -DskipTests package -pl engine,fs` (it runs a private copy of
# fs/target/dedupfs.jar, or of $DEDUPFS_JAR, so a rebuild meanwhile cannot break it).
#
# Images, each written once into one store (leaf size 16 KiB):
#     dense   1 MiB, 16 MiB, 256 MiB, 1 GiB, 4 GiB of unique data (every 4 KiB different), up to
#             $DEDUPFS_BENCH_DENSE_MAX_MB
#     sparse  1 MiB to 64 GiB logical: 1 MiB of unique data at 64 places spread over the file
#             (so at most 64 MiB of data whatever the size), the rest holes
# For each image, $DEDUPFS_BENCH_RUNS times (the table shows the median, and the slowest run):
#     cp             `cp IMG COPY` (coreutils; copy_file_range, shared subtrees), the whole process
#     ioctl          dedupfs's clone ioctl (0x40204401) from one python process, timed around the
#                    ioctl call alone
#     dedupfs clone  `dedupfs clone IMG COPY`, the whole command (a JVM start included)
#     snapshot       `dedupfs snapshot create NAME IMG`, the whole command (a JVM start included)
# and, with each image, the floor of the two commands: `dedupfs snapshot list` (a JVM start and
# one request on the control socket, no work). "stored +" is what the runs added to the store's stored bytes
# (user.dedupfs.stored of the mountpoint: every distinct block once), for all four columns' runs.
#
# Settings (environment):
#     DEDUPFS_BENCH_DIR            where the store and the mountpoint go (default /var/tmp; not a tmpfs)
#     DEDUPFS_BENCH_DENSE_MAX_MB   largest dense image (default 4096)
#     DEDUPFS_BENCH_SPARSE_MAX_GB  largest sparse image (default 64)
#     DEDUPFS_BENCH_RUNS           runs per figure (default 5)
# Takes about 3 minutes on 2 cores (writing the dense images is most of it). Results: the table on
# stdout, also saved under benchmarks/target/results/.
set -euo pipefail

here=$(cd "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")" && pwd)
root=$(dirname -- "$here")
base=${DEDUPFS_BENCH_DIR:-/var/tmp}
dense_max_mb=${DEDUPFS_BENCH_DENSE_MAX_MB:-4096}
sparse_max_gb=${DEDUPFS_BENCH_SPARSE_MAX_GB:-64}
runs=${DEDUPFS_BENCH_RUNS:-5}

log() { printf 'clone-snapshot-bench: %s\n' "$*" >&2; }
die() {
    log "$*"
    exit 1
}

[[ $EUID -eq 0 ]] || die "run as root (it mounts a FUSE filesystem)"
for tool in cp python3 findmnt getfattr; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/deps.sh installs it)"
done
fstype=$(findmnt -n -o FSTYPE --target "$base" 2>/dev/null || stat -f -c %T "$base")
[[ "$fstype" != tmpfs && "$fstype" != ramfs ]] || die "DEDUPFS_BENCH_DIR=$base is on $fstype; point it at a disk"
built_jar=${DEDUPFS_JAR:-$root/fs/target/dedupfs.jar}
[[ -f "$built_jar" ]] || die "$built_jar not found: run mvn -q -B -DskipTests package -pl engine,fs first"

work=$(mktemp -d "$base/dedupfs-clone-bench.XXXXXX")
export DEDUPFS_JAR=$work/dedupfs.jar
cp "$built_jar" "$DEDUPFS_JAR"
dedupfs=$root/mount-scripts/dedupfs
mnt=$work/mnt
mkdir -p "$mnt"

cleanup() {
    set +e
    if findmnt -rn --mountpoint "$mnt" >/dev/null 2>&1; then
        "$dedupfs" umount "$mnt" >/dev/null 2>&1 || umount -l "$mnt"
    fi
    rm -rf "$work"
}
trap cleanup EXIT

"$dedupfs" create --leaf-size 16K "$work/store" >/dev/null
"$dedupfs" mount --log "$work/daemon.log" "$work/store" "$mnt" >/dev/null
mkdir "$mnt/img" "$mnt/copies"

# --- the images ------------------------------------------------------------------------------
python3 - "$mnt/img" "$dense_max_mb" "$sparse_max_gb" <<'PY'
import os, random, struct, sys
d, dense_max, sparse_max = sys.argv[1], int(sys.argv[2]) << 20, int(sys.argv[3]) << 30
M, G = 1 << 20, 1 << 30
base = random.Random(1).randbytes(M)
seed = 0

def chunk(off, n):
    b = bytearray(base[:n])
    for i in range(0, n - 15, 4096):
        struct.pack_into('<QQ', b, i, seed, off + i)
    return b

for size in (M, 16 * M, 256 * M, G, 4 * G, 16 * G):
    if size > dense_max:
        break
    seed += 1
    fd = os.open(os.path.join(d, 'dense-%d' % size), os.O_WRONLY | os.O_CREAT, 0o644)
    for off in range(0, size, M):
        os.pwrite(fd, chunk(off, M), off)
    os.fsync(fd)
    os.close(fd)
size = M
while size <= sparse_max:
    seed += 1
    fd = os.open(os.path.join(d, 'sparse-%d' % size), os.O_WRONLY | os.O_CREAT, 0o644)
    os.ftruncate(fd, size)
    n = min(M, size // 64)
    for k in range(64):
        off = (size // 64) * k
        os.pwrite(fd, chunk(off, n), off)
    os.fsync(fd)
    os.close(fd)
    size *= 4
PY

stored() { getfattr --absolute-names --only-values -n user.dedupfs.stored "$mnt"; }
now() { date +%s.%N; }
# median and max of the numbers on stdin
stats() { python3 -c 'import statistics, sys; v = [float(x) for x in sys.stdin.read().split()]; print("%.4f %.4f" % (statistics.median(v), max(v)))'; }

timed_runs() { # CMD...: runs it $runs times with {} replaced by the run number; prints the seconds, one a line
    local i t0 t1
    for ((i = 0; i < runs; i++)); do
        local args=("${@//\{\}/$i}")
        t0=$(now)
        "${args[@]}" >/dev/null
        t1=$(now)
        echo "$t1 - $t0" | bc -l
    done
}

ioctl_runs() { # SRC DSTPREFIX: one python process, the ioctl alone timed
    python3 - "$1" "$2" "$runs" <<'PY'
import fcntl, os, struct, sys, time
src, prefix, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = os.open(src, os.O_RDONLY)
for i in range(runs):
    d = os.open('%s.%d' % (prefix, i), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    t0 = time.perf_counter()
    fcntl.ioctl(d, 0x40204401, struct.pack('=qQQQ', s, 0, 0, 0))
    print(time.perf_counter() - t0)
    os.close(d)
PY
}

command -v bc >/dev/null || die "bc is missing (apt-get install bc)"
out=$(mktemp)
printf '%-8s %-7s %10s | %-17s | %-17s | %-17s | %-17s | %-17s | %s\n' "kind" "size" "data" "cp s (max)" \
    "ioctl ms (max)" "dedupfs clone s" "snapshot s" "floor s" "stored +B" >"$out"
n=0
for img in $(ls "$mnt/img" | sort -t- -k1,1 -k2,2n); do
    n=$((n + 1))
    path=$mnt/img/$img
    size=$(stat -c %s "$path")
    data=$(python3 - "$path" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
size, pos, data = os.fstat(fd).st_size, 0, 0
while pos < size:
    try:
        start = os.lseek(fd, pos, os.SEEK_DATA)
    except OSError:
        break
    end = os.lseek(fd, start, os.SEEK_HOLE)
    data += end - start
    pos = end
print(data)
PY
)
    before=$(stored)
    cp_t=$(timed_runs cp "$path" "$mnt/copies/$img.cp.{}" | stats)
    io_t=$(ioctl_runs "$path" "$mnt/copies/$img.ioctl" | stats)
    cl_t=$(timed_runs "$dedupfs" clone "$path" "$mnt/copies/$img.clone.{}" | stats)
    sn_t=$(timed_runs "$dedupfs" snapshot create "s$n-{}" "$path" | stats)
    fl_t=$(timed_runs "$dedupfs" snapshot list "$mnt" | stats)
    after=$(stored)
    human() { numfmt --to=iec-i --suffix=B "$1"; }
    read -r cpm cpx <<<"$cp_t"
    read -r iom iox <<<"$io_t"
    read -r clm clx <<<"$cl_t"
    read -r snm snx <<<"$sn_t"
    read -r flm flx <<<"$fl_t"
    printf '%-8s %-7s %10s | %7.3f (%7.3f) | %7.3f (%7.3f) | %7.3f (%7.3f) | %7.3f (%7.3f) | %7.3f (%7.3f) | %s\n' \
        "${img%%-*}" "$(human "$size")" "$(human "$data")" "$cpm" "$cpx" "$(echo "$iom * 1000" | bc -l)" \
        "$(echo "$iox * 1000" | bc -l)" "$clm" "$clx" "$snm" "$snx" "$flm" "$flx" "$((after - before))" >>"$out"
    rm -f "$mnt/copies/"*
    for ((i = 0; i < runs; i++)); do "$dedupfs" snapshot delete "s$n-$i" "$mnt" >/dev/null; done
done
{
    cat "$out"
    printf '\nfloor: `dedupfs snapshot list`, a JVM start and one request on the control socket, measured\n'
    printf 'with each row: the part of the two commands that is not the clone or the snapshot.\n'
    printf '%d runs per figure; built: %s; %s; load average %s\n' "$runs" \
        "$(git -C "$root" describe --always --dirty 2>/dev/null || echo '?')" "$(nproc) cores" "$(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$work/table.txt"
mkdir -p "$here/target/results"
cp "$work/table.txt" "$here/target/results/clone-snapshot-$(date +%Y%m%d-%H%M%S).txt"
