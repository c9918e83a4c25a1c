package io.dedupfs.it;

import static java.nio.file.StandardOpenOption.CREATE;
import static java.nio.file.StandardOpenOption.CREATE_NEW;
import static java.nio.file.StandardOpenOption.READ;
import static java.nio.file.StandardOpenOption.WRITE;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * The daemon dies by SIGKILL while several files are being written: after a new mount of the
 * same store (which must open: no stale lock), every byte that an fsync had covered is there, and
 * so is every file that a close(2) had returned for (close flushes). SIGTERM and SIGINT instead
 * flush everything, unmount and exit; {@code dedupfs umount} returns only once the store is
 * closed, so an immediate remount works.
 */
@ExtendWith(Mounted.PrintLogsOnFailure.class)
class CrashIT {
    private static final int FILE_SPAN = 4 << 20;
    private static final long PROGRESS_TIMEOUT_MS = TimeUnit.MINUTES.toMillis(3);

    @TempDir
    Path tempDir;

    @Test
    void kill9DuringWritesKeepsEveryFsyncedAndEveryClosedByte() throws Exception {
        Mounted.assumeFuseAvailable();
        Path tmp = tempDir.toRealPath();
        Path store = tmp.resolve("store");
        Path mnt = tmp.resolve("mnt");
        List<Writer> writers = new ArrayList<>();
        Map<String, byte[]> closed = new ConcurrentHashMap<>();
        for (int round = 0; round < 2; round++) {
            Mounted m = Mounted.mount(store, mnt, tmp);
            try {
                Path dir = Files.createDirectories(m.mountpoint().resolve("round-" + round));
                // namespace changes are answered only once durable
                Files.createDirectories(dir.resolve("made/below"));
                Files.move(dir.resolve("made"), dir.resolve("renamed"));
                List<Writer> now = new ArrayList<>();
                for (int i = 0; i < 3; i++) {
                    now.add(new Writer(dir.resolve("fsynced-" + i), 1000L * round + i));
                }
                Closer closer = new Closer(dir, 77L + round, closed);
                List<Thread> threads = new ArrayList<>();
                for (Runnable r : List.of(now.get(0), now.get(1), now.get(2), closer)) {
                    Thread t = new Thread(r, "crash-writer");
                    t.start();
                    threads.add(t);
                }
                // kill once every writer has fsynced a few times and the closer closed a few files
                long deadline = System.currentTimeMillis() + PROGRESS_TIMEOUT_MS;
                while (now.stream().anyMatch(w -> w.fsyncs.get() < 8) || closer.count.get() < 5) {
                    for (Writer w : now) {
                        w.rethrow();
                    }
                    closer.rethrow();
                    assertThat(System.currentTimeMillis()).as("writers made no progress").isLessThan(deadline);
                    Thread.sleep(20);
                }
                m.kill9();
                for (Thread t : threads) {
                    t.join(TimeUnit.MINUTES.toMillis(2));
                    assertThat(t.isAlive()).as("a writer still blocked after the kill").isFalse();
                }
                assertThat(now.stream().mapToInt(w -> w.failedAfterKill ? 1 : 0).sum())
                        .as("writers that saw the daemon die").isPositive();
                writers.addAll(now);
            } finally {
                m.close(); // detaches the dead mount
            }

            // the store opens again at once, and holds every fsynced byte and every closed file
            try (Mounted again = Mounted.mount(store, mnt, tmp)) {
                Path root = again.mountpoint();
                for (int r = 0; r <= round; r++) {
                    assertThat(root.resolve("round-" + r + "/renamed/below")).isDirectory();
                    assertThat(root.resolve("round-" + r + "/made")).doesNotExist();
                }
                for (Writer w : writers) {
                    w.verify(root.resolve(mnt.relativize(w.file)));
                }
                for (var e : closed.entrySet()) {
                    Path f = root.resolve(e.getKey());
                    assertThat(Files.readAllBytes(f)).as("closed file %s", e.getKey()).isEqualTo(e.getValue());
                }
            }
        }
        assertThat(closed).hasSizeGreaterThanOrEqualTo(10);
    }

    /**
     * Random unaligned writes to one file, an fsync every few writes. Remembers the content at
     * the last fsync that returned, and every write begun since (including one in flight when
     * the daemon died): after the crash a byte must hold its fsynced value or one of those.
     */
    private static final class Writer implements Runnable {
        final Path file;
        final Random rnd;
        final AtomicInteger fsyncs = new AtomicInteger();
        volatile Throwable failure;
        volatile boolean failedAfterKill;
        /** The model: all writes so far. */
        final byte[] current = new byte[FILE_SPAN];
        int currentSize;
        /** What the last completed fsync covered. */
        byte[] synced = new byte[0];
        /** Writes begun after that fsync: offset, bytes. */
        final List<Map.Entry<Integer, byte[]>> since = new ArrayList<>();

