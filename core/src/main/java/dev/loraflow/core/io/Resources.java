package dev.loraflow.core.io;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

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

    private Resources() {}

    /** Bytes the Java heap may still grow to hold: the maximum heap less what is in use. */
    public static long heapAvailable() {
        Runtime runtime = Runtime.getRuntime();
        return runtime.maxMemory() - (runtime.totalMemory() - runtime.freeMemory());
    }

    /** Memory the kernel reports available for new allocations (MemAvailable), or Long.MAX_VALUE where unknown. */
    public static long memoryAvailable() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
                if (line.startsWith("MemAvailable:")) {
                    return 1024 * Long.parseLong(line.replaceAll("[^0-9]", ""));
                }
            }
        } catch (IOException | NumberFormatException | SecurityException unreadable) {
            // not Linux, or not allowed to look: nothing to check against
        }
        return Long.MAX_VALUE;
    }

    /** Usable bytes on the file system that {@code target} is (or would be) created on. */
    public static long diskAvailable(Path target) throws IOException {
        Path existing = target.toAbsolutePath();
        while (existing != null && !Files.exists(existing)) {
            existing = existing.getParent();
        }
        return existing == null ? Long.MAX_VALUE : Files.getFileStore(existing).getUsableSpace();
    }

    /**
     * @param what    what the bytes are for, e.g. "4.4 GB float32 weights + 1.2 GB activations"
     * @param options what would make it fit, e.g. "try --quantize nf4 or " + {@link #LARGER_HEAP}
     */
    public static void requireHeap(long needed, String what, String options) throws InsufficientResourcesException {
        long available = heapAvailable();
        if (needed > available) {
            throw new InsufficientResourcesException("needs about " + size(needed) + " of Java heap (" + what
                    + ") but the JVM has " + size(available) + " left (-Xmx " + size(Runtime.getRuntime().maxMemory())
                    + "); " + options);
        }
    }

    /** Memory outside the heap (quantized weights, mapped files held resident). */
    public static void requireMemory(long needed, String what, String options) throws InsufficientResourcesException {
        long available = memoryAvailable();
        if (needed > available) {
            throw new InsufficientResourcesException("needs about " + size(needed) + " of memory outside the Java heap ("
                    + what + ") but " + size(available) + " is available; " + options);
        }
    }

    /** Free disk where {@code target} goes, checked before anything is written. */
    public static void requireDisk(String command, Path target, long needed, String what) throws IOException {
        long available = diskAvailable(target);
        if (needed > available) {
            throw new InsufficientResourcesException(command + " writes about " + size(needed) + " (" + what + ") to "
                    + target + ", but its file system has " + size(available) + " free");
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
