package io.dedupfs.fs.fuse;

import com.kenai.jffi.MemoryIO;
import jnr.ffi.LibraryLoader;
import jnr.ffi.LibraryOption;
import jnr.ffi.annotations.In;
import jnr.ffi.annotations.SaveError;
import jnr.ffi.types.intptr_t;
import jnr.ffi.types.off_t;
import jnr.ffi.types.size_t;
import jnr.ffi.types.u_int64_t;

/**
 * The native functions the binding calls, and raw memory access.
 *
 * <p>Pointers are plain {@code long} addresses ({@code @intptr_t}) so that calls on the request path
 * create no jnr {@code Pointer} objects; structures are read and written with {@link #MEM} at the
 * offsets in {@link Layout}. The interfaces are public only because jnr-ffi generates their
 * implementations in another package.
 */
final class Native {
    private Native() {
    }

    /** Unsafe-backed loads and stores on native addresses (jffi ships with jnr-ffi). */
    static final MemoryIO MEM = MemoryIO.getInstance();

    /** The runtime soname: only {@code libfuse3-3} is installed on the target machines, not the -dev symlink. */
    static final String LIBFUSE = "libfuse3.so.3";

    private static volatile LibFuse fuse;
    private static volatile LibC libc;

    /**
     * libfuse 3.14's low-level API as far as the binding uses it ({@code fuse_lowlevel.h}). errno is not
     * saved after calls: libfuse reports errors as negative return values.
     */
    public interface LibFuse {
        @intptr_t long fuse_session_new(@intptr_t long args, @intptr_t long ops, @size_t long opSize, @intptr_t long userdata);

        int fuse_session_mount(@intptr_t long se, String mountpoint);

        int fuse_session_receive_buf(@intptr_t long se, @intptr_t long buf);

        void fuse_session_process_buf(@intptr_t long se, @intptr_t long buf);

        void fuse_session_exit(@intptr_t long se);

        void fuse_session_unmount(@intptr_t long se);

        void fuse_session_destroy(@intptr_t long se);

        void fuse_opt_free_args(@intptr_t long args);

        @intptr_t long fuse_req_ctx(@intptr_t long req);

        int fuse_reply_err(@intptr_t long req, int err);

        void fuse_reply_none(@intptr_t long req);

        int fuse_reply_entry(@intptr_t long req, @intptr_t long entryParam);

        int fuse_reply_create(@intptr_t long req, @intptr_t long entryParam, @intptr_t long fi);

        int fuse_reply_attr(@intptr_t long req, @intptr_t long stat, double attrTimeout);

        int fuse_reply_readlink(@intptr_t long req, @intptr_t long link);

        int fuse_reply_open(@intptr_t long req, @intptr_t long fi);

        int fuse_reply_write(@intptr_t long req, @size_t long count);

        int fuse_reply_buf(@intptr_t long req, @intptr_t long buf, @size_t long size);

        int fuse_reply_statfs(@intptr_t long req, @intptr_t long statvfs);

        int fuse_reply_xattr(@intptr_t long req, @size_t long count);

        int fuse_reply_lseek(@intptr_t long req, @off_t long off);

        int fuse_reply_ioctl(@intptr_t long req, int result, @intptr_t long buf, @size_t long size);

        @size_t long fuse_add_direntry(@intptr_t long req, @intptr_t long buf, @size_t long bufsize,
                                       @intptr_t long name, @intptr_t long stat, @off_t long off);

        int fuse_lowlevel_notify_inval_inode(@intptr_t long se, @u_int64_t long ino, @off_t long off, @off_t long len);

        int fuse_lowlevel_notify_inval_entry(@intptr_t long se, @u_int64_t long parent, @In byte[] name, @size_t long namelen);
    }

    /** The libc functions the session needs besides libfuse. */
    public interface LibC {
        int MNT_FORCE = 1;
        int MNT_DETACH = 2;

        @SaveError
        int umount2(String target, int flags);

        void free(@intptr_t long ptr);

        int geteuid();
    }

    /** Loads libfuse on first use; throws {@link UnsatisfiedLinkError} (again on every call) while it is missing. */
    static LibFuse fuse() {
        LibFuse f = fuse;
        if (f == null) {
            synchronized (Native.class) {
                f = fuse;
                if (f == null) {
                    f = LibraryLoader.create(LibFuse.class)
                            .option(LibraryOption.IgnoreError, true)
                            .failImmediately()
                            .load(LIBFUSE);
                    fuse = f;
                }
            }
        }
        return f;
    }

    static LibC libc() {
        LibC c = libc;
        if (c == null) {
            synchronized (Native.class) {
                c = libc;
                if (c == null) {
                    c = LibraryLoader.create(LibC.class).failImmediately().load("c");
                    libc = c;
                }
            }
        }
        return c;
    }

    /** errno of the last {@code @SaveError} call on this thread. */
    static int lastErrno() {
        return jnr.ffi.Runtime.getSystemRuntime().getLastError();
    }
}
