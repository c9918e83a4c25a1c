#!/usr/bin/env bash
# Builds the benchmarks, runs the engine's JMH benchmarks and their ceilings in one run, and
# prints the table: benchmark, figure, ceiling, ratio, target, pass/fail.
#
#   benchmarks/run-engine-benchmarks.sh            # full settings, about 6 minutes on 2 cores
#   benchmarks/run-engine-benchmarks.sh --quick    # 1 short iteration each, about 3 minutes: a smoke test
#   benchmarks/run-engine-benchmarks.sh [--quick] [JMH args...]   # e.g. -p leafSize=65536, or a regexp
#   benchmarks/run-engine-benchmarks.sh --committed [...]   # build HEAD as committed (git archive), not the working tree
#
# Stores go under $DEDUPFS_BENCH_DIR (default: /var/tmp), which must be on a disk, not a tmpfs;
# every store is deleted when its benchmark ends. Results: benchmarks/target/results/.
# Exit status: 0 all targets met, 3 a target missed, other: the build or a benchmark failed.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
quick=()
committed=""
while [[ "${1:-}" == --quick || "${1:-}" == --committed ]]; do
  case "$1" in
    --quick) quick=(-wi 1 -w 1s -i 1 -r 2s) ;;
    --committed) committed=yes ;;
  esac
  shift
done

export DEDUPFS_BENCH_DIR="${DEDUPFS_BENCH_DIR:-/var/tmp}"
mkdir -p "$DEDUPFS_BENCH_DIR"
fstype="$(df --output=fstype "$DEDUPFS_BENCH_DIR" | tail -1)"
if [[ "$fstype" == "tmpfs" || "$fstype" == "ramfs" ]]; then
  echo "DEDUPFS_BENCH_DIR=$DEDUPFS_BENCH_DIR is on $fstype; point it at a disk" >&2
  exit 2
fi

jar="$here/target/benchmarks.jar"
if [[ -n "$committed" ]]; then
  # Others may be editing engine/: measure a commit, not whatever the working tree holds now.
  src="$here/target/committed-src"
  rm -rf "$src" && mkdir -p "$src"
  git -C "$root" archive HEAD | tar -x -C "$src"
  (cd "$src" && mvn -q -B -pl benchmarks -am -DskipTests package)
  jar="$src/benchmarks/target/benchmarks.jar"
  built="$(git -C "$root" rev-parse --short HEAD) as committed"
else
  (cd "$root" && mvn -q -B -pl benchmarks -am -DskipTests package)
  built="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?') + the working tree ($(git -C "$root" status --porcelain -- engine 2>/dev/null | wc -l) uncommitted changes in engine/)"
fi

out="$here/target/results"
mkdir -p "$out"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
json="$out/engine-$stamp.json"
{
  echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, $(uname -sr)"
  echo "java:    $(java -version 2>&1 | head -1)"
  echo "built:   $built"
  echo "disk:    $DEDUPFS_BENCH_DIR ($fstype)"
  echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) before the run"
} | tee "$out/engine-$stamp.txt"

jmh() { # json-file jmh-args...
  local f="$1"; shift
  java -jar "$jar" "${quick[@]}" -rf json -rff "$f" "$@" | tee -a "$out/engine-$stamp.log"
}
if [[ $# -gt 0 ]]; then
  jmh "$json" "$@"
else
  # Two rounds, so that each ratio compares figures taken within a few minutes of each other:
  # the writes and clones with both ceilings, then reads and random writes.
  jmh "$out/engine-$stamp.1.json" 'Ceiling|SequentialWrite|Clone'
  jmh "$out/engine-$stamp.2.json" 'RandomWrite|ReadBenchmark'
  python3 -c 'import json, sys; json.dump(sum((json.load(open(f)) for f in sys.argv[2:]), []), open(sys.argv[1], "w"), indent=1)' \
    "$json" "$out/engine-$stamp.1.json" "$out/engine-$stamp.2.json"
fi

{
  echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) after the run"
  python3 "$here/src/main/python/engine_report.py" "$json"
} | tee -a "$out/engine-$stamp.txt"
