/*
 * powercut.c: an LD_PRELOAD library for the power-cut tests (PowerCut.java). It lets a process
 * write its files as usual and journals, for the files under one directory, every write and every
 * moment a write became durable, so that the test can rebuild the directory as a power cut at any
 * moment would leave it: every write the disk had been told to keep, and of the others none or
 * any.
 *
 * Environment: POWERCUT_DIR, the directory (an absolute path without a trailing slash);
 * POWERCUT_JOURNAL, the journal file; POWERCUT_REPORT=1 journals what the process writes to its
 * standard output (a regular file) too, as a file with an empty name, so that the journal says what
 * the process had reported at each of its moments. Build:
 * gcc -shared -fPIC -O2 -o libpowercut.so powercut.c -ldl (PowerCut.build does).
 *
 * The journal is a sequence of entries, each a 32-byte header of four little-endian fields, then
 * its bytes:
 *   u32 type, u32 file, u64 seq, u64 arg, u64 len
 *   'N' file named: len bytes of its path below POWERCUT_DIR
 *   'W' write of len bytes at offset arg, its bytes follow; seq numbers the writes and truncates
 *   'D' the same, written through a descriptor opened with O_DSYNC or O_SYNC: durable once written
 *   'T' truncate to arg bytes
 *   'S' an fsync or fdatasync of the file returned: every 'W' and 'T' of it numbered below arg (the
 *       next number when the call began) is durable
 * An O_DSYNC write makes only its own range durable (Linux syncs that range), not earlier writes.
 * A write to a tracked file holds the journal's lock from the call until it is journaled, so the
 * number an fsync takes when it begins is above every write that had returned by then.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FILES 4096

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off64_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev64)(int, const struct iovec *, int, off64_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_ftruncate64)(int, off64_t);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char prefix[PATH_MAX];
static size_t prefix_len;
static int journal = -1;
static int report;
static uint64_t next_seq;

/* Files seen so far, tracked (under the directory) or not; guarded by lock. */
static struct {
  dev_t dev;
  ino_t ino;
  int tracked;
} files[MAX_FILES];
static int nfiles;

__attribute__((constructor)) static void init(void) {
  real_write = dlsym(RTLD_NEXT, "write");
  real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
  real_writev = dlsym(RTLD_NEXT, "writev");
  real_pwritev64 = dlsym(RTLD_NEXT, "pwritev64");
  real_fsync = dlsym(RTLD_NEXT, "fsync");
  real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
  real_ftruncate64 = dlsym(RTLD_NEXT, "ftruncate64");
  const char *dir = getenv("POWERCUT_DIR");
  const char *path = getenv("POWERCUT_JOURNAL");
  if (dir == NULL || path == NULL || strlen(dir) + 2 > sizeof prefix) {
    return;
  }
  snprintf(prefix, sizeof prefix, "%s/", dir);
  prefix_len = strlen(prefix);
  const char *r = getenv("POWERCUT_REPORT");
  report = r != NULL && strcmp(r, "1") == 0;
  journal = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
}

static void put_all(const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = real_write(journal, c, n);
    if (w <= 0) {
      abort(); /* a journal with a hole would rebuild the wrong files */
    }
    c += w;
    n -= (size_t)w;
  }
}

static void put_header(uint32_t type, uint32_t file, uint64_t seq, uint64_t arg, uint64_t len) {
  uint64_t h[4] = {((uint64_t)file << 32) | type, seq, arg, len}; /* x86-64: little-endian */
  put_all(h, sizeof h);
}

/* The journal's number for the file open on fd, or -1 when it is neither under the directory nor
 * the standard output journaled as the report. Caller holds lock. */
