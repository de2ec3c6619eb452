package dev.loraflow.core.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link Resources#memory}: the kernel's MemAvailable bounded by the memory limit of the process's control group, read
 * from /proc and /sys/fs/cgroup trees laid out as the kernel lays them out (cgroup v2 and v1), and from this machine's.
 */
class ResourcesTest {

    private static final long MIB = 1L << 20;
    private static final long GIB = 1L << 30;

    @TempDir
    Path temp;

    private Path proc;
    private Path cgroup;
    private static byte[][] garbage;

    private void machine(long memAvailable, String ownCgroupLines) throws IOException {
        proc = temp.resolve("proc");
        cgroup = temp.resolve("sys-fs-cgroup");
        write(proc.resolve("meminfo"), "MemTotal:       24000000 kB\nMemFree:         1000000 kB\nMemAvailable:   "
                + (memAvailable / 1024) + " kB\nBuffers:           12345 kB\n");
        write(proc.resolve("self/cgroup"), ownCgroupLines);
        Files.createDirectories(cgroup);
    }

    private static void write(Path file, String text) throws IOException {
        Files.createDirectories(file.getParent());
        Files.writeString(file, text);
    }

    /** A cgroup v2 group: memory.max ("max" or bytes), memory.current and memory.stat's inactive_file. */
    private void v2Group(String path, String max, long current, long inactiveFile) throws IOException {
        Path group = cgroup.resolve(path);
        write(group.resolve("memory.max"), max + "\n");
        write(group.resolve("memory.current"), current + "\n");
        write(group.resolve("memory.stat"), "anon " + (current - inactiveFile) + "\nfile " + (inactiveFile + 4096)
                + "\nactive_file 4096\ninactive_file " + inactiveFile + "\nslab 1234\n");
    }

    @Test
    void aPodsCgroupV2LimitLessItsUsageAndPlusItsInactiveFileCacheBoundsMemAvailable() throws IOException {
        machine(16 * GIB, "0::/kubepods/burstable/pod1/container1\n");
        write(cgroup.resolve("cgroup.controllers"), "cpuset cpu io memory pids\n");
        v2Group("kubepods/burstable/pod1/container1", Long.toString(4 * GIB), 3 * GIB, 512 * MIB);

        Resources.Memory memory = Resources.memory(proc, cgroup);
        assertEquals(new Resources.Memory(GIB + 512 * MIB, 4 * GIB), memory);
        assertEquals("1.5 GB is available within the container's memory limit (cgroup) of 4.0 GB", memory.describe());
    }

    @Test
    void theTightestOfTheGroupAndItsAncestorsCounts() throws IOException {
        machine(16 * GIB, "0::/kubepods/pod1/container1\n");
        write(cgroup.resolve("cgroup.controllers"), "memory\n");
        v2Group("kubepods", "max", 10 * GIB, 0);
        v2Group("kubepods/pod1", Long.toString(2 * GIB), GIB + 768 * MIB, 0);
        v2Group("kubepods/pod1/container1", "max", GIB, 0);

        assertEquals(new Resources.Memory(256 * MIB, 2 * GIB), Resources.memory(proc, cgroup));
    }

    @Test
    void aLimitAboveWhatTheMachineHasLeavesMemAvailable() throws IOException {
        machine(3 * GIB, "0::/\n");
        write(cgroup.resolve("cgroup.controllers"), "memory\n");
        // a namespaced container sees its own group as the root of the mount
        v2Group("", Long.toString(8 * GIB), GIB, 0);

        Resources.Memory memory = Resources.memory(proc, cgroup);
        assertEquals(new Resources.Memory(3 * GIB, -1), memory);
        assertEquals("3.0 GB is available", memory.describe());
    }

    @Test
    void cgroupV1sMemoryControllerWithTheHostsPathOrWithout() throws IOException {
        machine(16 * GIB, "12:pids:/docker/abc\n4:memory:/docker/abc\n1:name=systemd:/docker/abc\n0::/\n");
        Path memoryRoot = cgroup.resolve("memory");
        write(memoryRoot.resolve("memory.limit_in_bytes"), "9223372036854771712\n");
        write(memoryRoot.resolve("memory.usage_in_bytes"), Long.toString(9 * GIB));
        Path container = memoryRoot.resolve("docker/abc");
        write(container.resolve("memory.limit_in_bytes"), Long.toString(6 * GIB) + "\n");
        write(container.resolve("memory.usage_in_bytes"), Long.toString(5 * GIB) + "\n");
        write(container.resolve("memory.stat"), "cache 1073741824\ninactive_file 1\ntotal_inactive_file "
                + (256 * MIB) + "\ntotal_active_file 4096\n");

        assertEquals(new Resources.Memory(GIB + 256 * MIB, 6 * GIB), Resources.memory(proc, cgroup));

        // Docker without a cgroup namespace: the container's group is mounted as the root, /proc still names the host's
        Files.writeString(memoryRoot.resolve("memory.limit_in_bytes"), Long.toString(2 * GIB));
        Files.writeString(memoryRoot.resolve("memory.usage_in_bytes"), Long.toString(GIB));
        Files.writeString(proc.resolve("self/cgroup"), "4:memory:/docker/elsewhere\n");
        assertEquals(new Resources.Memory(GIB, 2 * GIB), Resources.memory(proc, cgroup));
    }

