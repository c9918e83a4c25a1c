#!/usr/bin/env python3
"""direct_and_buffered.py FILE SEED: random writes and reads of one file through two descriptors at
once, one buffered (any offset and size) and one O_DIRECT (4 KiB-aligned), checked against an
in-memory model after every read: the page cache and the daemon must agree. Prints 'ok SIZE'."""
import mmap
import os
import random
import sys


def main():
    path, rnd = sys.argv[1], random.Random(int(sys.argv[2]))
    span = 2 << 20
    model = bytearray(span)
    size = 0
    buffered = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
    direct = os.open(path, os.O_RDWR | os.O_DIRECT)
    buf = mmap.mmap(-1, 1 << 20)
    for op in range(3000):
        k = rnd.random()
        if k < 0.3:
            n = rnd.randint(1, 100000)
            off = rnd.randint(0, span - n)
            data = rnd.randbytes(n)
            os.pwrite(buffered, data, off)
            model[off:off + n] = data
            size = max(size, off + n)
        elif k < 0.55:
            n = 4096 * rnd.randint(1, 64)
            off = 4096 * rnd.randint(0, (span - n) // 4096)
            data = rnd.randbytes(n)
            buf[:n] = data
            assert os.pwritev(direct, [memoryview(buf)[:n]], off) == n
            model[off:off + n] = data
            size = max(size, off + n)
        elif k < 0.75:
            n = rnd.randint(1, 100000)
            off = rnd.randint(0, size)
            if os.pread(buffered, n, off) != bytes(model[off:min(size, off + n)]):
                sys.exit('buffered read at %d differs from the model (operation %d)' % (off, op))
        elif k < 0.95:
            n = 4096 * rnd.randint(1, 64)
            off = 4096 * rnd.randint(0, max(0, size - 1) // 4096)
            got = os.preadv(direct, [memoryview(buf)[:n]], off)
            if got != max(0, min(n, size - off)) or buf[:got] != bytes(model[off:off + got]):
                sys.exit('O_DIRECT read at %d differs from the model (operation %d)' % (off, op))
        else:
            os.fsync(rnd.choice([buffered, direct]))
    if os.fstat(buffered).st_size != size:
        sys.exit('size %d, model %d' % (os.fstat(buffered).st_size, size))
    print('ok', size)


if __name__ == '__main__':
    main()
