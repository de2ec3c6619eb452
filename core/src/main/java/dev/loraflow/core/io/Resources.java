package dev.loraflow.core.io;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * Checks, before a command starts, that the memory or disk it will need is there, so that a model too
 * large for the machine ends with one line naming what it needs and what there is, never an
 * OutOfMemoryError half way through.
 */
public final class Resources {

    /** A command that would not fit: the message is the one line to show. */
    public static final class InsufficientResourcesException extends IOException {
        public InsufficientResourcesException(String message) {
            super(message);
        }
    }

    /** The last suggestion of every heap check. */
    public static final String LARGER_HEAP = "a larger heap (LORAFLOW_JAVA_OPTS=-Xmx…)";

    /** v1 writes "no limit" as the largest page-aligned long; anything from 2^62 on is no limit a machine has. */
    private static final long UNLIMITED = 1L << 62;

    private Resources() {}

    /**
     * Bytes the Java heap may still grow to hold: the maximum heap less what is in use, garbage not yet collected
     * included (see {@link #heapHolds}).
     */
    public static long heapAvailable() {
        Runtime runtime = Runtime.getRuntime();
        return runtime.maxMemory() - (runtime.totalMemory() - runtime.freeMemory());
    }

    /**
     * Whether the heap can take {@code bytes} more, as an allocation would find it: at once where {@link
     * #heapAvailable} says so, else after a full collection — a long-running service's heap holds the garbage of every
     * job before, which would otherwise refuse a job that fits.
     */
    public static boolean heapHolds(long bytes) {
        if (bytes <= heapAvailable()) {
            return true;
        }
        System.gc();
        return bytes <= heapAvailable();
    }

    /**
     * Memory a process may still take.
     *
     * @param availableBytes  what new allocations can get, Long.MAX_VALUE where unknown
     * @param cgroupLimitBytes the memory limit of the control group (a container, a pod) that bounds {@code
     *                         availableBytes}, or −1 where the machine's memory does
     */
    public record Memory(long availableBytes, long cgroupLimitBytes) {

        /** "3.1 GB is available", and when a container's limit is what bounds it, "… within the container's …". */
        public String describe() {
            return size(availableBytes) + " is available" + (cgroupLimitBytes < 0 ? ""
                    : " within the container's memory limit (cgroup) of " + size(cgroupLimitBytes));
        }
    }

    /** Memory available for new allocations ({@link #memory()}), or Long.MAX_VALUE where unknown. */
    public static long memoryAvailable() {
        return memory().availableBytes();
    }

    /**
     * The kernel's MemAvailable, or less where this process's control group, or one above it, sets a memory limit:
     * in a container or a Kubernetes pod MemAvailable is the node's, while the limit is what ends the process.
     */
    public static Memory memory() {
        return memory(Path.of("/proc"), Path.of("/sys/fs/cgroup"));
    }

    /**
     * {@link #memory()} read from {@code proc} (meminfo, self/cgroup) and the cgroup file systems mounted at {@code
     * cgroupRoot}: cgroup v2 when it is the unified hierarchy (it holds cgroup.controllers), else v1's memory
     * controller under memory/. A group's headroom is its limit less its usage, with the inactive file cache (which
     * the kernel reclaims before it ends a process: the working set that Kubernetes evicts by leaves it out) counted
     * as free; the tightest of the group's and its ancestors' headrooms bounds MemAvailable.
     */
    static Memory memory(Path proc, Path cgroupRoot) {
        long available = Long.MAX_VALUE;
        long limit = -1;
        try {
            available = kibibytes(proc.resolve("meminfo"), "MemAvailable:");
            boolean unified = Files.isRegularFile(cgroupRoot.resolve("cgroup.controllers"));
            Path hierarchy = unified ? cgroupRoot : cgroupRoot.resolve("memory");
            if (!unified && !Files.isDirectory(hierarchy)) {
                return new Memory(available, -1);
            }
            CgroupFiles files = unified ? new CgroupFiles("memory.max", "memory.current", "inactive_file")
                    : new CgroupFiles("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file");
            for (Path group = ownGroup(proc, hierarchy, unified); group != null && group.startsWith(hierarchy);
                    group = group.getParent()) {
                long groupLimit = number(group.resolve(files.limit()));
                if (groupLimit < 0 || groupLimit >= UNLIMITED) {
                    continue;
                }
                long headroom = Math.max(0, groupLimit - Math.max(0, number(group.resolve(files.usage())))
                        + Math.max(0, statistic(group.resolve("memory.stat"), files.reclaimable())));
                if (headroom < available) {
                    available = headroom;
                    limit = groupLimit;
                }
            }
        } catch (IOException | RuntimeException unreadable) {
            // not Linux, or not allowed to look: what was read so far is all there is to check against
        }
        return new Memory(available, limit);
    }

    /** The names of a cgroup version's limit, usage and reclaimable-cache figures. */
    private record CgroupFiles(String limit, String usage, String reclaimable) {}

    /**
     * This process's group in {@code hierarchy}, from proc/self/cgroup ("0::/path" in v2, "n:memory,…:/path" in v1);
     * the hierarchy's root where the path is not there: a container whose cgroup is mounted as the root without a
     * cgroup namespace still shows the host's path.
     */
    private static Path ownGroup(Path proc, Path hierarchy, boolean unified) throws IOException {
        for (String line : Files.readAllLines(proc.resolve("self").resolve("cgroup"))) {
            String[] fields = line.split(":", 3);
            if (fields.length == 3 && (unified ? fields[0].equals("0") && fields[1].isEmpty()
                    : List.of(fields[1].split(",")).contains("memory"))) {
                Path group = hierarchy.resolve(fields[2].replaceFirst("^/+", "")).normalize();
                return group.startsWith(hierarchy) && Files.isDirectory(group) ? group : hierarchy;
            }
        }
        return hierarchy;
    }