        Writer(Path file, long seed) {
            this.file = file;
            this.rnd = new Random(seed);
        }

        @Override
        public void run() {
            try (FileChannel ch = FileChannel.open(file, CREATE_NEW, WRITE, READ)) {
                for (int n = 0; ; n++) {
                    int len = 1 + rnd.nextInt(rnd.nextInt(4) == 0 ? 300_000 : 20_000);
                    int off = rnd.nextInt(FILE_SPAN - len);
                    byte[] data = new byte[len];
                    rnd.nextBytes(data);
                    synchronized (this) {
                        since.add(Map.entry(off, data));
                    }
                    ByteBuffer b = ByteBuffer.wrap(data);
                    while (b.hasRemaining()) {
                        ch.write(b, off + b.position());
                    }
                    System.arraycopy(data, 0, current, off, len);
                    currentSize = Math.max(currentSize, off + len);
                    if (n % 5 == 4) {
                        byte[] snapshot = Arrays.copyOf(current, currentSize);
                        ch.force(true);
                        synchronized (this) {
                            synced = snapshot;
                            since.clear();
                        }
                        fsyncs.incrementAndGet();
                    }
                }
            } catch (IOException e) {
                failedAfterKill = true; // the daemon is gone: ENOTCONN, ECONNABORTED...
            } catch (Throwable t) {
                failure = t;
            }
        }

        void rethrow() {
            if (failure != null || failedAfterKill) {
                throw new AssertionError("writer of " + file + " failed before the kill", failure);
            }
        }

        synchronized void verify(Path f) throws IOException {
            byte[] got = Files.readAllBytes(f);
            int maxEnd = synced.length;
            for (var w : since) {
                maxEnd = Math.max(maxEnd, w.getKey() + w.getValue().length);
            }
            assertThat(got.length).as("size of %s: at least what was fsynced, at most what was written", f)
                    .isBetween(synced.length, maxEnd);
            for (int pos = 0; pos < got.length; pos++) {
                byte before = pos < synced.length ? synced[pos] : 0;
                if (got[pos] == before) {
                    continue;
                }
                boolean writtenSince = false;
                for (var w : since) {
                    int i = pos - w.getKey();
                    if (i >= 0 && i < w.getValue().length && w.getValue()[i] == got[pos]) {
                        writtenSince = true;
                        break;
                    }
                }
                if (!writtenSince) {
                    throw new AssertionError(f + ": byte " + pos + " is " + got[pos] + "; fsynced value " + before
                            + " (fsynced size " + synced.length + ", " + since.size()
                            + " writes since the last fsync), and no later write put it there");
                }
            }
        }
    }

    /** Writes whole files and closes them, one after another; a file counts once close returned. */
    private static final class Closer implements Runnable {
        final Path dir;
        final Random rnd;
        final Map<String, byte[]> closed;
        final AtomicInteger count = new AtomicInteger();
        volatile Throwable failure;
        volatile boolean died;

        Closer(Path dir, long seed, Map<String, byte[]> closed) {
            this.dir = dir;
            this.rnd = new Random(seed);
            this.closed = closed;
        }

        @Override
        public void run() {
            try {
                for (int n = 0; ; n++) {
                    byte[] data = new byte[rnd.nextInt(2 << 20)];
                    rnd.nextBytes(data);
                    Path f = dir.resolve("closed-" + n);
                    try (FileChannel ch = FileChannel.open(f, CREATE, WRITE)) {
                        ByteBuffer b = ByteBuffer.wrap(data);
                        while (b.hasRemaining()) {
                            ch.write(b);
                        }
                    }
                    closed.put(dir.getParent().relativize(f).toString(), data);
                    count.incrementAndGet();
                }
            } catch (IOException e) {
                died = true;
            } catch (Throwable t) {
                failure = t;
            }
        }

        void rethrow() {
            if (failure != null || died) {
                throw new AssertionError("closer failed before the kill", failure);
            }
        }
    }

