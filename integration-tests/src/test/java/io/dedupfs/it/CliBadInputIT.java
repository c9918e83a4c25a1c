package io.dedupfs.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * The CLI refuses bad input the way the contract says: exit code nonzero, exactly one line on
 * stderr that names the problem (and the path concerned), and nothing on disk touched.
 */
@ExtendWith(Mounted.PrintLogsOnFailure.class)
class CliBadInputIT {

    @TempDir
    Path tempDir;

    private Path tmp;
    private final List<Path> mountpoints = new ArrayList<>();

    @BeforeEach
    void realTmp() throws IOException {
        tmp = tempDir.toRealPath(); // the CLI may print canonical paths
    }

    /** A mount the CLI wrongly made must not outlive the test (nor block @TempDir's cleanup). */
    @AfterEach
    void detachLeftovers() {
        for (Path mnt : mountpoints) {
            if (Mounted.isMounted(mnt)) {
                Mounted.cli("umount", mnt.toString());
                Mounted.forceUnmount(mnt);
            }
        }
    }

    @Test
    void unknownOptionIsRejectedInOneLine() {
        Path store = tmp.resolve("store");
        Path mnt = mountpoint("mnt");

        Shell.Result r = Mounted.cli("mount", "--no-such-option", store.toString(), mnt.toString());
        assertOneLineError(r, "--no-such-option");

        Shell.Result top = Mounted.cli("--no-such-option");
        assertOneLineError(top, "--no-such-option");

        assertThat(store).doesNotExist();
        assertThat(Mounted.isMounted(mnt)).isFalse();
    }

    @Test
    void missingMountpointIsRejectedAndStoreUntouched() {
        Path store = createStore("store");
        Map<String, String> before = snapshot(store);
        Path mnt = tmp.resolve("no-such-mountpoint");
        mountpoints.add(mnt);

        Shell.Result r = Mounted.cli("mount", store.toString(), mnt.toString());

        assertOneLineError(r, mnt.toString());
        assertThat(r.stderr()).containsPattern("(?i)(does not exist|doesn't exist|no such|not found|missing)");
        assertThat(mnt).doesNotExist();
        assertThat(snapshot(store)).isEqualTo(before);
    }

    @Test
    void missingMountpointDoesNotCreateTheStore() {
        Path store = tmp.resolve("new-store");
        Path mnt = tmp.resolve("no-such-mountpoint");
        mountpoints.add(mnt);

        Shell.Result r = Mounted.cli("mount", store.toString(), mnt.toString());

        assertOneLineError(r, mnt.toString());
        assertThat(store).doesNotExist();
    }

    @Test
    void nonEmptyMountpointIsRejected() throws IOException {
        Path store = createStore("store");
        Map<String, String> storeBefore = snapshot(store);
        Path mnt = mountpoint("mnt");
        Files.writeString(mnt.resolve("someone-elses-file.txt"), "keep me\n");
        Map<String, String> mntBefore = snapshot(mnt);

        Shell.Result r = Mounted.cli("mount", store.toString(), mnt.toString());

        assertOneLineError(r, mnt.toString());
        assertThat(r.stderr()).containsPattern("(?i)(not empty|non-empty|nonempty)");
        assertThat(Mounted.isMounted(mnt)).isFalse();
        assertThat(snapshot(mnt)).isEqualTo(mntBefore);
        assertThat(snapshot(store)).isEqualTo(storeBefore);
    }

    @Test
    void directoryOfUnrelatedFilesIsNotTakenForAStore() throws IOException {
        Path store = Files.createDirectories(tmp.resolve("not-a-store"));
        Files.writeString(store.resolve("notes.txt"), "my notes\n");
        byte[] data = new byte[256 * 1024];
        new Random(42).nextBytes(data);
        Files.write(Files.createDirectories(store.resolve("sub")).resolve("data.bin"), data);
        Map<String, String> before = snapshot(store);
        Path mnt = mountpoint("mnt");

        Shell.Result r = Mounted.cli("mount", store.toString(), mnt.toString());

        assertOneLineError(r, store.toString());
        assertThat(r.stderr()).containsPattern("(?i)(not a dedupfs store|not a store|no dedupfs store)");
        assertThat(Mounted.isMounted(mnt)).isFalse();
        assertThat(snapshot(store)).isEqualTo(before);
    }

