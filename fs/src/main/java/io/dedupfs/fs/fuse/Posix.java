package io.dedupfs.fs.fuse;

import java.io.IOException;
import java.nio.file.Path;
import jnr.constants.platform.Errno;

/** The few POSIX calls the command line needs that Java does not offer, through the binding's libc. */
public final class Posix {
    private static final int O_WRONLY = 01;
    private static final int O_CREAT = 0100;
    private static final int O_APPEND = 02000;
    private static final int O_CLOEXEC = 02000000;

    private Posix() {
    }

    /** The effective user id of this process. */
    public static int euid() {
        return Native.libc().geteuid();
    }

    /** Points this process's standard output and error (file descriptors 1 and 2) at {@code log}, appending. */
    public static void redirectStdoutAndStderr(Path log) throws IOException {
        Native.LibC c = Native.libc();
        int fd = c.open(log.toString(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd < 0) {
            throw new IOException("cannot open " + log + ": " + Errno.valueOf(Native.lastErrno()).description());
        }
        try {
            if (c.dup2(fd, 1) < 0 || c.dup2(fd, 2) < 0) {
                throw new IOException("dup2 onto stdout/stderr failed: " + Errno.valueOf(Native.lastErrno()).description());
            }
        } finally {
            c.close(fd);
        }
    }

    /**
     * Unmounts {@code mountpoint} with umount2(2) (root only).
     *
     * @throws IOException with the system's reason, e.g. "Device or resource busy"
     */
    public static void umount(Path mountpoint) throws IOException {
        Native.LibC c = Native.libc();
        if (c.umount2(mountpoint.toString(), 0) != 0) {
            throw new IOException(Errno.valueOf(Native.lastErrno()).description());
        }
    }
}