    @Test
    void sigtermAndSigintFlushEverythingUnmountAndExit() throws Exception {
        Mounted.assumeFuseAvailable();
        Path tmp = tempDir.toRealPath();
        Path store = tmp.resolve("store");
        Path mnt = tmp.resolve("mnt");
        Map<String, byte[]> expected = new java.util.TreeMap<>();
        int n = 0;
        for (String signal : List.of("TERM", "INT", "TERM")) {
            String[] options = n == 2 ? new String[] {"--writeback-cache"} : new String[0];
            Mounted m = Mounted.mount(store, mnt, tmp, options);
            FileChannel open = null;
            try {
                Path root = m.mountpoint();
                for (var e : expected.entrySet()) {
                    assertThat(Files.readAllBytes(root.resolve(e.getKey()))).as(e.getKey()).isEqualTo(e.getValue());
                }
                // a closed file, and a file still open with writes neither fsynced nor closed
                byte[] closedData = OperationsIT.random(100 + n, 3_000_001);
                Files.write(root.resolve("closed-" + n), closedData);
                expected.put("closed-" + n, closedData);
                byte[] openData = OperationsIT.random(200 + n, 1_500_007);
                open = FileChannel.open(root.resolve("open-" + n), CREATE_NEW, WRITE);
                ByteBuffer b = ByteBuffer.wrap(openData);
                while (b.hasRemaining()) {
                    open.write(b);
                }
                if (n == 2) {
                    // with the writeback cache, written data may sit in the kernel until a
                    // flush; what the daemon must keep is what reached it: fsync hands it over
                    open.force(false);
                }
                expected.put("open-" + n, openData);

                long pid = m.pid();
                Tools.run("kill", "-" + signal, Long.toString(pid));
                var exit = ProcessHandle.of(pid).map(ProcessHandle::onExit);
                if (exit.isPresent()) {
                    exit.get().get(Mounted.STOP_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
                }
                assertThat(m.isAlive()).isFalse();
                int code = m.stopGracefully(); // already exited: only collects the exit code
                assertThat(code).as("exit code after SIG%s\n%s", signal, m.output()).isIn(0, 128 + 15, 128 + 2);
                assertThat(Mounted.isMounted(mnt)).as("still mounted after SIG" + signal).isFalse();
                assertThat(lockIsFree(store)).as("store lock free after SIG" + signal).isTrue();
            } finally {
                if (open != null) {
                    try {
                        open.close();
                    } catch (IOException ignored) {
                        // the mount is gone
                    }
                }
                m.close();
            }
            n++;
        }
        try (Mounted m = Mounted.mount(store, mnt, tmp)) {
            for (var e : expected.entrySet()) {
                assertThat(Files.readAllBytes(m.mountpoint().resolve(e.getKey()))).as(e.getKey())
                        .isEqualTo(e.getValue());
            }
        }
    }

    @Test
    void dedupfsUmountReturnsWithTheStoreClosedSoItMountsAgainAtOnce() throws IOException {
        Mounted.assumeFuseAvailable();
        Path tmp = tempDir.toRealPath();
        Path store = tmp.resolve("store");
        Path mnt = tmp.resolve("mnt");
        for (int i = 0; i < 4; i++) {
            try (Mounted m = Mounted.mount(store, mnt, tmp, i % 2 == 1 ? "--writeback-cache" : "--threads=4")) {
                for (int j = 0; j < i; j++) {
                    assertThat(Files.readAllBytes(m.mountpoint().resolve("file-" + j)))
                            .isEqualTo(OperationsIT.random(j, 1_000_000 + j));
                }
                // written and closed, never fsynced
                FileChannel ch = FileChannel.open(m.mountpoint().resolve("file-" + i), CREATE_NEW, WRITE);
                ch.write(ByteBuffer.wrap(OperationsIT.random(i, 1_000_000 + i)));
                ch.close();
                Shell.Result r = Mounted.cli("umount", m.mountpoint().toString());
                assertThat(r.exitCode()).as(r.describe()).isZero();
                assertThat(Mounted.isMounted(mnt)).isFalse();
                assertThat(lockIsFree(store)).as("the store's lock when dedupfs umount returned").isTrue();
            }
        }
        try (Mounted m = Mounted.mount(store, mnt, tmp)) {
            for (int j = 0; j < 4; j++) {
                assertThat(Files.readAllBytes(m.mountpoint().resolve("file-" + j)))
                        .isEqualTo(OperationsIT.random(j, 1_000_000 + j));
            }
        }
    }

    /** Whether no process holds the store's lock (the daemon holds it while the store is open). */
    static boolean lockIsFree(Path store) throws IOException {
        try (FileChannel ch = FileChannel.open(store.resolve("dedupfs.lock"), WRITE)) {
            FileLock l = ch.tryLock();
            if (l == null) {
                return false;
            }
            l.release();
            return true;
        }
    }
}
