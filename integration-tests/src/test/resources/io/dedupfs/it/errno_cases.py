#!/usr/bin/env python3
"""Common mistakes, each answered with an errno by the filesystem under DIR.

Usage: errno_cases.py DIR

Runs every case in a fresh subdirectory DIR/<case> (its current directory) and prints one line per
case: "<case> <expected> <got>", where <got> is an errno name (ENOENT ...), OK if the mistake
was not refused, or SETUP:<what> if preparing the case failed. The expected value is what Linux
ext4 answers; OperationsIT runs this on a loop-mounted ext4 and on dedupfs and compares.
Cases whose name starts with "nobody_" make the mistake as uid/gid 65534 (DIR must be
reachable by it).
"""
import ctypes
import ctypes.util
import errno
import fcntl
import os
import sys

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
libc.getxattr.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
libc.getxattr.restype = ctypes.c_ssize_t
libc.listxattr.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
libc.listxattr.restype = ctypes.c_ssize_t
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]

AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
FALLOC_FL_KEEP_SIZE = 1
FALLOC_FL_PUNCH_HOLE = 2
TCGETS = 0x5401
NOBODY = 65534
LONG = "n" * 256        # one byte more than NAME_MAX
LONGEST = "n" * 255     # exactly NAME_MAX
LONG_UTF8 = "\u00e9" * 128  # 256 bytes in UTF-8

CASES = []


def case(expected):
    def register(f):
        CASES.append((f.__name__, expected, f))
        return f
    return register


class Outcome(Exception):
    pass


def mistake(fn, *args):
    """Makes the mistake; ends the case with its errno name (or OK)."""
    try:
        fn(*args)
    except OSError as e:
        raise Outcome(errno.errorcode.get(e.errno, str(e.errno)))
    raise Outcome("OK")


def check(res):
    """Raises OSError(errno) for a libc call that returned -1."""
    if res < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return res


def renameat2(old, new, flags):
    check(libc.renameat2(AT_FDCWD, old.encode(), AT_FDCWD, new.encode(), flags))


def getxattr_into(path, name, size):
    buf = ctypes.create_string_buffer(max(size, 1))
    return check(libc.getxattr(path.encode(), name.encode(), buf, size))


def listxattr_into(path, size):
    buf = ctypes.create_string_buffer(max(size, 1))
    return check(libc.listxattr(path.encode(), buf, size))


def fallocate(fd, mode, offset, length):
    check(libc.fallocate(fd, mode, offset, length))


def touch(name, data=b""):
    with open(name, "wb") as f:
        f.write(data)


