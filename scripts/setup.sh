#!/usr/bin/env bash
# setup.sh — the first command of the README: from a fresh Debian bookworm to
# a mounted dedupfs datastore.
#
# Usage (as root, from anywhere in the checkout):
#     scripts/setup.sh
# Steps: scripts/deps.sh (missing packages), `mvn -q -DskipTests package`,
# mount-scripts/install.sh (/usr/local/bin/dedupfs, the mount helper, the
# systemd unit), then mounts the store DEDUPFS_STORE (default
# /var/lib/dedupfs/store, created if missing) on DEDUPFS_MOUNT (default
# /var/lib/dedupfs/mnt) with allow_other, so libvirt's qemu can use it.
# If DEDUPFS_MOUNT is already mounted it says so and exits 0.
set -euo pipefail

repo=$(dirname -- "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")")
store=${DEDUPFS_STORE:-/var/lib/dedupfs/store}
mnt=${DEDUPFS_MOUNT:-/var/lib/dedupfs/mnt}

step() { printf '\n==> %s\n' "$*"; }

step "Installing missing packages (scripts/deps.sh)"
bash "$repo/scripts/deps.sh"

step "Building (mvn -q -DskipTests package)"
(cd "$repo" && mvn -q -B -DskipTests package)
echo "built $repo/fs/target/dedupfs.jar"

step "Installing (mount-scripts/install.sh)"
bash "$repo/mount-scripts/install.sh"

step "Mounting $store on $mnt"
if findmnt -rn --mountpoint "$mnt" >/dev/null 2>&1; then
    echo "$mnt is already mounted:"
    findmnt --mountpoint "$mnt"
    exit 0
fi
mkdir -p -- "$(dirname -- "$store")" "$mnt"
if [[ ! -e "$store/data.mdb" ]]; then
    # mount never makes a store; a VM datastore's guests fsync all the time: a 1 GiB intent log
    /usr/local/bin/dedupfs create --log-size 1G "$store"
fi
/usr/local/bin/dedupfs mount --allow-other "$store" "$mnt"

step "Mounted"
df -h -- "$mnt"

cat <<EOF

Next steps:
  - Put VM images on it, e.g. with libvirt:
        virsh pool-define $repo/mount-scripts/libvirt-pool.xml
        virsh pool-start dedupfs && virsh pool-autostart dedupfs
        virsh vol-create-as dedupfs vm1.img 20G
  - Unmount (flushes first):  dedupfs umount $mnt
  - Mount at every boot (after unmounting this one), either:
        systemctl enable --now dedupfs@default.service
    (other paths than the defaults: DEDUPFS_STORE=... and DEDUPFS_MOUNT=...
    in /etc/dedupfs/default.env), or the fstab line in $repo/mount-scripts/fstab.example
  - Run the tests:            scripts/test.sh
EOF
