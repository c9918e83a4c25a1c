package io.dedupfs.rados;

import com.kenai.jffi.MemoryIO;
import jnr.ffi.LibraryLoader;
import jnr.ffi.annotations.In;
import jnr.ffi.annotations.Out;

/**
 * The librados C API ({@code rados/librados.h}, Ceph 16) as far as {@link RadosPool} calls it.
 *
 * <p>Handles and pointers are plain {@code long} addresses (x86_64 and arm64 Linux only); a pointer
 * argument that librados fills in during the call is a {@code long[]} or {@code byte[]} of jnr-ffi;
 * one that librados would fill in later, while an operation runs, is passed as 0 (NULL), so no
 * native memory outlives a call. librados copies every buffer and string it keeps in an operation
 * when the operation is built. Functions return 0 or a negative errno. The interface is public only
 * because jnr-ffi generates its implementation in another package.
 */
final class Librados {
  private Librados() {}

  /** The runtime soname: librados2 (pulled in by ceph-common) has no -dev symlink. */
  static final String LIBRADOS = "librados.so.2";

  static final int CREATE_EXCLUSIVE = 1;
  static final int CREATE_IDEMPOTENT = 0;
  static final byte CMPXATTR_OP_EQ = 1;
  static final byte CMPXATTR_OP_GT = 3;
  static final int OPERATION_NOFLAG = 0;

  /** Unsafe-backed reads of native memory (jffi ships with jnr-ffi). */
  static final MemoryIO MEM = MemoryIO.getInstance();

  private static volatile Lib lib;

  /** The functions, in the order of librados.h. */
  public interface Lib {
    int rados_create2(@Out long[] cluster, String clusterName, String name, long flags);

    int rados_connect(long cluster);

    void rados_shutdown(long cluster);

    int rados_wait_for_latest_osdmap(long cluster);

    int rados_cluster_fsid(long cluster, @Out byte[] buf, long len);

    int rados_mon_command(
        long cluster,
        @In String[] cmd,
        long cmdlen,
        @In byte[] inbuf,
        long inbuflen,
        @Out long[] outbuf,
        @Out long[] outbuflen,
        @Out long[] outs,
        @Out long[] outslen);

    void rados_buffer_free(long buf);

    int rados_conf_read_file(long cluster, String path);

    int rados_conf_set(long cluster, String option, String value);

    int rados_ioctx_create(long cluster, String poolName, @Out long[] io);

    void rados_ioctx_destroy(long io);

    int rados_nobjects_list_open(long io, @Out long[] ctx);

    int rados_nobjects_list_next(long ctx, @Out long[] entry, long key, long nspace);

    void rados_nobjects_list_close(long ctx);

    int rados_read(long io, String oid, @Out byte[] buf, long len, long off);

    int rados_omap_get_next(long iter, @Out long[] key, @Out long[] val, @Out long[] len);

    void rados_omap_get_end(long iter);

    int rados_stat(long io, String oid, @Out long[] size, long mtime);

    long rados_create_write_op();

    void rados_release_write_op(long op);

    void rados_write_op_assert_exists(long op);

    void rados_write_op_omap_cmp(
        long op, String key, byte comparison, @In byte[] val, long valLen, long prval);

    void rados_write_op_create(long op, int exclusive, String category);

    void rados_write_op_write_full(long op, @In byte[] buf, long len);

    void rados_write_op_remove(long op);

    /** keys, vals: addresses of {@code num} C string pointers; lens: of {@code num} size_t. */
    void rados_write_op_omap_set(long op, long keys, long vals, long lens, long num);

    /** keys: the address of {@code num} C string pointers. */
    void rados_write_op_omap_rm_keys(long op, long keys, long num);

    void rados_write_op_exec(
        long op, String cls, String method, @In byte[] in, long inLen, long prval);

    int rados_write_op_operate(long op, long io, String oid, long mtime, int flags);

    long rados_create_read_op();

    void rados_release_read_op(long op);

    void rados_read_op_omap_get_vals2(
        long op,
        String startAfter,
        String filterPrefix,
        long maxReturn,
        @Out long[] iter,
        long more,
        long prval);

    int rados_read_op_operate(long op, long io, String oid, int flags);
  }

  /**
   * Loads librados on first use; throws {@link UnsatisfiedLinkError} (again on every call) while it
   * is missing.
   */
  static Lib lib() {
    Lib l = lib;
    if (l == null) {
      synchronized (Librados.class) {
        l = lib;
        if (l == null) {
          l = LibraryLoader.create(Lib.class).failImmediately().load(LIBRADOS);
          lib = l;
        }
      }
    }
    return l;
  }
}
