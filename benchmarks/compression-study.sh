#!/usr/bin/env bash
# The compression study: the leaf-size study's four VM-like images (built by leaf-size-study.sh,
# reused when present) and incompressible data, written into fresh stores (16 KiB leaves) with
# each compression setting; prints store size, compress and dedupe ratios, write and read speeds,
# each against the first setting (none: the layout before compression) measured in the same run
# (io.dedupfs.bench.CompressionStudy).
#
#   benchmarks/compression-study.sh                        # none, lz4, zstd:1, zstd:3; about 6 minutes on 2 cores
#   COMPRESSION=none,lz4,zstd:3,zstd:9 benchmarks/compression-study.sh
#   RANDOM_MIB=512 benchmarks/compression-study.sh         # incompressible data per setting (default 1024)
#   benchmarks/compression-study.sh --committed            # measure HEAD as committed (git archive)
#
# Work directory: $LEAF_STUDY_DIR (default /var/tmp/dedupfs-leaf-study), on a disk; the images in
# its images/ (built by benchmarks/leaf-size-study.sh when missing: about 1.5 minutes), and during a
# run one store of up to ~2.3 GB.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
work="${LEAF_STUDY_DIR:-/var/tmp/dedupfs-leaf-study}"
img="$work/images"
images="vm-a vm-a-upd1 vm-a-upd2 vm-b"
settings="${COMPRESSION:-none,lz4,zstd:1,zstd:3}"

committed=""
for arg in "$@"; do
  case "$arg" in
    --committed) committed=yes ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done
if [[ ! -f "$img/vm-a-upd2.img" ]]; then
  echo "no images in $img: building them with leaf-size-study.sh (LEAF_KIB=16)"
  LEAF_STUDY_DIR="$work" LEAF_KIB=16 "$here/leaf-size-study.sh"
fi

jar="$here/target/benchmarks.jar"
if [[ -n "$committed" ]]; then
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
report="$out/compression-$(date -u +%Y%m%dT%H%M%SZ).txt"
{
  echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "built:   $built"
  echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB RAM; load $(cut -d' ' -f1-3 /proc/loadavg) before the run"
  for i in $images; do
    echo "         $i.img: $(stat -c %s "$img/$i.img") bytes, $(du -k "$img/$i.img" | cut -f1) KiB allocated"
  done
  java --add-opens java.base/java.nio=ALL-UNNAMED --add-opens java.base/sun.nio.ch=ALL-UNNAMED -Xmx6g \
    -cp "$jar" io.dedupfs.bench.CompressionStudy \
    --compression "$settings" --random-mib "${RANDOM_MIB:-1024}" --stores "$work/stores" \
    $(for i in $images; do echo "$img/$i.img"; done)
  echo "load $(cut -d' ' -f1-3 /proc/loadavg) after the run"
} 2>&1 | tee "$report"
