package io.dedupfs.fs.fuse;

/**
 * Byte offsets of the C structures the binding reads and writes, for libfuse 3.14 on x86_64 (LP64).
 *
 * <p>Taken from {@code /usr/include/fuse3/*.h} (libfuse3-dev 3.14.0, Debian bookworm) and glibc's
 * {@code struct stat}/{@code struct statvfs}, and checked against {@code offsetof} by {@code
 * StructLayoutTest} (which compiles a C program when gcc and the headers are present). Plain
 * offsets instead of jnr {@code Struct} subclasses: every access is then a single {@code MemoryIO}
 * load or store on an address, with no per-request objects.
 */
final class Layout {
  private Layout() {}

  /**
   * {@code struct fuse_file_info}: int flags; 32 bits of bitfields; 32 bits padding; u64 fh; ...
   */
  static final int FI_FLAGS = 0;

  static final int FI_BITS = 4;
  static final int FI_FH = 16;
  static final int FI_SIZE = 40;

  /** Bit positions in the bitfield word (little-endian, declaration order). */
  static final int FI_BIT_DIRECT_IO = 1 << 1;

  static final int FI_BIT_KEEP_CACHE = 1 << 2;
  static final int FI_BIT_NONSEEKABLE = 1 << 4;
  static final int FI_BIT_CACHE_READDIR = 1 << 6;
  static final int FI_BIT_NOFLUSH = 1 << 7;

  /** {@code struct stat} (x86_64 glibc). */
  static final int ST_INO = 8;

  static final int ST_NLINK = 16;
  static final int ST_MODE = 24;
  static final int ST_UID = 28;
  static final int ST_GID = 32;
  static final int ST_RDEV = 40;
  static final int ST_SIZE = 48;
  static final int ST_BLKSIZE = 56;
  static final int ST_BLOCKS = 64;
  static final int ST_ATIM = 72;
  static final int ST_MTIM = 88;
  static final int ST_CTIM = 104;
  static final int ST_SIZEOF = 144;

  /** {@code struct statvfs} (x86_64 glibc). */
  static final int SV_BSIZE = 0;

  static final int SV_FRSIZE = 8;
  static final int SV_BLOCKS = 16;
  static final int SV_BFREE = 24;
  static final int SV_BAVAIL = 32;
  static final int SV_FILES = 40;
  static final int SV_FFREE = 48;
  static final int SV_FAVAIL = 56;
  static final int SV_NAMEMAX = 80;
  static final int SV_SIZEOF = 112;

  /**
   * {@code struct fuse_entry_param}: ino, generation, struct stat attr, double attr_timeout,
   * entry_timeout.
   */
  static final int EP_INO = 0;

  static final int EP_GENERATION = 8;
  static final int EP_ATTR = 16;
  static final int EP_ATTR_TIMEOUT = 160;
  static final int EP_ENTRY_TIMEOUT = 168;
  static final int EP_SIZEOF = 176;

  /** {@code struct fuse_ctx}: uid, gid, pid, umask. */
  static final int CTX_UID = 0;

  static final int CTX_GID = 4;
  static final int CTX_PID = 8;
  static final int CTX_UMASK = 12;

  /** {@code struct fuse_conn_info}: ten unsigned ints, then reserved[22]. */
  static final int CONN_PROTO_MAJOR = 0;

  static final int CONN_PROTO_MINOR = 4;
  static final int CONN_MAX_WRITE = 8;
  static final int CONN_MAX_READ = 12;
  static final int CONN_MAX_READAHEAD = 16;
  static final int CONN_CAPABLE = 20;
  static final int CONN_WANT = 24;
  static final int CONN_MAX_BACKGROUND = 28;
  static final int CONN_CONGESTION_THRESHOLD = 32;
  static final int CONN_TIME_GRAN = 36;

  /** {@code struct fuse_buf}: size_t size; enum flags; void *mem; int fd; off_t pos. */
  static final int BUF_SIZE = 0;

  static final int BUF_MEM = 16;
  static final int BUF_SIZEOF = 40;