def as_nobody(fn, *args):
    """Runs fn(*args) in a child process as uid/gid 65534; ends the case with its errno name."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            fn(*args)
            out = "OK"
        except OSError as e:
            out = errno.errorcode.get(e.errno, str(e.errno))
        except BaseException as e:  # noqa: BLE001 - reported, not raised, in the child
            out = "SETUP:" + type(e).__name__
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    out = os.read(r, 100).decode()
    os.close(r)
    os.waitpid(pid, 0)
    raise Outcome(out)


# ---- ENOENT

@case("ENOENT")
def stat_missing():
    mistake(os.stat, "missing")


@case("ENOENT")
def open_missing():
    mistake(os.open, "missing", os.O_RDONLY)


@case("ENOENT")
def unlink_missing():
    mistake(os.unlink, "missing")


@case("ENOENT")
def rmdir_missing():
    mistake(os.rmdir, "missing")


@case("ENOENT")
def mkdir_in_missing_dir():
    mistake(os.mkdir, "missing/d")


@case("ENOENT")
def create_in_missing_dir():
    mistake(os.open, "missing/f", os.O_CREAT | os.O_WRONLY, 0o644)


@case("ENOENT")
def rename_missing_source():
    mistake(os.rename, "missing", "other")


@case("ENOENT")
def rename_into_missing_dir():
    touch("f")
    mistake(os.rename, "f", "missing/f")


@case("ENOENT")
def link_missing_source():
    mistake(os.link, "missing", "other")


@case("ENOENT")
def link_into_missing_dir():
    touch("f")
    mistake(os.link, "f", "missing/f")


@case("ENOENT")
def chmod_missing():
    mistake(os.chmod, "missing", 0o600)


@case("ENOENT")
def utime_missing():
    mistake(os.utime, "missing", (1, 1))


@case("ENOENT")
def readlink_missing():
    mistake(os.readlink, "missing")


@case("ENOENT")
def open_dangling_symlink():
    os.symlink("missing", "s")
    mistake(os.open, "s", os.O_RDONLY)


@case("ENOENT")
def rename_exchange_with_missing_target():
    touch("f")
    mistake(renameat2, "f", "missing", RENAME_EXCHANGE)


@case("ENOENT")
def getxattr_missing_file():
    mistake(os.getxattr, "missing", "user.a")


@case("ENOENT")
def create_in_removed_directory():
    os.mkdir("d")
    os.chdir("d")
    os.rmdir("../d")
    try:
        mistake(os.open, "f", os.O_CREAT | os.O_WRONLY, 0o644)
    finally:
        os.chdir("..")


@case("ENOENT")
def stat_after_unlink():
    touch("f")
    os.unlink("f")
    mistake(os.stat, "f")


@case("ENOENT")
def stat_old_name_after_rename():
    touch("f")
    os.rename("f", "g")
    mistake(os.stat, "f")


# ---- EEXIST

@case("EEXIST")
def mkdir_existing_dir():
    os.mkdir("d")
    mistake(os.mkdir, "d")


@case("EEXIST")
def mkdir_over_file():
    touch("f")
    mistake(os.mkdir, "f")


@case("EEXIST")
def create_excl_existing():
    touch("f")
    mistake(os.open, "f", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)


@case("EEXIST")
def create_excl_over_dangling_symlink():
    os.symlink("missing", "s")
    mistake(os.open, "s", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)


@case("EEXIST")
def symlink_over_existing():
    touch("f")
    mistake(os.symlink, "target", "f")


@case("EEXIST")
def link_over_existing():
    touch("f")
    touch("g")
    mistake(os.link, "f", "g")


@case("EEXIST")
def mkfifo_over_existing():
    touch("f")
    mistake(os.mkfifo, "f")


@case("EEXIST")
def rename_noreplace_onto_file():
    touch("f")
    touch("g")
    mistake(renameat2, "f", "g", RENAME_NOREPLACE)


@case("EEXIST")
def rename_noreplace_onto_empty_dir():
    os.mkdir("d")
    os.mkdir("e")
    mistake(renameat2, "d", "e", RENAME_NOREPLACE)


@case("EEXIST")
def setxattr_create_existing():
    touch("f")
    os.setxattr("f", "user.a", b"1")
    mistake(os.setxattr, "f", "user.a", b"2", os.XATTR_CREATE)


# ---- ENOTDIR

@case("ENOTDIR")
def stat_below_file():
    touch("f")
    mistake(os.stat, "f/x")


@case("ENOTDIR")
def create_below_file():
    touch("f")
    mistake(os.open, "f/x", os.O_CREAT | os.O_WRONLY, 0o644)


@case("ENOTDIR")
def mkdir_below_file():
    touch("f")
    mistake(os.mkdir, "f/x")


@case("ENOTDIR")
def rmdir_file():
    touch("f")
    mistake(os.rmdir, "f")


@case("ENOTDIR")
def listdir_file():
    touch("f")
    mistake(os.listdir, "f")


@case("ENOTDIR")
def open_directory_flag_on_file():
    touch("f")
    mistake(os.open, "f", os.O_RDONLY | os.O_DIRECTORY)


@case("ENOTDIR")
def rename_dir_over_file():
    os.mkdir("d")
    touch("f")
    mistake(os.rename, "d", "f")


@case("ENOTDIR")
def stat_file_with_trailing_slash():
    touch("f")
    mistake(os.stat, "f/")


@case("ENOTDIR")
def rename_file_to_trailing_slash():
    touch("f")
    touch("g")
    mistake(os.rename, "f", "g/")


# ---- EISDIR

@case("EISDIR")
def open_dir_for_writing():
    os.mkdir("d")
    mistake(os.open, "d", os.O_WRONLY)


@case("EISDIR")
def open_dir_read_write_create():
    os.mkdir("d")
    mistake(os.open, "d", os.O_RDWR | os.O_CREAT, 0o644)


@case("EISDIR")
def unlink_dir():
    os.mkdir("d")
    mistake(os.unlink, "d")


@case("EISDIR")
def rename_file_over_dir():
    touch("f")
    os.mkdir("d")
    mistake(os.rename, "f", "d")


@case("EISDIR")
def truncate_dir():
    os.mkdir("d")
    mistake(os.truncate, "d", 0)


@case("EISDIR")
def read_dir_fd():
    os.mkdir("d")
    fd = os.open("d", os.O_RDONLY)
    try:
        mistake(os.read, fd, 10)
    finally:
        os.close(fd)


# ---- ENOTEMPTY

@case("ENOTEMPTY")
def rmdir_nonempty():
    os.mkdir("d")
    touch("d/f")
    mistake(os.rmdir, "d")


@case("ENOTEMPTY")
def rmdir_with_subdir_only():
    os.makedirs("d/e")
    mistake(os.rmdir, "d")


@case("ENOTEMPTY")
def rename_dir_over_nonempty_dir():
    os.mkdir("d")
    os.mkdir("e")
    touch("e/f")
    mistake(os.rename, "d", "e")


@case("ENOTEMPTY")
def rename_dir_onto_its_parent():
    os.makedirs("d/e")
    mistake(os.rename, "d/e", "d")


@case("ENOTEMPTY")
def rmdir_dotdot():
    os.makedirs("d/e")
    mistake(os.rmdir, "d/e/..")


# ---- EINVAL

@case("EINVAL")
def rename_dir_into_own_child():
    os.makedirs("d/e")
    mistake(os.rename, "d", "d/e/d")


@case("EINVAL")
def rename_dir_into_itself():
    os.mkdir("d")
    mistake(os.rename, "d", "d/d")


@case("EINVAL")
def exchange_dir_with_own_child():
    os.makedirs("d/e")
    mistake(renameat2, "d", "d/e", RENAME_EXCHANGE)


@case("EINVAL")
def rmdir_dot():
    os.mkdir("d")
    mistake(os.rmdir, "d/.")


@case("EINVAL")
def readlink_regular_file():
    touch("f")
    mistake(os.readlink, "f")


@case("EINVAL")
def readlink_dir():
    os.mkdir("d")
    mistake(os.readlink, "d")


@case("EINVAL")
def rename_noreplace_and_exchange():
    touch("f")
    touch("g")
    mistake(renameat2, "f", "g", RENAME_NOREPLACE | RENAME_EXCHANGE)


@case("EINVAL")
def rename_unknown_flag():
    touch("f")
    mistake(renameat2, "f", "g", 1 << 7)


@case("EINVAL")
def truncate_negative():
    touch("f")
    mistake(os.truncate, "f", -1)


@case("EINVAL")
def ftruncate_read_only_fd():
    touch("f", b"abc")
    fd = os.open("f", os.O_RDONLY)
    try:
        mistake(os.ftruncate, fd, 0)
    finally:
        os.close(fd)


@case("EINVAL")
def fallocate_zero_length():
    fd = os.open("f", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        mistake(fallocate, fd, 0, 0, 0)
    finally:
        os.close(fd)


@case("EINVAL")
def copy_file_range_overlapping_in_one_file():
    touch("f", os.urandom(100000))
    fd = os.open("f", os.O_RDWR)
    try:
        mistake(os.copy_file_range, fd, fd, 50000, 0, 20000)
    finally:
        os.close(fd)


@case("EINVAL")
def lseek_bad_whence():
    touch("f", b"abc")
    fd = os.open("f", os.O_RDONLY)
    try:
        mistake(os.lseek, fd, 0, 17)
    finally:
        os.close(fd)


# ---- ENXIO (SEEK_DATA / SEEK_HOLE)

@case("ENXIO")
def seek_data_past_eof():
    touch("f", b"x" * 5000)
    fd = os.open("f", os.O_RDONLY)
    try:
        mistake(os.lseek, fd, 10000, os.SEEK_DATA)
    finally:
        os.close(fd)


@case("ENXIO")
def seek_hole_past_eof():
    touch("f", b"x" * 5000)
    fd = os.open("f", os.O_RDONLY)
    try:
        mistake(os.lseek, fd, 10000, os.SEEK_HOLE)
    finally:
        os.close(fd)


@case("ENXIO")
def seek_data_in_trailing_hole():
    touch("f", b"x" * 4096)
    os.truncate("f", 4 << 20)
    fd = os.open("f", os.O_RDONLY)
    try:
        mistake(os.lseek, fd, 2 << 20, os.SEEK_DATA)
    finally:
        os.close(fd)


@case("ENXIO")
def seek_data_in_empty_file():
    touch("f")
    fd = os.open("f", os.O_RDONLY)
    try:
        mistake(os.lseek, fd, 0, os.SEEK_DATA)
    finally:
        os.close(fd)


# ---- ENAMETOOLONG

@case("ENAMETOOLONG")
def create_name_256_bytes():
    mistake(os.open, LONG, os.O_CREAT | os.O_WRONLY, 0o644)


@case("ENAMETOOLONG")
def create_utf8_name_256_bytes():
    mistake(os.open, LONG_UTF8, os.O_CREAT | os.O_WRONLY, 0o644)


@case("ENAMETOOLONG")
def mkdir_name_256_bytes():
    mistake(os.mkdir, LONG)


@case("ENAMETOOLONG")
def stat_name_256_bytes():
    mistake(os.stat, LONG)


@case("ENAMETOOLONG")
def rename_to_name_256_bytes():
    touch("f")
    mistake(os.rename, "f", LONG)


@case("ENAMETOOLONG")
def symlink_name_256_bytes():
    mistake(os.symlink, "target", LONG)


@case("ENAMETOOLONG")
def link_name_256_bytes():
    touch("f")
    mistake(os.link, "f", LONG)


@case("ENAMETOOLONG")
def mkfifo_name_256_bytes():
    mistake(os.mkfifo, LONG)


@case("ENAMETOOLONG")
def symlink_target_longer_than_path_max():
    mistake(os.symlink, "t" * 4096, "s")


@case("OK")
def create_name_255_bytes():
    mistake(os.open, LONGEST, os.O_CREAT | os.O_WRONLY, 0o644)


@case("OK")
def symlink_target_of_4095_bytes():
    mistake(os.symlink, "t" * 4095, "s")


# ---- extended attributes

@case("ENODATA")
def getxattr_missing():
    touch("f")
    mistake(os.getxattr, "f", "user.missing")


@case("ENODATA")
def getxattr_security_capability():
    # the kernel's probe before every write; answered without the store
    touch("f")
    mistake(os.getxattr, "f", "security.capability")


@case("ENODATA")
def removexattr_missing():
    touch("f")
    mistake(os.removexattr, "f", "user.missing")


@case("ENODATA")
def setxattr_replace_missing():
    touch("f")
    mistake(os.setxattr, "f", "user.missing", b"1", os.XATTR_REPLACE)


@case("ENODATA")
def getxattr_after_remove():
    touch("f")
    os.setxattr("f", "user.a", b"1")
    os.removexattr("f", "user.a")
    mistake(os.getxattr, "f", "user.a")


@case("ERANGE")
def getxattr_buffer_too_small():
    touch("f")
    os.setxattr("f", "user.a", b"0123456789")
    mistake(getxattr_into, "f", "user.a", 4)


@case("ERANGE")
def listxattr_buffer_too_small():
    touch("f")
    os.setxattr("f", "user.aaaaaaaaaaaa", b"1")
    mistake(listxattr_into, "f", 4)


@case("ERANGE")
def setxattr_name_256_bytes():
    touch("f")
    mistake(os.setxattr, "f", "user." + "a" * 251, b"1")


@case("ERANGE")
def setxattr_empty_name():
    touch("f")
    mistake(os.setxattr, "f", "", b"1")


@case("ENOTSUP")
def setxattr_unknown_namespace():
    touch("f")
    mistake(os.setxattr, "f", "nosuchnamespace.a", b"1")


@case("EPERM")
def setxattr_user_on_symlink():
    os.symlink("target", "s")
    mistake(lambda: os.setxattr("s", "user.a", b"1", follow_symlinks=False))


@case("OK")
def setxattr_empty_value():
    touch("f")
    mistake(os.setxattr, "f", "user.empty", b"")


# ---- EPERM, EBADF, ELOOP, EFBIG, ENOTTY, EOPNOTSUPP

@case("EPERM")
def link_to_dir():
    os.mkdir("d")
    mistake(os.link, "d", "e")


@case("EBADF")
def write_read_only_fd():
    touch("f")
    fd = os.open("f", os.O_RDONLY)
    try:
        mistake(os.write, fd, b"x")
    finally:
        os.close(fd)


@case("EBADF")
def read_write_only_fd():
    touch("f", b"abc")
    fd = os.open("f", os.O_WRONLY)
    try:
        mistake(os.read, fd, 3)
    finally:
        os.close(fd)


@case("EBADF")
def fsync_closed_fd():
    fd = os.open("f", os.O_CREAT | os.O_WRONLY, 0o644)
    os.close(fd)
    mistake(os.fsync, fd)


@case("EBADF")
def fallocate_read_only_fd():
    touch("f")
    fd = os.open("f", os.O_RDONLY)
    try:
        mistake(fallocate, fd, 0, 0, 4096)
    finally:
        os.close(fd)


@case("EBADF")
def copy_file_range_to_read_only_fd():
    touch("f", b"abc")
    touch("g")
    src = os.open("f", os.O_RDONLY)
    dst = os.open("g", os.O_RDONLY)
    try:
        mistake(os.copy_file_range, src, dst, 3)
    finally:
        os.close(src)
        os.close(dst)


@case("ELOOP")
def open_symlink_loop():
    os.symlink("b", "a")
    os.symlink("a", "b")
    mistake(os.open, "a", os.O_RDONLY)


@case("ELOOP")
def open_nofollow_symlink():
    touch("f")
    os.symlink("f", "s")
    mistake(os.open, "s", os.O_RDONLY | os.O_NOFOLLOW)


@case("EFBIG")
def write_at_huge_offset():
    fd = os.open("f", os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        mistake(os.pwrite, fd, b"x", 1 << 62)
    finally:
        os.close(fd)


@case("EFBIG")
def truncate_to_huge_size():
    touch("f")
    mistake(os.truncate, "f", 1 << 62)


@case("EFBIG")
def fallocate_huge():
    fd = os.open("f", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        mistake(fallocate, fd, 0, 1 << 62, 4096)
    finally:
        os.close(fd)


@case("ENOTSUP")
def punch_hole_without_keep_size():
    touch("f", b"x" * 8192)
    fd = os.open("f", os.O_RDWR)
    try:
        mistake(fallocate, fd, FALLOC_FL_PUNCH_HOLE, 0, 4096)
    finally:
        os.close(fd)


@case("ENOTTY")
def ioctl_tcgets_on_file():
    touch("f")
    fd = os.open("f", os.O_RDONLY)
    try:
        mistake(fcntl.ioctl, fd, TCGETS, bytes(64))
    finally:
        os.close(fd)


# ---- as another user (DIR and the mount must let uid 65534 in)

@case("EACCES")
def nobody_create_in_root_dir():
    os.mkdir("d", 0o755)
    as_nobody(os.open, "d/f", os.O_CREAT | os.O_WRONLY, 0o644)


@case("EACCES")
def nobody_read_private_file():
    touch("f", b"secret")
    os.chmod("f", 0o600)
    as_nobody(os.open, "f", os.O_RDONLY)


@case("EACCES")
def nobody_write_read_only_file():
    touch("f", b"data")
    os.chmod("f", 0o644)
    as_nobody(os.open, "f", os.O_WRONLY)


@case("EACCES")
def nobody_access_w_ok():
    touch("f")
    os.chmod("f", 0o644)

    def access_w():
        if not os.access("f", os.W_OK):
            raise OSError(errno.EACCES, "not writable")
    as_nobody(access_w)


@case("EACCES")
def nobody_enter_private_dir():
    os.mkdir("d", 0o700)
    touch("d/f")
    as_nobody(os.stat, "d/f")


@case("EACCES")
def nobody_rename_in_root_dir():
    touch("f")
    as_nobody(os.rename, "f", "g")


@case("EACCES")
def nobody_setxattr_on_root_file():
    touch("f")
    as_nobody(os.setxattr, "f", "user.a", b"1")


@case("EACCES")
def nobody_touch_now_on_root_file():
    touch("f")
    as_nobody(os.utime, "f", None)


@case("EPERM")
def nobody_set_times_on_root_file():
    touch("f")
    os.chmod("f", 0o666)
    as_nobody(os.utime, "f", (1, 1))


@case("EPERM")
def nobody_chmod_root_file():
    touch("f")
    as_nobody(os.chmod, "f", 0o777)


@case("EPERM")
def nobody_chown_own_file_to_root():
    os.mkdir("d", 0o777)
    touch("d/f")
    os.chown("d/f", NOBODY, NOBODY)
    as_nobody(os.chown, "d/f", 0, 0)


@case("EPERM")
def nobody_unlink_others_file_in_sticky_dir():
    os.mkdir("d")
    os.chmod("d", 0o1777)
    touch("d/f")
    as_nobody(os.unlink, "d/f")


@case("OK")
def nobody_write_own_file():
    os.mkdir("d", 0o777)
    os.chmod("d", 0o777)

    def write_own():
        with open("d/f", "wb") as f:
            f.write(b"mine")
        os.chmod("d/f", 0o600)
        os.utime("d/f", (1, 1))
    as_nobody(write_own)


def main():
    base = os.path.abspath(sys.argv[1])
    only = set(sys.argv[2:])
    os.umask(0o022)
    for name, expected, fn in CASES:
        if only and name not in only:
            continue
        d = os.path.join(base, name)
        os.mkdir(d)
        os.chmod(d, 0o755)
        os.chdir(d)
        try:
            fn()
            got = "SETUP:case-made-no-mistake"
        except Outcome as o:
            got = str(o)
        except OSError as e:
            got = "SETUP:" + errno.errorcode.get(e.errno, str(e.errno)) + ":" + str(e).replace(" ", "_")
        except Exception as e:  # noqa: BLE001 - every case reports
            got = "SETUP:" + type(e).__name__
        finally:
            os.chdir(base)
        print(name, expected, got, flush=True)


if __name__ == "__main__":
    main()
