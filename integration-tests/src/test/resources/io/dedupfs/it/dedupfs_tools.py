#!/usr/bin/env python3
"""Helpers for the clone, snapshot and space tests (CloneIT, SnapshotIT, SpaceIT, IntegrityIT,
FullDiskIT), run as `python3 dedupfs_tools.py COMMAND ARGS...`:

  unique PATH SIZE SEED        write SIZE bytes no other (offset, SEED) pair writes: every 4 KiB block
                               starts with (SEED, its offset); fsync; print the SHA-256 and what
                               `digest` will print for the file (one data extent)
  sparse PATH SIZE SEED        a sparse image of SIZE bytes with unique data here and there
                               (aligned and unaligned, across the 4 GiB line, at the end); print the
                               offsets and lengths written, one "OFF LEN" per line
  digest PATH                  "SIZE EXTENTS HEX": SHA-256 over every data extent (SEEK_DATA /
                               SEEK_HOLE) as (offset, length, bytes), with holes checked to read as
                               zeros at their first, middle and last byte; equal files with equal
                               extent maps have equal digests, and only the data is read
  clone SRC DST SO LEN DO [create]
                               dedupfs's clone ioctl (0x40204401) on DST naming SRC; prints "ok" or
                               "errno NAME MESSAGE"; DST is opened without O_CREAT unless "create"
  recount ROOT LEAF PATH...    a brute-force recount of `dedupfs stats` (JSON, below)

The recount reads every regular file under ROOT (the mountpoint, .snapshots included even when
the root's listing hides it), each inode
once, rebuilds its Merkle tree as engine/FORMAT.md describes it (leaves of LEAF bytes, nodes of 128
children, SHA-256 of the leaf / of level || density bitmap || 128 child hashes, the zero hash for
all-zero leaves and subtrees, the smallest height covering the size), and counts references as
the store does: one per child slot of each distinct stored node, one per inode root. For the whole
store ("") and each PATH (relative to ROOT) it prints files, logical, stored (distinct non-zero
blocks reachable from them, a leaf without its trailing zeros, a node as 16 + 32 x (last non-zero
child + 1) bytes), exclusive (what deleting their roots frees: a block is freed when the
decrements from the set's roots and from freed parents reach its count) and shared; and the same
at the leaf level only (leaf_stored, leaf_exclusive) and the node part (node_stored); and
referenced: each file's non-zero leaves, each up to its last non-zero byte, read from the file
itself (a leaf counts every time a file holds it; a hard-linked inode once).
"""
import errno
import fcntl
import hashlib
import json
import os
import random
import struct
import sys

CLONE = 0x40204401
FANOUT = 128
ZERO = bytes(32)


def cmd_unique(path, size, seed, chunk=1 << 20):
    size, seed = int(size), int(seed)
    base = random.Random(seed).randbytes(chunk)
    h = hashlib.sha256()
    d = hashlib.sha256(struct.pack('<QQ', 0, size))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        off = 0
        while off < size:
            n = min(chunk, size - off)
            buf = bytearray(base[:n])
            for b in range(0, n - 15, 4096):
                struct.pack_into('<QQ', buf, b, seed, off + b)
            mv = memoryview(buf)
            done = 0
            while done < n:
                done += os.pwrite(fd, mv[done:], off + done)
            h.update(buf)
            d.update(buf)
            off += n
        os.fsync(fd)
    finally:
        os.close(fd)
    print(h.hexdigest(), '%d %d %s' % (size, 1 if size else 0, d.hexdigest() if size else hashlib.sha256().hexdigest()))


