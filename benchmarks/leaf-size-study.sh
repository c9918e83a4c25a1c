#!/usr/bin/env bash
# The leaf-size study: builds four VM-like raw disk images from this machine's /usr, then, for
# leaf sizes of 4, 8, 16, 32 and 64 KiB, writes all four into a fresh store and reports the
# dedupe ratio, the store's size per unique byte, and write speed (io.dedupfs.bench.LeafSizeStudy).
#
#   benchmarks/leaf-size-study.sh              # about 3 minutes on 2 cores, plus 1.5 to build the images once
#   benchmarks/leaf-size-study.sh --rebuild    # build the images again
#   benchmarks/leaf-size-study.sh --committed  # measure HEAD as committed (git archive), not the working tree
#   LEAF_KIB=16,64 benchmarks/leaf-size-study.sh
#
# Work directory: $LEAF_STUDY_DIR (default /var/tmp/dedupfs-leaf-study), on a disk: about 5.3 GiB of
# sparse images (~4 GB allocated) and, during a run, one store of up to ~2.3 GB.
#
# The images (raw ext4 file systems, written by mkfs.ext4 -d and debugfs; no mount needed):
#   vm-a.img       1280 MiB  "template VM": /usr/share + /usr/lib/python3.11 + /usr/lib/gcc
#   vm-a-upd1.img  1280 MiB  a clone of vm-a.img updated in place with debugfs: every 8th .py file
#                            under lib/python3.11 replaced by a new version (a comment line added at
#                            its top), every 3rd .mo file under share/locale deleted, the files of
#                            /usr/lib/postgresql and /usr/lib/git-core added
#   vm-a-upd2.img  1280 MiB  another clone of vm-a.img with the same update, its files written in
#                            the reverse order, so the same new files land at other offsets
#   vm-b.img       1536 MiB  "second VM installed from the same distribution":
#                            /usr/share + /usr/lib/python3.11 + /usr/lib/llvm-14, laid out afresh
#                            by mkfs (the same files as vm-a, at other offsets)
# Deleted files keep their old bytes in the image, as on a real disk. Paths with characters other
# than [A-Za-z0-9._+,@=-] are left out of the debugfs changes. The images depend on what /usr holds
# on this machine: the script prints their sizes and allocated sizes. Two builds from the same /usr
# lay out the same data at the same offsets (the figures came out identical to the byte), but are
# not bit-identical: inode times come from the staged hard links, whose ctime is when they were made.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
work="${LEAF_STUDY_DIR:-/var/tmp/dedupfs-leaf-study}"
leaf="${LEAF_KIB:-4,8,16,32,64}"
img="$work/images"
images="vm-a vm-a-upd1 vm-a-upd2 vm-b"

mkdir -p "$work"
fstype="$(df --output=fstype "$work" | tail -1)"
if [[ "$fstype" == "tmpfs" || "$fstype" == "ramfs" ]]; then
  echo "LEAF_STUDY_DIR=$work is on $fstype; point it at a disk" >&2
  exit 2
fi
for tool in mkfs.ext4 debugfs e2fsck; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install e2fsprogs" >&2; exit 2; }
done

# Fixed UUIDs, hash seeds and clock: the same trees give the same images.
export E2FSPROGS_FAKE_TIME=1700000000
mkimage() { # name size-MiB uuid tree
  rm -f "$img/$1"
  truncate -s "${2}M" "$img/$1"
  mkfs.ext4 -q -F -b 4096 -U "$3" -E "hash_seed=$3,lazy_itable_init=0,lazy_journal_init=0,nodiscard" -d "$4" "$img/$1"
}

stage() { # dir source...   (hard links: cheap, and nothing here ever changes them)
  local dir="$1"; shift
  rm -rf "$dir"; mkdir -p "$dir/share" "$dir/lib"
  cp -al /usr/share/. "$dir/share/" 2>/dev/null || cp -a /usr/share/. "$dir/share/"
  for s in "$@"; do cp -al "/usr/lib/$s" "$dir/lib/" 2>/dev/null || cp -a "/usr/lib/$s" "$dir/lib/"; done
}

safe() { grep -E '^[A-Za-z0-9._+,@=/-]+$' || true; }

