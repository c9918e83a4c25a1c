#!/usr/bin/env python3
"""Which times each change moves: timestamps.py DIR prints, per change, for each watched path
whether its mtime moved off an old value (mY/mn) and whether its ctime moved on (cY/cn).
OperationsIT runs it on ext4 and on dedupfs and compares the output."""
import os
import sys
import time

OLD = 946684800  # 2000-01-01


def main():
    os.chdir(sys.argv[1])
    os.makedirs('a')
    os.makedirs('b')
    with open('a/f', 'w') as f:
        f.write('x')
    ops = [
        ('create', lambda: open('a/g', 'w').close(), ['a']),
        ('unlink', lambda: os.unlink('a/g'), ['a']),
        ('mkdir', lambda: os.mkdir('a/d'), ['a']),
        ('rmdir', lambda: os.rmdir('a/d'), ['a']),
        ('rename', lambda: os.rename('a/f', 'b/f'), ['a', 'b']),
        ('rename-within', lambda: os.rename('b/f', 'b/f2'), ['b']),
        ('rename-back', lambda: os.rename('b/f2', 'b/f'), ['b']),
        ('link', lambda: os.link('b/f', 'a/l'), ['a', 'b/f']),
        ('unlink-link', lambda: os.unlink('a/l'), ['a', 'b/f']),
        ('symlink', lambda: os.symlink('x', 'a/s'), ['a']),
        ('mkfifo', lambda: os.mkfifo('a/p'), ['a']),
        ('write', lambda: open('b/f', 'a').write('y'), ['b/f']),
        ('read', lambda: open('b/f').read(), ['b/f']),
        ('truncate', lambda: os.truncate('b/f', 1), ['b/f']),
        ('chmod', lambda: os.chmod('b/f', 0o600), ['b/f']),
        ('chown', lambda: os.chown('b/f', 5, 6), ['b/f']),
        ('setxattr', lambda: os.setxattr('b/f', 'user.x', b'1'), ['b/f']),
        ('removexattr', lambda: os.removexattr('b/f', 'user.x'), ['b/f']),
        ('utime', lambda: os.utime('b/f', (OLD + 5, OLD + 5)), ['b/f']),
        ('dir-xattr', lambda: os.setxattr('b', 'user.x', b'1'), ['b']),
    ]
    for name, op, watched in ops:
        for p in watched:
            os.utime(p, (OLD, OLD), follow_symlinks=False)
        before = {p: os.lstat(p).st_ctime_ns for p in watched}
        moved_before = os.lstat('a/f').st_ctime_ns if name == 'rename' else None
        time.sleep(0.01)
        op()
        out = []
        for p in watched:
            st = os.lstat(p)
            out.append('%s:m%s,c%s' % (p, 'Y' if st.st_mtime_ns > OLD * 10**9 + 10**9 * 10 else 'n',
                                       'Y' if st.st_ctime_ns > before[p] else 'n'))
        if moved_before is not None:
            out.append('moved:c%s' % ('Y' if os.lstat('b/f').st_ctime_ns > moved_before else 'n'))
        print(name, ' '.join(out))


if __name__ == '__main__':
    main()