def cmd_sparse(path, size, seed):
    size, seed = int(size), int(seed)
    G, M = 1 << 30, 1 << 20
    rnd = random.Random(seed)
    spots = [(0, M), (7 * M + 12345, 3 * M + 1), (G - 5000, 10000), (G + 64 * M, 8 * M),
             (3 * G + 777, 2 * M), (4 * G - 3000, 7000), (0xfffff000 - 5, 100), (5 * G, 4 * M),
             (6 * G + 16384 * 3, 16384), (size - M - 99, M), (size - 10, 10)]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, size)
        for off, n in spots:
            if off + n <= size:
                data = bytearray(rnd.randbytes(n))
                for b in range(0, n - 15, 4096):
                    struct.pack_into('<QQ', data, b, seed, off + b)
                os.pwrite(fd, data, off)
                print(off, n)
        os.fsync(fd)
    finally:
        os.close(fd)


def extents(fd, size):
    """Data extents (start, end) by SEEK_DATA/SEEK_HOLE."""
    out, pos = [], 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:
                break
            raise
        end = os.lseek(fd, start, os.SEEK_HOLE)
        out.append((start, end))
        pos = end
    return out


def cmd_digest(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        ext = extents(fd, size)
        h = hashlib.sha256()
        prev = 0
        for start, end in ext + [(size, size)]:
            if start > prev:  # a hole: reads as zeros
                for probe in {prev, (prev + start) // 2, start - 1}:
                    if os.pread(fd, 1, probe) != b'\0':
                        raise SystemExit('%s: byte %d in a hole is not zero' % (path, probe))
            if end > start:
                h.update(struct.pack('<QQ', start, end - start))
                off = start
                while off < end:
                    b = os.pread(fd, min(1 << 20, end - off), off)
                    if not b:
                        raise SystemExit('%s: short read at %d' % (path, off))
                    h.update(b)
                    off += len(b)
            prev = end
    finally:
        os.close(fd)
    print(size, len(ext), h.hexdigest())


def cmd_clone(src, dst, so, ln, do, create=None):
    try:
        s = os.open(src, os.O_RDONLY)
        try:
            d = os.open(dst, os.O_WRONLY | (os.O_CREAT if create == 'create' else 0), 0o644)
            try:
                fcntl.ioctl(d, CLONE, struct.pack('=qQQQ', s, int(so), int(ln), int(do)))
            finally:
                os.close(d)
        finally:
            os.close(s)
    except OSError as e:
        print('errno', errno.errorcode.get(e.errno, e.errno), e.strerror)
        return
    print('ok')


# ---- recount --------------------------------------------------------------------------------

class Recount:
    def __init__(self, leaf):
        self.leaf = leaf
        self.stored = {}     # hash -> stored length
        self.level = {}      # hash -> level
        self.children = {}   # node hash -> list of non-zero child hashes (with repeats)
        self.roots = {}      # (dev, ino) -> root hash
        self.sizes = {}      # (dev, ino) -> size
        self.referenced = {} # (dev, ino) -> bytes of its non-zero leaves, each up to its last non-zero byte

    def span(self, level):
        return self.leaf * FANOUT ** level

    def height(self, size):
        h = 0
        while self.span(h) < size:
            h += 1
        return h

    def add_file(self, path, key):
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            nleaves = max(1, -(-size // self.leaf))
            # level 0: (hash, dense) per leaf
            level = []
            off = 0
            zero_leaf = bytes(self.leaf)
            referenced = 0
            for i in range(nleaves):
                b = b''
                while len(b) < self.leaf and off + len(b) < size:
                    got = os.pread(fd, min(self.leaf - len(b), size - off - len(b)), off + len(b))
                    if not got:
                        raise SystemExit('%s: short read at %d' % (path, off + len(b)))
                    b += got
                off += self.leaf
                if b.count(0) == len(b):
                    level.append((ZERO, False))
                    continue
                full = b + zero_leaf[:self.leaf - len(b)]
                h = hashlib.sha256(full).digest()
                self.stored[h] = len(b.rstrip(b'\0'))
                referenced += self.stored[h]
                self.level[h] = 0
                level.append((h, True))
        finally:
            os.close(fd)
        height = self.height(size)
        for lv in range(1, height + 1):
            up = []
            for first in range(0, len(level), FANOUT):
                kids = level[first:first + FANOUT]
                kids += [(ZERO, False)] * (FANOUT - len(kids))
                if all(h == ZERO for h, _ in kids):
                    up.append((ZERO, False))
                    continue
                bitmap = bytearray(16)
                for i, (h, dense) in enumerate(kids):
                    if dense:
                        bitmap[i >> 3] |= 1 << (i & 7)
                content = bytes(bitmap) + b''.join(h for h, _ in kids)
                h = hashlib.sha256(bytes([lv]) + content).digest()
                last = max(i for i, (k, _) in enumerate(kids) if k != ZERO)
                self.stored[h] = 16 + 32 * (last + 1)
                self.level[h] = lv
                self.children[h] = [k for k, _ in kids if k != ZERO]
                up.append((h, all(d for _, d in kids)))
            level = up
        assert len(level) == 1, (path, size, height, len(level))
        self.roots[key] = level[0][0]
        self.sizes[key] = size
        self.referenced[key] = referenced

    def finish(self):
        self.count = {h: 0 for h in self.stored}
        for kids in self.children.values():
            for k in kids:
                self.count[k] += 1
        for r in self.roots.values():
            if r != ZERO:
                self.count[r] += 1

    def reachable(self, roots):
        seen, todo = set(), [r for r in roots if r != ZERO]
        while todo:
            h = todo.pop()
            if h in seen:
                continue
            seen.add(h)
            todo.extend(self.children.get(h, ()))
        return seen

    def freed(self, roots):
        dec, freed = {}, set()
        todo = [r for r in roots if r != ZERO]
        while todo:
            h = todo.pop()
            dec[h] = dec.get(h, 0) + 1
            if dec[h] == self.count[h]:
                freed.add(h)
                todo.extend(self.children.get(h, ()))
        return freed

    def figures(self, keys):
        roots = [self.roots[k] for k in keys]
        reach = self.reachable(roots)
        freed = self.freed(roots)
        stored = sum(self.stored[h] for h in reach)
        exclusive = sum(self.stored[h] for h in freed)
        return {
            'files': len(keys),
            'logical': sum(self.sizes[k] for k in keys),
            'stored': stored,
            'exclusive': exclusive,
            'shared': stored - exclusive,
            'referenced': sum(self.referenced[k] for k in keys),
            'leaf_stored': sum(self.stored[h] for h in reach if self.level[h] == 0),
            'leaf_exclusive': sum(self.stored[h] for h in freed if self.level[h] == 0),
            'node_stored': sum(self.stored[h] for h in reach if self.level[h] > 0),
            'leaves': sum(1 for h in reach if self.level[h] == 0),
            'nodes': sum(1 for h in reach if self.level[h] > 0),
        }


def cmd_recount(root, leaf, *paths):
    rc = Recount(int(leaf))
    by_path = {}  # relative path of each regular file -> key
    tops = [root]
    snaps = os.path.join(root, '.snapshots')
    if os.path.isdir(snaps) and '.snapshots' not in os.listdir(root):
        tops.append(snaps)  # hidden from the root's listing (snapdir=hidden), reachable by name
    for d, dirs, files in (w for top in tops for w in os.walk(top)):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(d, f)
            st = os.lstat(p)
            if not (st.st_mode & 0o170000 == 0o100000):
                continue
            key = (st.st_dev, st.st_ino)
            if key not in rc.roots:
                rc.add_file(p, key)
            by_path[os.path.relpath(p, root)] = key
    rc.finish()
    out = {'': rc.figures(sorted(rc.roots))}
    for p in paths:
        keys = sorted({k for rel, k in by_path.items() if rel == p or rel.startswith(p + '/')})
        out[p] = rc.figures(keys)
    print(json.dumps(out, sort_keys=True))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {'unique': cmd_unique, 'sparse': cmd_sparse, 'digest': cmd_digest, 'clone': cmd_clone,
     'recount': cmd_recount}[cmd](*args)


if __name__ == '__main__':
    main()