    @Test
    void sameStoreCannotBeMountedTwice() throws IOException {
        Mounted.assumeFuseAvailable();
        Path store = tmp.resolve("store");
        Path mnt1 = mountpoint("mnt1");
        Path mnt2 = mountpoint("mnt2");

        try (Mounted first = Mounted.mount(store, mnt1, tmp)) {
            Files.writeString(mnt1.resolve("before.txt"), "written before\n");

            Shell.Result second = Mounted.cli("mount", store.toString(), mnt2.toString());

            assertOneLineError(second, store.toString());
            assertThat(second.stderr()).containsPattern("(?i)(already|in use|locked|busy)");
            assertThat(Mounted.isMounted(mnt2)).isFalse();
            // the first mount is unharmed
            assertThat(first.isAlive()).isTrue();
            assertThat(Mounted.fstypeAt(mnt1)).contains(Mounted.FSTYPE);
            assertThat(Files.readString(mnt1.resolve("before.txt"))).isEqualTo("written before\n");
            Files.writeString(mnt1.resolve("after.txt"), "written after\n");
            assertThat(Files.readString(mnt1.resolve("after.txt"))).isEqualTo("written after\n");
        }
    }

    @Test
    void umountOfWhatIsNotMountedFails() throws IOException {
        Path dir = mountpoint("plain-dir");
        Shell.Result r = Mounted.cli("umount", dir.toString());
        assertOneLineError(r, dir.toString());
        assertThat(r.stderr()).containsPattern("(?i)(not mounted|not a mount|no dedupfs mount)");

        Path missing = tmp.resolve("no-such-dir");
        Shell.Result r2 = Mounted.cli("umount", missing.toString());
        assertOneLineError(r2, missing.toString());
        assertThat(dir).isEmptyDirectory();
    }

    // ---- helpers -------------------------------------------------------------------------------

    private static void assertOneLineError(Shell.Result r, String mustMention) {
        assertThat(r.exitCode()).as("exit code of a refused command\n%s", r.describe()).isNotZero();
        List<String> lines = r.stderr().strip().lines().toList();
        assertThat(lines).as("stderr must be exactly one line\n%s", r.describe()).hasSize(1);
        assertThat(lines.get(0)).as("the error must name %s\n%s", mustMention, r.describe())
                .contains(mustMention);
    }

    private Path mountpoint(String name) {
        try {
            Path p = Files.createDirectories(tmp.resolve(name));
            mountpoints.add(p);
            return p;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private Path createStore(String name) {
        Path store = tmp.resolve(name);
        Shell.Result r = Mounted.cli("create", store.toString());
        assertThat(r.exitCode()).as("dedupfs create\n%s", r.describe()).isZero();
        assertThat(store).isDirectory();
        return store;
    }

    /**
     * Relative path -> size, mtime and SHA-256 of the content ("dir" for directories), for the
     * whole tree. Files over 256 MiB (a sparse LMDB map, say) get size and mtime only.
     */
    private static Map<String, String> snapshot(Path root) {
        Map<String, String> tree = new TreeMap<>();
        try (Stream<Path> paths = Files.walk(root)) {
            for (Path p : (Iterable<Path>) paths::iterator) {
                String rel = root.relativize(p).toString();
                if (Files.isDirectory(p)) {
                    tree.put(rel, "dir");
                    continue;
                }
                long size = Files.size(p);
                String id = "size=" + size + " mtime=" + Files.getLastModifiedTime(p);
                tree.put(rel, size > (256L << 20) ? id : id + " sha256=" + sha256(p));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return tree;
    }

    private static String sha256(Path file) throws IOException {
        try (InputStream in = Files.newInputStream(file)) {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) > 0; ) {
                md.update(buf, 0, n);
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
