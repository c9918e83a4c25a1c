package io.dedupfs.fs.fuse;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * How to mount and serve a {@link FuseSession}. Made with {@link #builder()}, e.g. {@code
 * MountOptions.builder().fsname("store").threads(4).build()}.
 *
 * @param fsname first field of /proc/mounts (the "device"); empty for libfuse's default
 * @param subtype mount type becomes {@code fuse.<subtype>}; empty for plain {@code fuse}
 * @param allowOther let users other than the mounting one access the mount
 * @param readOnly mount read-only
 * @param defaultPermissions let the kernel check permissions from the mode bits (no access() calls)
 * @param extraOptions further {@code -o} options passed to libfuse verbatim, one per element
 * @param threads worker threads, each serving one request at a time
 * @param writebackCache ask for {@code FUSE_CAP_WRITEBACK_CACHE} in INIT when the kernel offers it
 * @param ioUring serve requests through io_uring ({@link Ring}) when the kernel offers it (the
 *     default): {@code threads} workers spread over the CPUs' queues, besides the {@code threads}
 *     that read /dev/fuse
 * @param attrTimeout seconds the kernel may cache attributes
 * @param entryTimeout seconds the kernel may cache name lookups
 * @param initTimeout how long {@link FuseSession#mount} waits for the kernel's INIT
 * @param unmountTimeout how long {@link FuseSession#close} waits for a busy mount to become idle
 *     before aborting the connection
 * @param debug libfuse's debug output on stderr ({@code -o debug})
 */
public record MountOptions(
    String fsname,
    String subtype,
    boolean allowOther,
    boolean readOnly,
    boolean defaultPermissions,
    List<String> extraOptions,
    int threads,
    boolean writebackCache,
    boolean ioUring,
    double attrTimeout,
    double entryTimeout,
    Duration initTimeout,
    Duration unmountTimeout,
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
    return builder().build();
  }

  /** A builder starting from {@link #defaults()}. */
  public static Builder builder() {
    return new Builder();
  }

  /** A builder starting from these options. */
  public Builder toBuilder() {
    return new Builder(this);
  }

  /** Builds {@link MountOptions}; each setter names the record component it sets. */
  public static final class Builder {
    private String fsname = "dedupfs";
    private String subtype = "";
    private boolean allowOther;
    private boolean readOnly;
    private boolean defaultPermissions = true;
    private List<String> extraOptions = List.of();
    private int threads = 8;
    private boolean writebackCache;
    private boolean ioUring = true;
    private double attrTimeout = 1.0;
    private double entryTimeout = 1.0;
    private Duration initTimeout = Duration.ofSeconds(10);
    private Duration unmountTimeout = Duration.ofSeconds(5);
    private boolean debug;

    private Builder() {}

    private Builder(MountOptions o) {
      fsname = o.fsname;
      subtype = o.subtype;
      allowOther = o.allowOther;
      readOnly = o.readOnly;
      defaultPermissions = o.defaultPermissions;
      extraOptions = o.extraOptions;
      threads = o.threads;
      writebackCache = o.writebackCache;
      ioUring = o.ioUring;
      attrTimeout = o.attrTimeout;
      entryTimeout = o.entryTimeout;
      initTimeout = o.initTimeout;
      unmountTimeout = o.unmountTimeout;
      debug = o.debug;
    }

    public Builder fsname(String fsname) {
      this.fsname = fsname;
      return this;
    }

    public Builder subtype(String subtype) {
      this.subtype = subtype;
      return this;
    }

    public Builder allowOther(boolean allowOther) {
      this.allowOther = allowOther;
      return this;
    }

    public Builder readOnly(boolean readOnly) {
      this.readOnly = readOnly;
      return this;
    }

    public Builder defaultPermissions(boolean defaultPermissions) {
      this.defaultPermissions = defaultPermissions;
      return this;
    }

    public Builder extraOptions(List<String> extraOptions) {
      this.extraOptions = extraOptions;
      return this;
    }

    public Builder threads(int threads) {
      this.threads = threads;
      return this;
    }

    public Builder writebackCache(boolean writebackCache) {
      this.writebackCache = writebackCache;
      return this;
    }

    public Builder ioUring(boolean ioUring) {
      this.ioUring = ioUring;
      return this;
    }

    public Builder attrTimeout(double attrTimeout) {
      this.attrTimeout = attrTimeout;
      return this;
    }

    public Builder entryTimeout(double entryTimeout) {
      this.entryTimeout = entryTimeout;
      return this;
    }

    public Builder initTimeout(Duration initTimeout) {
      this.initTimeout = initTimeout;
      return this;
    }

    public Builder unmountTimeout(Duration unmountTimeout) {
      this.unmountTimeout = unmountTimeout;
      return this;
    }

    public Builder debug(boolean debug) {
      this.debug = debug;
      return this;
    }

    /** The options; checked as the record's constructor checks them. */
    public MountOptions build() {
      return new MountOptions(
          fsname,
          subtype,
          allowOther,
          readOnly,
          defaultPermissions,
          extraOptions,
          threads,
          writebackCache,
          ioUring,
          attrTimeout,
          entryTimeout,
          initTimeout,
          unmountTimeout,
          debug);
    }
  }

  /**
   * The argument vector for {@code fuse_session_new}: a program name, then one {@code -o} per
   * option. Commas and backslashes in values are escaped because libfuse splits {@code -o} lists on
   * commas.
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