static int file_of(int fd) {
  struct stat st;
  if (journal < 0 || fd == journal || (fd <= 2 && !(fd == 1 && report)) || fstat(fd, &st) != 0 ||
      !S_ISREG(st.st_mode)) {
    return -1;
  }
  for (int i = 0; i < nfiles; i++) {
    if (files[i].dev == st.st_dev && files[i].ino == st.st_ino) {
      return files[i].tracked ? i : -1;
    }
  }
  if (nfiles == MAX_FILES) {
    abort();
  }
  char link[64], path[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  int i = nfiles++;
  files[i].dev = st.st_dev;
  files[i].ino = st.st_ino;
  if (fd == 1 && report) {
    files[i].tracked = 1;
    put_header('N', (uint32_t)i, 0, 0, 0);
    return i;
  }
  files[i].tracked = n > (ssize_t)prefix_len && strncmp(path, prefix, prefix_len) == 0;
  if (!files[i].tracked) {
    return -1;
  }
  put_header('N', (uint32_t)i, 0, 0, (uint64_t)n - prefix_len);
  put_all(path + prefix_len, (size_t)n - prefix_len);
  return i;
}

static uint32_t write_type(int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl != -1 && (fl & (O_DSYNC | O_SYNC)) ? 'D' : 'W';
}

/* Journals what a write of ret bytes from iov at offset wrote. Caller holds lock. */
static void note_write(int file, uint32_t type, off64_t at, const struct iovec *iov, int cnt,
                       ssize_t ret) {
  if (ret <= 0) {
    return;
  }
  put_header(type, (uint32_t)file, next_seq++, (uint64_t)at, (uint64_t)ret);
  size_t left = (size_t)ret;
  for (int i = 0; i < cnt && left > 0; i++) {
    size_t n = iov[i].iov_len < left ? iov[i].iov_len : left;
    put_all(iov[i].iov_base, n);
    left -= n;
  }
}

/* A write, journaled under lock when its file is tracked; at < 0: at the descriptor's offset. */
static ssize_t tracked_write(int fd, const struct iovec *iov, int cnt, off64_t at) {
  pthread_mutex_lock(&lock);
  int file = file_of(fd);
  if (file < 0) {
    pthread_mutex_unlock(&lock);
    return at >= 0 ? real_pwritev64(fd, iov, cnt, at) : real_writev(fd, iov, cnt);
  }
  ssize_t ret;
  if (at >= 0) {
    ret = real_pwritev64(fd, iov, cnt, at);
  } else {
    ret = real_writev(fd, iov, cnt);
    at = ret > 0 ? lseek64(fd, 0, SEEK_CUR) - ret : 0;
  }
  int saved = errno;
  note_write(file, write_type(fd), at, iov, cnt, ret);
  pthread_mutex_unlock(&lock);
  errno = saved;
  return ret;
}

ssize_t write(int fd, const void *buf, size_t n) {
  if (journal < 0 || fd == journal) {
    return real_write(fd, buf, n);
  }
  struct iovec v = {(void *)buf, n};
  return tracked_write(fd, &v, 1, -1);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t at) {
  if (journal < 0) {
    return real_pwrite64(fd, buf, n, at);
  }
  struct iovec v = {(void *)buf, n};
  return tracked_write(fd, &v, 1, at);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t at) {
  return pwrite64(fd, buf, n, at);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
  if (journal < 0) {
    return real_writev(fd, iov, cnt);
  }
  return tracked_write(fd, iov, cnt, -1);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off64_t at) {
  if (journal < 0) {
    return real_pwritev64(fd, iov, cnt, at);
  }
  return tracked_write(fd, iov, cnt, at);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t at) {
  return pwritev64(fd, iov, cnt, at);
}

/* An fsync or fdatasync through fn: journaled once it returned, covering the writes before it. */
static int tracked_sync(int fd, int (*fn)(int)) {
  pthread_mutex_lock(&lock);
  int file = file_of(fd);
  uint64_t from = next_seq;
  pthread_mutex_unlock(&lock);
  int ret = fn(fd);
  if (ret == 0 && file >= 0) {
    int saved = errno;
    pthread_mutex_lock(&lock);
    put_header('S', (uint32_t)file, 0, from, 0);
    pthread_mutex_unlock(&lock);
    errno = saved;
  }
  return ret;
}

int fsync(int fd) {
  return tracked_sync(fd, real_fsync);
}

int fdatasync(int fd) {
  return tracked_sync(fd, real_fdatasync);
}

int ftruncate64(int fd, off64_t size) {
  pthread_mutex_lock(&lock);
  int file = file_of(fd);
  int ret = real_ftruncate64(fd, size);
  int saved = errno;
  if (ret == 0 && file >= 0) {
    put_header('T', (uint32_t)file, next_seq++, (uint64_t)size, 0);
  }
  pthread_mutex_unlock(&lock);
  errno = saved;
  return ret;
}

int ftruncate(int fd, off_t size) {
  return ftruncate64(fd, size);
}