    @Test
    void noLimitNoCgroupOrNoProcLeaveWhatIsKnown() throws IOException {
        machine(5 * GIB, "0::/user.slice\n");
        write(cgroup.resolve("cgroup.controllers"), "memory\n");
        v2Group("user.slice", "max", GIB, 0);
        assertEquals(new Resources.Memory(5 * GIB, -1), Resources.memory(proc, cgroup));

        assertEquals(new Resources.Memory(5 * GIB, -1), Resources.memory(proc, temp.resolve("no-cgroup-mounted")));
        assertEquals(new Resources.Memory(Long.MAX_VALUE, -1),
                Resources.memory(temp.resolve("no-proc"), temp.resolve("no-cgroup-mounted")));
    }

    @Test
    void garbageIsCollectedBeforeTheHeapCheckRefuses() throws IOException {
        System.gc();
        Runtime runtime = Runtime.getRuntime();
        long live = runtime.totalMemory() - runtime.freeMemory();
        // what the heap holds beside what is live now, less 64 MiB: it fits once the garbage below is collected
        long needed = runtime.maxMemory() - live - (64L << 20);
        leaveGarbage(8, 16 << 20);
        assertTrue(needed > Resources.heapAvailable(), "the garbage is counted as used until it is collected");

        Resources.requireHeap(needed, "a test's", "none");
        assertTrue(Resources.heapHolds(needed));

        var refused = assertThrows(Resources.InsufficientResourcesException.class,
                () -> Resources.requireHeap(runtime.maxMemory(), "the whole heap", "a larger one"));
        assertTrue(refused.getMessage().startsWith("needs about " + Resources.size(runtime.maxMemory())
                + " of Java heap (the whole heap) but the JVM has "), refused.getMessage());
        assertFalse(Resources.heapHolds(runtime.maxMemory()));
    }

    /** Allocates {@code count} arrays of {@code bytes}, reachable from a field (so that they are surely made), and drops them. */
    private static void leaveGarbage(int count, int bytes) {
        garbage = new byte[count][];
        for (int i = 0; i < count; i++) {
            garbage[i] = new byte[bytes];
        }
        garbage = null;
    }

    @Test
    void writesOnOneFileSystemAreAddedUpAndEachFileSystemHoldsItsOwn() throws IOException {
        Path staged = temp.resolve("staging").resolve("merged");
        Path stored = temp.resolve("store");
        long part = Resources.diskAvailable(temp) / 10 * 6;
        Resources.requireDisk(List.of(new Resources.DiskNeed(staged, part, "the model, staged")));
        Resources.requireDisk(List.of(new Resources.DiskNeed(stored, part, "the model, stored")));

        var refused = assertThrows(Resources.InsufficientResourcesException.class, () -> Resources.requireDisk(List.of(
                new Resources.DiskNeed(staged, part, "the model, staged"),
                new Resources.DiskNeed(stored, part, "the model, stored"))));
        assertTrue(refused.getMessage().startsWith("needs about " + Resources.size(2 * part) + " of disk on one file system"
                + " (the model, staged, " + Resources.size(part) + " at " + staged + "; the model, stored, "
                + Resources.size(part) + " at " + stored + "), but it has "), refused.getMessage());
        var alone = assertThrows(Resources.InsufficientResourcesException.class, () -> Resources.requireDisk(List.of(
                new Resources.DiskNeed(stored, Long.MAX_VALUE / 4, "the store's copy"))));
        assertTrue(alone.getMessage().startsWith("needs about " + Resources.size(Long.MAX_VALUE / 4) + " of disk (the store's"
                + " copy) at " + stored + ", but its file system has "), alone.getMessage());
    }

    @Test
    void thisMachinesFiguresAreSane() throws IOException {
        Resources.Memory memory = Resources.memory();
        Path meminfo = Path.of("/proc/meminfo");
        if (!Files.isRegularFile(meminfo)) {
            assertEquals(Long.MAX_VALUE, memory.availableBytes());
            return;
        }
        long total = Files.readAllLines(meminfo).stream().filter(line -> line.startsWith("MemTotal:"))
                .mapToLong(line -> 1024 * Long.parseLong(line.replaceAll("[^0-9]", ""))).findFirst().orElseThrow();
        assertTrue(memory.availableBytes() > 0 && memory.availableBytes() <= total, memory + " of " + total);
        // where a limit bounds it, what is left under the limit is at most the limit
        assertTrue(memory.cgroupLimitBytes() == -1 || memory.cgroupLimitBytes() >= memory.availableBytes(), memory.toString());
    }
}
