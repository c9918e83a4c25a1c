#!/usr/bin/env bash
# deps.sh — installs what building and testing dedupfs need on Debian
# bookworm, and only what is missing (a no-op the second time).
#
# Usage: scripts/deps.sh          (as root, or as a user with sudo)
# Called by scripts/setup.sh and scripts/test.sh; safe without a terminal.
#   JDK 17+ (openjdk-17-jdk-headless unless a javac 17+ is on PATH), maven,
#   libfuse3-3 and fuse3 (fusermount3; this removes libfuse2's `fuse`
#   package, which conflicts), libfuse3-dev and gcc (StructLayoutTest checks
#   the binding against the C headers), liburing2 (mounts with --io-uring)
#   and liburing-dev (StructLayoutTest checks the rings' structures too),
#   qemu-utils, fio, xfsprogs, attr, e2fsprogs, python3, util-linux, psmisc,
#   and for LibvirtIT libvirt-daemon-system (libvirtd, virtlogd, the default
#   qemu.conf and the libvirt-qemu user), libvirt-clients (virsh) and
#   qemu-system-x86 (with SeaBIOS); then makes
#   sure /dev/fuse exists. Installing libvirt starts no daemon where systemd
#   is not running; the tests start their own. For the RADOS tests and
#   scripts/ceph.sh: ceph-mon, ceph-mgr, ceph-osd, ceph-common (the ceph CLI,
#   ceph-authtool, monmaptool, librados2), librados-dev, uuid-runtime
#   (uuidgen) and iproute2 (ss, to find a port taken by another cluster).
set -euo pipefail

log() { printf 'deps.sh: %s\n' "$*"; }

sudo=()
if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null || {
        log "not root and no sudo: run as root" >&2
        exit 1
    }
    sudo=(sudo -n)
fi

installed() { # installed PKG: is the Debian package installed?
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]
}

javac_major() { # major version of the javac on PATH, 0 if none
    local v
    command -v javac >/dev/null || {
        echo 0
        return
    }
    v=$(javac -version 2>&1 | sed -n 's/^javac \([0-9]*\).*/\1/p' | head -n1)
    echo "${v:-0}"
}

missing=()
if (($(javac_major) < 17)); then
    missing+=(openjdk-17-jdk-headless)
fi
command -v mvn >/dev/null || missing+=(maven)
command -v python3 >/dev/null || missing+=(python3)
for pkg in libfuse3-3 fuse3 libfuse3-dev liburing2 liburing-dev gcc qemu-utils fio xfsprogs attr e2fsprogs util-linux psmisc \
    libvirt-daemon-system libvirt-clients qemu-system-x86 \
    ceph-mon ceph-mgr ceph-osd ceph-common librados-dev uuid-runtime iproute2; do
    installed "$pkg" || missing+=("$pkg")
done

if ((${#missing[@]})); then
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt_opts=(-q -o DPkg::Lock::Timeout=600)
    "${sudo[@]}" apt-get "${apt_opts[@]}" update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}" </dev/null
    if (($(javac_major) < 17)); then
        log "javac 17+ still not first on PATH ($(command -v javac || echo none)): set JAVA_HOME/PATH to a JDK 17+" >&2
        exit 1
    fi
else
    log "all build and test packages are installed"
fi

if [[ ! -e /dev/fuse ]]; then
    log "/dev/fuse is missing: loading the fuse module"
    if ! "${sudo[@]}" modprobe fuse 2>/dev/null && ! grep -qw fuse /proc/filesystems; then
        log "modprobe fuse failed (no kmod, or no module in this kernel/container)" >&2
    fi
    if [[ ! -e /dev/fuse ]] && grep -qw fuse /proc/filesystems; then
        # The kernel has FUSE, only the device node is missing (containers).
        "${sudo[@]}" mknod -m 0666 /dev/fuse c 10 229 2>/dev/null || true
    fi
    if [[ -e /dev/fuse ]]; then
        log "/dev/fuse is there now"
    else
        log "WARNING: no /dev/fuse: dedupfs cannot mount here, and the real-mount tests will be skipped" >&2
    fi
fi