build_images() {
  echo "building images in $img ..."
  rm -rf "$img" "$work/trees"
  mkdir -p "$img" "$work/trees"
  stage "$work/trees/a" python3.11 gcc
  stage "$work/trees/b" python3.11 llvm-14
  mkimage vm-a.img 1280 4b1e52b0-0000-4000-8000-00000000000a "$work/trees/a"
  mkimage vm-b.img 1536 4b1e52b0-0000-4000-8000-00000000000b "$work/trees/b"

  # The update, as debugfs commands: removals, new directories, then one "cd + write" per file.
  local upd="$work/trees/update" t="$work/trees"
  mkdir -p "$upd"
  : > "$t/rm.cmds"; : > "$t/mkdir.cmds"; : > "$t/write.cmds"
  (cd "$t/a" && find lib/python3.11 -type f -name '*.py' | LC_ALL=C sort | safe | awk 'NR % 8 == 0') |
    while read -r f; do
      mkdir -p "$upd/$(dirname "$f")"
      { echo "# updated $f"; cat "$t/a/$f"; } > "$upd/$f"
      printf 'rm /%s\n' "$f" >> "$t/rm.cmds"
      printf 'cd /%s\nwrite %s %s\n' "$(dirname "$f")" "$upd/$f" "$(basename "$f")" >> "$t/write.cmds"
    done
  (cd "$t/a" && find share/locale -type f -name '*.mo' | LC_ALL=C sort | safe | awk 'NR % 3 == 0') |
    while read -r f; do printf 'rm /%s\n' "$f" >> "$t/rm.cmds"; done
  for pkg in postgresql git-core; do
    (cd /usr/lib && find "$pkg" -type d | LC_ALL=C sort | safe) | while read -r d; do printf 'mkdir /lib/%s\n' "$d" >> "$t/mkdir.cmds"; done
    (cd /usr/lib && find "$pkg" -type f | LC_ALL=C sort | safe) | while read -r f; do
      printf 'cd /lib/%s\nwrite /usr/lib/%s %s\n' "$(dirname "$f")" "$f" "$(basename "$f")" >> "$t/write.cmds"
    done
  done
  # Clone 1 gets the writes in order; clone 2 the same writes in reverse order, so that the same
  # new files land at other offsets, as when one update is installed in two VMs.
  cat "$t/rm.cmds" "$t/mkdir.cmds" "$t/write.cmds" > "$t/update1.cmds"
  { cat "$t/rm.cmds" "$t/mkdir.cmds"; paste -d '\t' - - < "$t/write.cmds" | tac | tr '\t' '\n'; } > "$t/update2.cmds"
  for n in 1 2; do
    cp --sparse=always "$img/vm-a.img" "$img/vm-a-upd$n.img"
    debugfs -w -f "$t/update$n.cmds" "$img/vm-a-upd$n.img" >/dev/null 2>"$t/debugfs.err" || { cat "$t/debugfs.err" >&2; exit 1; }
    if grep -v '^debugfs' "$t/debugfs.err" | grep -q .; then
      echo "debugfs complained (first lines):" >&2; grep -v '^debugfs' "$t/debugfs.err" | head -5 >&2
    fi
  done
  for i in $images; do
    e2fsck -fn "$img/$i.img" >/dev/null 2>&1 || { echo "e2fsck finds $i.img inconsistent" >&2; exit 1; }
  done
  local replaced added added_kib removed
  replaced="$(grep -c '^write .*/update/' "$t/write.cmds")"
  added="$(grep -c '^write /usr/lib/' "$t/write.cmds")"
  added_kib="$(grep '^write /usr/lib/' "$t/write.cmds" | awk '{print $2}' | xargs du -ck | tail -1 | cut -f1)"
  removed="$(( $(wc -l < "$t/rm.cmds") - replaced ))"
  echo "the update replaced $replaced .py files, removed $removed .mo files, added $added files ($(( added_kib / 1024 )) MiB)" > "$img/update.txt"
  rm -rf "$work/trees"
  (cd "$img" && sha256sum $(for i in $images; do echo "$i.img"; done) > SHA256SUMS)
}

rebuild=""
committed=""
for arg in "$@"; do
  case "$arg" in
    --rebuild) rebuild=yes ;;
    --committed) committed=yes ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done
if [[ -n "$rebuild" || ! -f "$img/vm-a-upd2.img" ]]; then
  build_images
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
report="$out/leaf-size-$(date -u +%Y%m%dT%H%M%SZ).txt"
{
  echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "built:   $built"
  echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB RAM; load $(cut -d' ' -f1-3 /proc/loadavg) before the run"
  echo "images:  $(cat "$img/update.txt")"
  for i in $images; do
    echo "         $i.img: $(stat -c %s "$img/$i.img") bytes, $(du -k "$img/$i.img" | cut -f1) KiB allocated, sha256 $(grep " $i.img" "$img/SHA256SUMS" | cut -c1-16)..."
  done
  java --add-opens java.base/java.nio=ALL-UNNAMED --add-opens java.base/sun.nio.ch=ALL-UNNAMED -Xmx6g \
    -cp "$jar" io.dedupfs.bench.LeafSizeStudy \
    --leaf-kib "$leaf" --stores "$work/stores" $(for i in $images; do echo "$img/$i.img"; done)
  echo "load $(cut -d' ' -f1-3 /proc/loadavg) after the run"
} 2>&1 | tee "$report"
