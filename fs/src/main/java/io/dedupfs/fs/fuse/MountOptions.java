package io.dedupfs.fs.fuse;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * How to mount and serve a {@link FuseSession}.
 *
 * @param fsname             first field of /proc/mounts (the "device"); empty for libfuse's default
 * @param subtype            mount type becomes {@code fuse.<subtype>}; empty for plain {@code fuse}
 * @param allowOther         let users other than the mounting one access the mount
 * @param readOnly           mount read-only
 * @param defaultPermissions let the kernel check permissions from the mode bits (no access() calls)
 * @param extraOptions       further {@code -o} options passed to libfuse verbatim, one per element
 * @param threads            worker threads, each serving one request at a time
 * @param writebackCache     ask for {@code FUSE_CAP_WRITEBACK_CACHE} in INIT when the kernel offers it
 * @param attrTimeout        seconds the kernel may cache attributes
 * @param entryTimeout       seconds the kernel may cache name lookups
 * @param initTimeout        how long {@link FuseSession#mount} waits for the kernel's INIT
 * @param unmountTimeout     how long {@link FuseSession#close} waits for a busy mount to become idle before
 *                           aborting the connection
 * @param debug              libfuse's debug output on stderr ({@code -o debug})
 */
public record MountOptions(String fsname, String subtype, boolean allowOther, boolean readOnly,
                           boolean defaultPermissions, List<String> extraOptions, int threads, boolean writebackCache,
                           double attrTimeout, double entryTimeout, Duration initTimeout, Duration unmountTimeout,
                           boolean debug) {

    public MountOptions {
        Objects.requireNonNull(fsname, "fsname");
        Objects.requireNonNull(subtype, "subtype");
        extraOptions = List.copyOf(extraOptions);
        Objects.requireNonNull(initTimeout, "initTimeout");
        Objects.requireNonNull(unmountTimeout, "unmountTimeout");
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be at least 1: " + threads);
        }
    }

    /** fsname {@code dedupfs}, default_permissions, 8 threads, 1 s caches, no writeback cache. */
    public static MountOptions defaults() {
        return new MountOptions("dedupfs", "", false, false, true, List.of(), 8, false, 1.0, 1.0,
                Duration.ofSeconds(10), Duration.ofSeconds(5), false);
    }

    public MountOptions withFsname(String fsname) {
        return new MountOptions(fsname, subtype, allowOther, readOnly, defaultPermissions, extraOptions, threads,
                writebackCache, attrTimeout, entryTimeout, initTimeout, unmountTimeout, debug);
    }

    public MountOptions withSubtype(String subtype) {
        return new MountOptions(fsname, subtype, allowOther, readOnly, defaultPermissions, extraOptions, threads,
                writebackCache, attrTimeout, entryTimeout, initTimeout, unmountTimeout, debug);
    }

    public MountOptions withAllowOther(boolean allowOther) {
        return new MountOptions(fsname, subtype, allowOther, readOnly, defaultPermissions, extraOptions, threads,
                writebackCache, attrTimeout, entryTimeout, initTimeout, unmountTimeout, debug);
    }

    public MountOptions withReadOnly(boolean readOnly) {
        return new MountOptions(fsname, subtype, allowOther, readOnly, defaultPermissions, extraOptions, threads,
                writebackCache, attrTimeout, entryTimeout, initTimeout, unmountTimeout, debug);
    }

    public MountOptions withDefaultPermissions(boolean defaultPermissions) {
        return new MountOptions(fsname, subtype, allowOther, readOnly, defaultPermissions, extraOptions, threads,
                writebackCache, attrTimeout, entryTimeout, initTimeout, unmountTimeout, debug);
    }

    public MountOptions withExtraOptions(List<String> extraOptions) {
        return new MountOptions(fsname, subtype, allowOther, readOnly, defaultPermissions, extraOptions, threads,
                writebackCache, attrTimeout, entryTimeout, initTimeout, unmountTimeout, debug);
    }

    public MountOptions withThreads(int threads) {
        return new MountOptions(fsname, subtype, allowOther, readOnly, defaultPermissions, extraOptions, threads,
                writebackCache, attrTimeout, entryTimeout, initTimeout, unmountTimeout, debug);
    }

    public MountOptions withWritebackCache(boolean writebackCache) {
        return new MountOptions(fsname, subtype, allowOther, readOnly, defaultPermissions, extraOptions, threads,
                writebackCache, attrTimeout, entryTimeout, initTimeout, unmountTimeout, debug);
    }

    public MountOptions withTimeouts(double attrTimeout, double entryTimeout) {
        return new MountOptions(fsname, subtype, allowOther, readOnly, defaultPermissions, extraOptions, threads,
                writebackCache, attrTimeout, entryTimeout, initTimeout, unmountTimeout, debug);
    }

    public MountOptions withInitTimeout(Duration initTimeout) {
        return new MountOptions(fsname, subtype, allowOther, readOnly, defaultPermissions, extraOptions, threads,
                writebackCache, attrTimeout, entryTimeout, initTimeout, unmountTimeout, debug);
    }

    public MountOptions withUnmountTimeout(Duration unmountTimeout) {
        return new MountOptions(fsname, subtype, allowOther, readOnly, defaultPermissions, extraOptions, threads,
                writebackCache, attrTimeout, entryTimeout, initTimeout, unmountTimeout, debug);
    }

    public MountOptions withDebug(boolean debug) {
        return new MountOptions(fsname, subtype, allowOther, readOnly, defaultPermissions, extraOptions, threads,
                writebackCache, attrTimeout, entryTimeout, initTimeout, unmountTimeout, debug);
    }

    /**
     * The argument vector for {@code fuse_session_new}: a program name, then one {@code -o} per option.
     * Commas and backslashes in values are escaped because libfuse splits {@code -o} lists on commas.
     */
    List<String> toArgs() {
        List<String> args = new ArrayList<>();
        args.add("dedupfs");
        if (!fsname.isEmpty()) {
            option(args, "fsname=" + escape(fsname));
        }
        if (!subtype.isEmpty()) {
            option(args, "subtype=" + escape(subtype));
        }
        if (allowOther) {
            option(args, "allow_other");
        }
        if (readOnly) {
            option(args, "ro");
        }
        if (defaultPermissions) {
            option(args, "default_permissions");
        }
        if (debug) {
            option(args, "debug");
        }
        extraOptions.forEach(o -> option(args, o));
        return args;
    }

    private static void option(List<String> args, String option) {
        args.add("-o");
        args.add(option);
    }

    private static String escape(String value) {
        return value.replace("\\", "\\\\").replace(",", "\\,");
    }
}
