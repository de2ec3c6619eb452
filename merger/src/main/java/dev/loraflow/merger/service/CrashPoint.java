package dev.loraflow.merger.service;

/**
 * A test-only fault ({@code loraflow.merger.fault=crash-after-export:<job id>}): the first merge of that
 * job dies after its ONNX file is written and verified in the staging directory, before anything goes
 * into the store, as a killed process would. The checkpoint is then taken up again from the start, as a
 * restarted process does from its committed offset. With {@code out-of-memory-after-export:<job id>} it is an
 * {@link OutOfMemoryError} instead, which stops the merger's consumption as a real one would.
 */
public final class CrashPoint {

    /** No fault: the service's setting. */
    public static final String NONE = "none";
    private static final String AFTER_EXPORT = "crash-after-export:";
    private static final String OUT_OF_MEMORY = "out-of-memory-after-export:";

    /** Thrown where the process would have died; an Error, so that no failure handling catches it. */
    public static final class SimulatedCrash extends Error {
        SimulatedCrash(String message) {
            super(message);
        }
    }

    private final String jobId;
    private final boolean outOfMemory;
    private boolean fired;

    private CrashPoint(String jobId, boolean outOfMemory) {
        this.jobId = jobId;
        this.outOfMemory = outOfMemory;
    }

    public static CrashPoint parse(String spec) {
        if (spec == null || spec.isBlank() || spec.strip().equals(NONE)) {
            return new CrashPoint(null, false);
        }
        if (spec.startsWith(OUT_OF_MEMORY) && spec.length() > OUT_OF_MEMORY.length()) {
            return new CrashPoint(spec.substring(OUT_OF_MEMORY.length()), true);
        }
        if (!spec.startsWith(AFTER_EXPORT) || spec.length() == AFTER_EXPORT.length()) {
            throw new IllegalArgumentException("loraflow.merger.fault must be " + NONE + ", " + AFTER_EXPORT + "<job id> or "
                    + OUT_OF_MEMORY + "<job id>, got '" + spec + "'");
        }
        return new CrashPoint(spec.substring(AFTER_EXPORT.length()), false);
    }

    synchronized void afterExport(String job) {
        if (jobId != null && jobId.equals(job) && !fired) {
            fired = true;
            if (outOfMemory) {
                throw new OutOfMemoryError("injected out-of-memory after exporting job " + job);
            }
            throw new SimulatedCrash("simulated crash after exporting job " + job);
        }
    }
}
