#!/usr/bin/env python3
"""Every way of changing something, tried on a snapshot: `python3 snapshot_write_paths.py MNT NAME
OUTSIDE`, where MNT/.snapshots/NAME holds a regular file `f`, a directory `d` (with a file `d/g`)
and a symlink `l`, and OUTSIDE is a regular file of the same mount outside .snapshots. Prints one
line per attempt: "NAME ERRNO" (or "NAME ok" when it was allowed). An attempt through a file
descriptor counts as refused whether the open or the call on it was refused."""
import ctypes
import errno
import fcntl
import mmap
import os
import struct
import sys

mnt, name, outside = sys.argv[1], sys.argv[2], sys.argv[3]
snaps = os.path.join(mnt, '.snapshots')
snap = os.path.join(snaps, name)
f = os.path.join(snap, 'f')
d = os.path.join(snap, 'd')
g = os.path.join(d, 'g')
link = os.path.join(snap, 'l')
libc = ctypes.CDLL(None, use_errno=True)


def attempt(what, fn):
    try:
        fn()
        print(what, 'ok')
    except OSError as e:
        print(what, errno.errorcode.get(e.errno, e.errno))


def opened(path, flags, mode=0o644):
    def fn():
        os.close(os.open(path, flags, mode))
    return fn


def fd_call(path, flags, call):
    def fn():
        fd = os.open(path, flags)
        try:
            call(fd)
        finally:
            os.close(fd)
    return fn


def c_call(fn, *args):
    def run():
        if fn(*args) != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
    return run


def mmap_write(fd):
    m = mmap.mmap(fd, 3)
    m[0:1] = b'X'
    m.flush()
    m.close()


src_fd = os.open(outside, os.O_RDONLY)
for where, base in (('snapshot', snap), ('.snapshots', snaps)):
    attempt(where + ' create', opened(os.path.join(base, 'new'), os.O_CREAT | os.O_WRONLY))
    attempt(where + ' mkdir', lambda: os.mkdir(os.path.join(base, 'newdir')))
    attempt(where + ' symlink', lambda: os.symlink('x', os.path.join(base, 'newlink')))
    attempt(where + ' hard link in', lambda: os.link(outside, os.path.join(base, 'newhard')))
    attempt(where + ' rename in', lambda: os.rename(outside, os.path.join(base, 'moved-in')))
    attempt(where + ' mknod fifo', lambda: os.mkfifo(os.path.join(base, 'fifo')))
    attempt(where + ' chmod dir', lambda: os.chmod(base, 0o700))
    attempt(where + ' chown dir', lambda: os.chown(base, 1, 1))
    attempt(where + ' utime dir', lambda: os.utime(base, (1, 1)))
    attempt(where + ' setxattr dir', lambda: os.setxattr(base, 'user.x', b'1'))
attempt('rename snapshot', lambda: os.rename(snap, os.path.join(snaps, 'renamed')))
attempt('rename snapshot out', lambda: os.rename(snap, os.path.join(mnt, 'renamed-out')))
attempt('rmdir snapshot', lambda: os.rmdir(snap))
attempt('rename .snapshots', lambda: os.rename(snaps, os.path.join(mnt, 'snaps-renamed')))
attempt('rmdir .snapshots', lambda: os.rmdir(snaps))
attempt('write (O_WRONLY)', fd_call(f, os.O_WRONLY, lambda fd: os.write(fd, b'x')))
attempt('pwrite (O_RDWR)', fd_call(f, os.O_RDWR, lambda fd: os.pwrite(fd, b'x', 1 << 20)))
attempt('append (O_APPEND)', fd_call(f, os.O_WRONLY | os.O_APPEND, lambda fd: os.write(fd, b'x')))
attempt('open O_TRUNC', opened(f, os.O_WRONLY | os.O_TRUNC))
attempt('ftruncate (O_RDWR)', fd_call(f, os.O_RDWR, lambda fd: os.ftruncate(fd, 0)))
attempt('fallocate (O_RDWR)', fd_call(f, os.O_RDWR, lambda fd: os.posix_fallocate(fd, 0, 1 << 20)))
attempt('punch hole (O_RDWR)', fd_call(f, os.O_RDWR, lambda fd: c_call(libc.fallocate, fd, 3, ctypes.c_long(0),
                                                                       ctypes.c_long(4096))()))
attempt('copy_file_range into (O_WRONLY)', fd_call(f, os.O_WRONLY, lambda fd: os.copy_file_range(src_fd, fd, 4096, 0, 0)))
attempt('clone ioctl into (O_WRONLY)', fd_call(f, os.O_WRONLY, lambda fd: fcntl.ioctl(
    fd, 0x40204401, struct.pack('=qQQQ', src_fd, 0, 0, 0))))
attempt('mmap write (O_RDWR)', fd_call(f, os.O_RDWR, lambda fd: mmap_write(fd)))
attempt('truncate', lambda: os.truncate(f, 1))
attempt('unlink', lambda: os.unlink(f))
attempt('unlink in subdir', lambda: os.unlink(g))
attempt('rmdir subdir', lambda: os.rmdir(d))
attempt('rename within', lambda: os.rename(f, os.path.join(snap, 'f2')))
attempt('rename out', lambda: os.rename(f, os.path.join(mnt, 'taken-out')))
attempt('rename over', lambda: os.rename(g, f))
attempt('hard link of snapshot file out', lambda: os.link(f, os.path.join(mnt, 'linked-out')))
attempt('unlink symlink', lambda: os.unlink(link))
attempt('chmod', lambda: os.chmod(f, 0o600))
attempt('chown', lambda: os.chown(f, 1, 1))
attempt('utime', lambda: os.utime(f, (1, 1)))
attempt('setxattr', lambda: os.setxattr(f, 'user.x', b'1'))
attempt('removexattr', lambda: os.removexattr(f, 'user.kept'))
attempt('utimensat symlink', c_call(libc.utimensat, -100, link.encode(), None, 0x100))
