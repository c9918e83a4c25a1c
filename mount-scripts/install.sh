#!/usr/bin/env bash
# install.sh — installs a built dedupfs system-wide. Idempotent: run it again
# after every rebuild.
#
# Usage (as root, from anywhere, after `mvn -DskipTests package`):
#     mount-scripts/install.sh
# Installs:
#     fs/target/dedupfs.jar             -> /usr/local/lib/dedupfs/dedupfs.jar
#     mount-scripts/dedupfs             -> /usr/local/bin/dedupfs
#     mount-scripts/mount.fuse.dedupfs  -> /sbin/mount.fuse.dedupfs  (mount -t fuse.dedupfs, fstab)
#     mount-scripts/dedupfs@.service    -> /etc/systemd/system/dedupfs@.service
#     mount-scripts/dedupfs-default.conf -> /etc/systemd/system/dedupfs@default.service.d/paths.conf
#     mount-scripts/dedupfs.logrotate   -> /etc/logrotate.d/dedupfs
#     `dedupfs man`                     -> /usr/local/share/man/man1/dedupfs.1
#     `dedupfs generate-completion`     -> /usr/share/bash-completion/completions/dedupfs
# and runs `systemctl daemon-reload` if systemd is running.
# DESTDIR=/some/root installs under that root instead (packaging, tests).
set -euo pipefail

here=$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")
repo=$(dirname -- "$here")
destdir=${DESTDIR:-}

die() {
    printf 'install.sh: %s\n' "$*" >&2
    exit 1
}

jar=$repo/fs/target/dedupfs.jar
[[ -f "$jar" ]] || die "$jar not found: run mvn -DskipTests package first (in $repo)"
if [[ -z "$destdir" && $EUID -ne 0 ]]; then
    die "must run as root (it writes /usr/local, /sbin and /etc/systemd)"
fi

unit_changed=0

# put SRC DEST MODE: install SRC as DEST unless DEST already has that content.
put() {
    local src=$1 dest=$destdir$2 mode=$3
    if [[ -f "$dest" ]] && cmp -s -- "$src" "$dest"; then
        chmod "$mode" -- "$dest"
        printf 'install.sh: %s is up to date\n' "$dest"
        return 1
    fi
    # Into a new file, then renamed over the old one: `install` alone rewrites DEST in place,
    # and a running daemon loads classes from its jar lazily (a jar changed under it makes its
    # next new class fail, and the request that needed it gets EIO). The old inode stays whole
    # for whoever has it open.
    local tmp
    tmp=$(dirname -- "$dest")/.$(basename -- "$dest").new.$$
    install -D -m "$mode" -- "$src" "$tmp"
    mv -fT -- "$tmp" "$dest" || {
        rm -f -- "$tmp"
        die "cannot replace $dest"
    }
    printf 'install.sh: installed %s\n' "$dest"
}

put "$jar" /usr/local/lib/dedupfs/dedupfs.jar 0644 || true
put "$here/dedupfs" /usr/local/bin/dedupfs 0755 || true
put "$here/mount.fuse.dedupfs" /sbin/mount.fuse.dedupfs 0755 || true
if put "$here/dedupfs@.service" /etc/systemd/system/dedupfs@.service 0644; then
    unit_changed=1
fi
if put "$here/dedupfs-default.conf" /etc/systemd/system/dedupfs@default.service.d/paths.conf 0644; then
    unit_changed=1
fi
put "$here/dedupfs.logrotate" /etc/logrotate.d/dedupfs 0644 || true
# The manual page and bash completion come from the jar's own command definitions.
generated=$(mktemp -d)
trap 'rm -rf -- "$generated"' EXIT
java -jar "$jar" man >"$generated/dedupfs.1" || die "dedupfs man failed"
java -jar "$jar" generate-completion >"$generated/dedupfs.bash" || die "dedupfs generate-completion failed"
put "$generated/dedupfs.1" /usr/local/share/man/man1/dedupfs.1 0644 || true
put "$generated/dedupfs.bash" /usr/share/bash-completion/completions/dedupfs 0644 || true
install -d -m 0755 -- "$destdir/etc/dedupfs"

if [[ -z "$destdir" && -d /run/systemd/system ]]; then
    if ((unit_changed)); then
        systemctl daemon-reload
        printf 'install.sh: systemctl daemon-reload done\n'
    fi
else
    printf 'install.sh: systemd is not running here; skipped systemctl daemon-reload\n'
fi
