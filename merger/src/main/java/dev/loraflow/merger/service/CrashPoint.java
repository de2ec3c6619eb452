package dev.loraflow.merger.service;

/**
 * A test-only fault ({@code loraflow.merger.fault=crash-after-export:<job id>}): the first merge of that
 * job dies after its ONNX file is written and verified in the staging directory, before anything goes
 * into the store, as a killed process would. The loop then resumes from its committed offset, as a
 * restarted process does. With {@code out-of-memory-after-export:<job id>} it is an
 * {@link OutOfMemoryError} instead, which ends the loop's thread as a real one would.
 */
public final class CrashPoint {

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
        if (spec == null || spec.isBlank()) {
            return new CrashPoint(null, false);
        }
        if (spec.startsWith(OUT_OF_MEMORY) && spec.length() > OUT_OF_MEMORY.length()) {
            return new CrashPoint(spec.substring(OUT_OF_MEMORY.length()), true);
        }
        if (!spec.startsWith(AFTER_EXPORT) || spec.length() == AFTER_EXPORT.length()) {
            throw new IllegalArgumentException("loraflow.merger.fault must be " + AFTER_EXPORT + "<job id> or "
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
