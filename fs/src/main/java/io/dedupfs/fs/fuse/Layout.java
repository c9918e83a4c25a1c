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
  static final int OUT_UNIQUE = 8;

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

  /**
   * {@code fuse_init_in.flags2} and {@code fuse_init_out.flags2}: the flags above bit 31, read by
   * the kernel when the reply's flags have {@code FUSE_INIT_EXT}.
   */
  static final int INIT_IN_FLAGS2 = 16;

  static final int INIT_OUT_FLAGS2 = 32;

  /** {@code fuse_init_out}: u32 max_write at 20, u16 max_pages at 28. */
  static final int INIT_OUT_MAX_WRITE = 20;

  static final int INIT_OUT_MAX_PAGES = 28;
  static final int INIT_EXT = 1 << 30;

  /** {@code FUSE_OVER_IO_URING} (bit 41) in flags2: requests may come through io_uring. */
  static final int INIT2_OVER_IO_URING = 1 << 9;

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

  /**
   * FUSE over io_uring ({@code fuse_kernel.h} 7.42, Linux 6.14 and later). A ring entry is two
   * buffers: {@code struct fuse_uring_req_header} (in_out[128]: the in header, then the reply's out
   * header; op_in[128]: the operation's own header; {@code struct fuse_uring_ent_in_out}: u64
   * flags, u64 commit_id, u32 payload_sz) and the payload (the other arguments, then the reply's).
   */
  static final int URING_HEADER_IN_OUT = 0;

  static final int URING_HEADER_OP_IN = 128;
  static final int URING_HEADER_OP_IN_SIZE = 128;
  static final int URING_HEADER_COMMIT_ID = 256 + 8;
  static final int URING_HEADER_PAYLOAD_SZ = 256 + 16;
  static final int URING_HEADER_SIZEOF = 288;

  /** {@code enum fuse_uring_cmd}. */
  static final int URING_CMD_REGISTER = 1;

  static final int URING_CMD_COMMIT_AND_FETCH = 2;

  /**
   * {@code struct io_uring_sqe} of a ring set up with {@code IORING_SETUP_SQE128}: u8 opcode, u8
   * flags, u16 ioprio, s32 fd, u32 cmd_op, u32 pad, u64 addr, u32 len, u32 uring_cmd_flags, u64
   * user_data, ...; the command's 80 bytes from byte 48 ({@code struct fuse_uring_cmd_req}: u64
   * flags, u64 commit_id, u16 qid).
   */
  static final int SQE_SIZEOF = 128;

  static final int SQE_OPCODE = 0;
  static final int SQE_FD = 4;
  static final int SQE_CMD_OP = 8;
  static final int SQE_ADDR = 16;
  static final int SQE_LEN = 24;
  static final int SQE_USER_DATA = 32;
  static final int SQE_CMD_COMMIT_ID = 48 + 8;
  static final int SQE_CMD_QID = 48 + 16;
  static final int IORING_OP_URING_CMD = 46;
  static final int IORING_SETUP_SQE128 = 1 << 10;
  static final int IORING_ENTER_GETEVENTS = 1;

  /** {@code struct io_uring_cqe}: u64 user_data, s32 res, u32 flags. */
  static final int CQE_RES = 8;

  static final int CQE_SIZEOF = 16;

  /**
   * liburing 2.3's {@code struct io_uring} (216 bytes): {@code struct io_uring_sq} (khead, ktail,
   * kring_mask, kring_entries, kflags, kdropped, array, sqes pointers, ...; 104 bytes), then {@code
   * struct io_uring_cq} (khead, ktail, kring_mask, kring_entries, kflags, koverflow, cqes, ...; 88
   * bytes), then unsigned flags and int ring_fd. {@code struct io_uring_params} is 120 bytes, flags
   * at 8.
   */
  static final int URING_SQ_KHEAD = 0;

  static final int URING_SQ_KTAIL = 8;
  static final int URING_SQ_KRING_MASK = 16;
  static final int URING_SQ_ARRAY = 48;
  static final int URING_SQ_SQES = 56;
  static final int URING_CQ_KHEAD = 104;
  static final int URING_CQ_KTAIL = 104 + 8;
  static final int URING_CQ_KRING_MASK = 104 + 16;
  static final int URING_CQ_CQES = 104 + 48;
  static final int URING_RING_FD = 196;
  static final int URING_SIZEOF = 216;
  static final int URING_PARAMS_FLAGS = 8;
  static final int URING_PARAMS_SIZEOF = 120;

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
