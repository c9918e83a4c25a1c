package io.dedupfs.fs.fuse;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.lang.reflect.Modifier;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The offsets in {@link Layout} against the C compiler's: compiles a program that prints {@code
 * offsetof}/{@code sizeof} of every field the binding touches, with libfuse3's own headers. Skipped
 * where gcc or the headers (Debian's libfuse3-dev, which scripts/deps.sh installs) are missing.
 */
class StructLayoutTest {
  private static final String PROGRAM =
      """
      #define FUSE_USE_VERSION 35
      #include <fuse_lowlevel.h>
      #include <linux/fuse.h>
      #include <stddef.h>
      #include <stdio.h>
      #include <sys/stat.h>
      #include <sys/statvfs.h>
      #include <sys/uio.h>
      #define P(name, value) printf("%s %ld\\n", name, (long) (value))
      #define OP(field) P("OP_" #field, offsetof(struct fuse_lowlevel_ops, field))
      int main(void) {
        struct fuse_file_info fi = {0};
        P("FI_FLAGS", offsetof(struct fuse_file_info, flags));
        P("FI_FH", offsetof(struct fuse_file_info, fh));
        P("FI_SIZE", sizeof(struct fuse_file_info));
        fi.direct_io = 1; P("FI_BIT_DIRECT_IO", ((unsigned *) &fi)[1]); fi.direct_io = 0;
        fi.keep_cache = 1; P("FI_BIT_KEEP_CACHE", ((unsigned *) &fi)[1]); fi.keep_cache = 0;
        fi.nonseekable = 1; P("FI_BIT_NONSEEKABLE", ((unsigned *) &fi)[1]); fi.nonseekable = 0;
        fi.cache_readdir = 1; P("FI_BIT_CACHE_READDIR", ((unsigned *) &fi)[1]); fi.cache_readdir = 0;
        fi.noflush = 1; P("FI_BIT_NOFLUSH", ((unsigned *) &fi)[1]); fi.noflush = 0;
        P("ST_INO", offsetof(struct stat, st_ino)); P("ST_NLINK", offsetof(struct stat, st_nlink));
        P("ST_MODE", offsetof(struct stat, st_mode)); P("ST_UID", offsetof(struct stat, st_uid));
        P("ST_GID", offsetof(struct stat, st_gid)); P("ST_RDEV", offsetof(struct stat, st_rdev));
        P("ST_SIZE", offsetof(struct stat, st_size)); P("ST_BLKSIZE", offsetof(struct stat, st_blksize));
        P("ST_BLOCKS", offsetof(struct stat, st_blocks)); P("ST_ATIM", offsetof(struct stat, st_atim));
        P("ST_MTIM", offsetof(struct stat, st_mtim)); P("ST_CTIM", offsetof(struct stat, st_ctim));
        P("ST_SIZEOF", sizeof(struct stat));
        P("SV_BSIZE", offsetof(struct statvfs, f_bsize)); P("SV_FRSIZE", offsetof(struct statvfs, f_frsize));
        P("SV_BLOCKS", offsetof(struct statvfs, f_blocks)); P("SV_BFREE", offsetof(struct statvfs, f_bfree));
        P("SV_BAVAIL", offsetof(struct statvfs, f_bavail)); P("SV_FILES", offsetof(struct statvfs, f_files));
        P("SV_FFREE", offsetof(struct statvfs, f_ffree)); P("SV_FAVAIL", offsetof(struct statvfs, f_favail));
        P("SV_NAMEMAX", offsetof(struct statvfs, f_namemax)); P("SV_SIZEOF", sizeof(struct statvfs));
        P("EP_INO", offsetof(struct fuse_entry_param, ino));
        P("EP_GENERATION", offsetof(struct fuse_entry_param, generation));
        P("EP_ATTR", offsetof(struct fuse_entry_param, attr));
        P("EP_ATTR_TIMEOUT", offsetof(struct fuse_entry_param, attr_timeout));
        P("EP_ENTRY_TIMEOUT", offsetof(struct fuse_entry_param, entry_timeout));
        P("EP_SIZEOF", sizeof(struct fuse_entry_param));
        P("CTX_UID", offsetof(struct fuse_ctx, uid)); P("CTX_GID", offsetof(struct fuse_ctx, gid));
        P("CTX_PID", offsetof(struct fuse_ctx, pid)); P("CTX_UMASK", offsetof(struct fuse_ctx, umask));
        P("CONN_PROTO_MAJOR", offsetof(struct fuse_conn_info, proto_major));
        P("CONN_PROTO_MINOR", offsetof(struct fuse_conn_info, proto_minor));
        P("CONN_MAX_WRITE", offsetof(struct fuse_conn_info, max_write));
        P("CONN_MAX_READ", offsetof(struct fuse_conn_info, max_read));
        P("CONN_MAX_READAHEAD", offsetof(struct fuse_conn_info, max_readahead));
        P("CONN_CAPABLE", offsetof(struct fuse_conn_info, capable));
        P("CONN_WANT", offsetof(struct fuse_conn_info, want));
        P("CONN_MAX_BACKGROUND", offsetof(struct fuse_conn_info, max_background));
        P("CONN_CONGESTION_THRESHOLD", offsetof(struct fuse_conn_info, congestion_threshold));
        P("CONN_TIME_GRAN", offsetof(struct fuse_conn_info, time_gran));
        P("BUF_SIZE", offsetof(struct fuse_buf, size)); P("BUF_MEM", offsetof(struct fuse_buf, mem));
        P("BUF_SIZEOF", sizeof(struct fuse_buf));
        P("FORGET_INO", offsetof(struct fuse_forget_data, ino));
        P("FORGET_NLOOKUP", offsetof(struct fuse_forget_data, nlookup));
        P("FORGET_SIZEOF", sizeof(struct fuse_forget_data));
        P("ARGS_ARGC", offsetof(struct fuse_args, argc)); P("ARGS_ARGV", offsetof(struct fuse_args, argv));
        P("ARGS_ALLOCATED", offsetof(struct fuse_args, allocated)); P("ARGS_SIZEOF", sizeof(struct fuse_args));
        OP(init); OP(destroy); OP(lookup); OP(forget); OP(getattr); OP(setattr); OP(readlink); OP(mknod);
        OP(mkdir); OP(unlink); OP(rmdir); OP(symlink); OP(rename); OP(link); OP(open); OP(read); OP(write);
        OP(flush); OP(release); OP(fsync); OP(opendir); OP(readdir); OP(releasedir); OP(fsyncdir); OP(statfs);
        OP(setxattr); OP(getxattr); OP(listxattr); OP(removexattr); OP(access); OP(create); OP(getlk);
        OP(setlk); OP(bmap); OP(ioctl); OP(poll); OP(write_buf); OP(retrieve_reply); OP(forget_multi);
        OP(flock); OP(fallocate); OP(readdirplus); OP(copy_file_range); OP(lseek);
        P("OPS_SIZEOF", sizeof(struct fuse_lowlevel_ops));
        P("IN_HEADER_SIZEOF", sizeof(struct fuse_in_header));
        P("IN_OPCODE", offsetof(struct fuse_in_header, opcode));
        P("OUT_ERROR", offsetof(struct fuse_out_header, error));
        P("OPCODE_SETATTR", FUSE_SETATTR); P("OPCODE_OPEN", FUSE_OPEN); P("OPCODE_WRITE", FUSE_WRITE);
        P("OPCODE_INIT", FUSE_INIT); P("OPCODE_CREATE", FUSE_CREATE);
        P("INIT_IN_FLAGS", offsetof(struct fuse_init_in, flags));
        P("INIT_OUT_FLAGS", offsetof(struct fuse_init_out, flags));
        P("INIT_HANDLE_KILLPRIV_V2", FUSE_HANDLE_KILLPRIV_V2);
        P("SETATTR_VALID", offsetof(struct fuse_setattr_in, valid));
        P("FATTR_KILL_SUIDGID", FATTR_KILL_SUIDGID);
        P("WRITE_FLAGS", offsetof(struct fuse_write_in, write_flags));
        P("WRITE_KILL_SUIDGID", FUSE_WRITE_KILL_SUIDGID);
        P("OPEN_OPEN_FLAGS", offsetof(struct fuse_open_in, open_flags));
        P("CREATE_OPEN_FLAGS", offsetof(struct fuse_create_in, open_flags));
        P("OPEN_KILL_SUIDGID", FUSE_OPEN_KILL_SUIDGID);
        P("IOV_BASE", offsetof(struct iovec, iov_base)); P("IOV_LEN", offsetof(struct iovec, iov_len));
        P("IOV_SIZEOF", sizeof(struct iovec));
        P("CUSTOM_IO_WRITEV", offsetof(struct fuse_custom_io, writev));
        P("CUSTOM_IO_READ", offsetof(struct fuse_custom_io, read));
        P("CUSTOM_IO_SIZEOF", sizeof(struct fuse_custom_io));
        return 0;
      }
      """;

  /**
   * The io_uring structures {@link Ring} reads and writes, with liburing's headers (liburing-dev):
   * its {@code struct io_uring}, and the kernel's submission and completion entries. The FUSE ring
   * entry's own structures ({@code fuse_uring_req_header}, {@code fuse_uring_cmd_req}) are in no
   * header Debian bookworm ships (they came with Linux 6.14); Layout has them from the kernel's
   * {@code include/uapi/linux/fuse.h}.
   */
  private static final String URING_PROGRAM =
      """
      #include <liburing.h>
      #include <stddef.h>
      #include <stdio.h>
      #define P(name, value) printf("%s %ld\\n", name, (long) (value))
      #define SQE(field) offsetof(struct io_uring_sqe, field)
      int main(void) {
        P("SQE_SIZEOF", 2 * sizeof(struct io_uring_sqe)); /* IORING_SETUP_SQE128 */
        P("SQE_OPCODE", SQE(opcode)); P("SQE_FD", SQE(fd)); P("SQE_CMD_OP", SQE(cmd_op));
        P("SQE_ADDR", SQE(addr)); P("SQE_LEN", SQE(len)); P("SQE_USER_DATA", SQE(user_data));
        P("SQE_CMD_COMMIT_ID", SQE(cmd) + 8); P("SQE_CMD_QID", SQE(cmd) + 16);
        P("IORING_OP_URING_CMD", IORING_OP_URING_CMD);
        P("IORING_SETUP_SQE128", IORING_SETUP_SQE128);
        P("IORING_ENTER_GETEVENTS", IORING_ENTER_GETEVENTS);
        P("CQE_RES", offsetof(struct io_uring_cqe, res));
        P("CQE_SIZEOF", sizeof(struct io_uring_cqe));
        P("URING_SQ_KHEAD", offsetof(struct io_uring, sq.khead));
        P("URING_SQ_KTAIL", offsetof(struct io_uring, sq.ktail));
        P("URING_SQ_KRING_MASK", offsetof(struct io_uring, sq.kring_mask));
        P("URING_SQ_ARRAY", offsetof(struct io_uring, sq.array));
        P("URING_SQ_SQES", offsetof(struct io_uring, sq.sqes));
        P("URING_CQ_KHEAD", offsetof(struct io_uring, cq.khead));
        P("URING_CQ_KTAIL", offsetof(struct io_uring, cq.ktail));
        P("URING_CQ_KRING_MASK", offsetof(struct io_uring, cq.kring_mask));
        P("URING_CQ_CQES", offsetof(struct io_uring, cq.cqes));
        P("URING_RING_FD", offsetof(struct io_uring, ring_fd));
        P("URING_SIZEOF", sizeof(struct io_uring));
        P("URING_PARAMS_FLAGS", offsetof(struct io_uring_params, flags));
        P("URING_PARAMS_SIZEOF", sizeof(struct io_uring_params));
        return 0;
      }
      """;

  @TempDir Path dir;

  @Test
  void offsetsMatchTheCHeaders() throws Exception {
    assumeTrue(
        Files.isRegularFile(Path.of("/usr/include/fuse3/fuse_lowlevel.h")),
        "libfuse3-dev headers missing");
    checkAgainst(PROGRAM, "-I/usr/include/fuse3");
    assertThat(Layout.FI_BITS).as("the bitfield word follows flags").isEqualTo(4);
  }

  @Test
  void ringOffsetsMatchLiburing() throws Exception {
    assumeTrue(
        Files.isRegularFile(Path.of("/usr/include/liburing.h")), "liburing-dev headers missing");
    checkAgainst(URING_PROGRAM, "-I/usr/include");
  }

  /** Compiles and runs {@code program}, and checks each name and value it prints against Layout. */
  private void checkAgainst(String program, String includes) throws Exception {
    Path src = dir.resolve("layout.c");
    Path exe = dir.resolve("layout");
    Files.writeString(src, program);
    String compiled = run("gcc", includes, "-o", exe.toString(), src.toString());
    assumeTrue(Files.isExecutable(exe), "gcc could not compile the layout probe: " + compiled);

    Map<String, Long> c = new HashMap<>();
    for (String line : run(exe.toString()).split("\n")) {
      String[] f = line.trim().split(" ");
      c.put(f[0], Long.parseLong(f[1]));
    }
    Map<String, Long> ours = new HashMap<>();
    for (var field : Layout.class.getDeclaredFields()) {
      if (field.getType() == int.class && Modifier.isStatic(field.getModifiers())) {
        field.setAccessible(true);
        ours.put(field.getName(), (long) field.getInt(null));
      }
    }
    for (Layout.Op op : Layout.Op.values()) {
      ours.put("OP_" + op.name().toLowerCase(), (long) op.offset());
    }
    for (var e : c.entrySet()) {
      assertThat(ours).as("Layout has " + e.getKey()).containsKey(e.getKey());
      assertThat(ours.get(e.getKey())).as(e.getKey()).isEqualTo(e.getValue());
    }
    assertThat(c).as("what the probe printed").isNotEmpty();
  }

  private static String run(String... cmd) throws IOException, InterruptedException {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    p.waitFor(60, TimeUnit.SECONDS);
    return out;
  }
}