  /**
   * The kernel's own messages ({@code fuse_kernel.h}, protocol 7.38 as libfuse 3.14 ships it), for
   * what libfuse 3.14 does not pass on: a request starts with {@code struct fuse_in_header} (u32
   * len, u32 opcode, u64 unique, u64 nodeid, u32 uid, gid, pid, padding), then the operation's
   * arguments; a reply is {@code struct fuse_out_header} (u32 len, i32 error, u64 unique), then the
   * operation's answer.
   */
  static final int IN_HEADER_SIZEOF = 40;

  static final int IN_OPCODE = 4;
  static final int OUT_ERROR = 4;

  /** Opcodes ({@code enum fuse_opcode}). */
  static final int OPCODE_SETATTR = 4;

  static final int OPCODE_OPEN = 14;
  static final int OPCODE_WRITE = 16;
  static final int OPCODE_INIT = 26;
  static final int OPCODE_CREATE = 35;

  /**
   * {@code struct fuse_init_in} and {@code fuse_init_out}: u32 major, minor, max_readahead, flags.
   */
  static final int INIT_IN_FLAGS = 12;

  static final int INIT_OUT_FLAGS = 12;

  /** {@code FUSE_HANDLE_KILLPRIV_V2}: the filesystem drops set-user-ID bits and capabilities. */
  static final int INIT_HANDLE_KILLPRIV_V2 = 1 << 28;

  /** {@code struct fuse_setattr_in}: u32 valid first; {@code FATTR_KILL_SUIDGID} in it. */
  static final int SETATTR_VALID = 0;

  static final int FATTR_KILL_SUIDGID = 1 << 11;

  /** {@code struct fuse_write_in}: u64 fh, u64 offset, u32 size, u32 write_flags. */
  static final int WRITE_FLAGS = 20;

  static final int WRITE_KILL_SUIDGID = 1 << 2;

  /**
   * {@code struct fuse_open_in} (u32 flags, open_flags) and {@code fuse_create_in} (u32 flags,
   * mode, umask, open_flags).
   */
  static final int OPEN_OPEN_FLAGS = 4;

  static final int CREATE_OPEN_FLAGS = 12;
  static final int OPEN_KILL_SUIDGID = 1 << 0;

  /** {@code struct iovec}: void *iov_base; size_t iov_len. */
  static final int IOV_BASE = 0;

  static final int IOV_LEN = 8;
  static final int IOV_SIZEOF = 16;

  /**
   * {@code struct fuse_custom_io} (libfuse 3.14): writev, read, splice_receive, splice_send
   * function pointers.
   */
  static final int CUSTOM_IO_WRITEV = 0;

  static final int CUSTOM_IO_READ = 8;
  static final int CUSTOM_IO_SIZEOF = 32;

  /** {@code struct fuse_forget_data}: ino, nlookup. */
  static final int FORGET_INO = 0;

  static final int FORGET_NLOOKUP = 8;
  static final int FORGET_SIZEOF = 16;

  /** {@code struct fuse_args}: int argc; char **argv; int allocated. */
  static final int ARGS_ARGC = 0;

  static final int ARGS_ARGV = 8;
  static final int ARGS_ALLOCATED = 16;
  static final int ARGS_SIZEOF = 24;

  /**
   * {@code struct fuse_lowlevel_ops}: function pointers in declaration order (3.14 has 44). The
   * index times 8 is the offset.
   */
  enum Op {
    INIT,
    DESTROY,
    LOOKUP,
    FORGET,
    GETATTR,
    SETATTR,
    READLINK,
    MKNOD,
    MKDIR,
    UNLINK,
    RMDIR,
    SYMLINK,
    RENAME,
    LINK,
    OPEN,
    READ,
    WRITE,
    FLUSH,
    RELEASE,
    FSYNC,
    OPENDIR,
    READDIR,
    RELEASEDIR,
    FSYNCDIR,
    STATFS,
    SETXATTR,
    GETXATTR,
    LISTXATTR,
    REMOVEXATTR,
    ACCESS,
    CREATE,
    GETLK,
    SETLK,
    BMAP,
    IOCTL,
    POLL,
    WRITE_BUF,
    RETRIEVE_REPLY,
    FORGET_MULTI,
    FLOCK,
    FALLOCATE,
    READDIRPLUS,
    COPY_FILE_RANGE,
    LSEEK;

    int offset() {
      return ordinal() * 8;
    }
  }

  static final int OPS_SIZEOF = Op.values().length * 8;
}