    /** The first number of a one-line file such as memory.max; −1 when it is missing or says "max". */
    private static long number(Path file) throws IOException {
        if (!Files.isRegularFile(file)) {
            return -1;
        }
        String value = Files.readString(file).trim();
        return value.matches("[0-9]+") ? Long.parseLong(value) : -1;
    }

    /** The value of {@code key} in a "key value" file such as memory.stat; −1 when absent. */
    private static long statistic(Path file, String key) throws IOException {
        if (Files.isRegularFile(file)) {
            for (String line : Files.readAllLines(file)) {
                if (line.startsWith(key + " ")) {
                    return Long.parseLong(line.substring(key.length()).trim());
                }
            }
        }
        return -1;
    }

    /** A "Key:   123 kB" line of meminfo in bytes; Long.MAX_VALUE when absent. */
    private static long kibibytes(Path meminfo, String key) throws IOException {
        if (Files.isRegularFile(meminfo)) {
            for (String line : Files.readAllLines(meminfo)) {
                if (line.startsWith(key)) {
                    return 1024 * Long.parseLong(line.replaceAll("[^0-9]", ""));
                }
            }
        }
        return Long.MAX_VALUE;
    }

    /** Usable bytes on the file system that {@code target} is (or would be) created on. */
    public static long diskAvailable(Path target) throws IOException {
        Path existing = existingAncestor(target);
        return existing == null ? Long.MAX_VALUE : Files.getFileStore(existing).getUsableSpace();
    }

    /** {@code target}, or the nearest of its parents that exists; null where none does. */
    private static Path existingAncestor(Path target) {
        Path existing = target.toAbsolutePath();
        while (existing != null && !Files.exists(existing)) {
            existing = existing.getParent();
        }
        return existing;
    }

    /**
     * @param what    what the bytes are for, e.g. "4.4 GB float32 weights + 1.2 GB activations"
     * @param options what would make it fit, e.g. "try --quantize nf4 or " + {@link #LARGER_HEAP}
     */
    public static void requireHeap(long needed, String what, String options) throws InsufficientResourcesException {
        if (!heapHolds(needed)) {
            throw new InsufficientResourcesException("needs about " + size(needed) + " of Java heap (" + what
                    + ") but the JVM has " + size(heapAvailable()) + " left (-Xmx " + size(Runtime.getRuntime().maxMemory())
                    + "); " + options);
        }
    }

    /** Memory outside the heap (quantized weights, mapped files held resident). */
    public static void requireMemory(long needed, String what, String options) throws InsufficientResourcesException {
        Memory memory = memory();
        if (needed > memory.availableBytes()) {
            throw new InsufficientResourcesException("needs about " + size(needed) + " of memory outside the Java heap ("
                    + what + ") but " + memory.describe() + "; " + options);
        }
    }

    /**
     * Free disk where {@code target} goes, checked before anything is written. The message, like the other checks',
     * names no command: the CLI's "loraflow COMMAND: " and the services' events put it in context.
     */
    public static void requireDisk(Path target, long needed, String what) throws IOException {
        long available = diskAvailable(target);
        if (needed > available) {
            throw new InsufficientResourcesException("needs about " + size(needed) + " of disk (" + what + ") at "
                    + target + ", but its file system has " + size(available) + " free");
        }
    }

    /** Bytes to be written under {@code target}, and what they are, for {@link #requireDisk(List)}. */
    public record DiskNeed(Path target, long bytes, String what) {}

    /**
     * Free disk for several writes that will be there at once, checked before any of them: the needs whose targets are
     * on one file system are added up (a staging directory and an artifact store on one disk hold two copies), and
     * each file system must hold its sum.
     */
    public static void requireDisk(List<DiskNeed> needs) throws IOException {
        Map<Object, List<DiskNeed>> byFileSystem = new LinkedHashMap<>();
        for (DiskNeed need : needs) {
            Path existing = existingAncestor(need.target());
            Object fileSystem = existing == null ? need.target() : Files.getFileStore(existing);
            byFileSystem.computeIfAbsent(fileSystem, key -> new ArrayList<>()).add(need);
        }
        for (List<DiskNeed> group : byFileSystem.values()) {
            DiskNeed first = group.getFirst();
            if (group.size() == 1) {
                requireDisk(first.target(), first.bytes(), first.what());
                continue;
            }
            long needed = group.stream().mapToLong(DiskNeed::bytes).sum();
            long available = diskAvailable(first.target());
            if (needed > available) {
                throw new InsufficientResourcesException("needs about " + size(needed) + " of disk on one file system ("
                        + group.stream().map(need -> need.what() + ", " + size(need.bytes()) + " at " + need.target())
                        .collect(Collectors.joining("; ")) + "), but it has " + size(available) + " free");
            }
        }
    }

    /** Bytes for people: 812 MB, 4.4 GB. */
    public static String size(long bytes) {
        if (bytes >= 1L << 30) {
            return String.format(Locale.ROOT, "%.1f GB", bytes / (double) (1L << 30));
        }
        return String.format(Locale.ROOT, "%d MB", Math.max(1, (bytes + (1L << 19)) >> 20));
    }
}
