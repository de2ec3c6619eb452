package dev.loraflow.core.merge;

import java.io.IOException;
import java.util.Objects;

/**
 * An adapter that cannot be merged into a base: the message names the module, tensor or digest that is
 * wrong, and {@link #kind()} says which check refused it, so a service can report it as data.
 */
public final class MergeException extends IOException {

    /** Which check refused the merge; the names are what failure events carry. */
    public enum Kind {
        /** The adapter was trained on another base than the one it is merged into. */
        BASE_SHA256_MISMATCH("base_sha256_mismatch"),
        /** The stored artifact's content does not match the digest its event names. */
        ARTIFACT_SHA256_MISMATCH("artifact_sha256_mismatch"),
        /** The adapter adapts a module the base does not have. */
        MISSING_TARGET_MODULE("missing_target_module"),
        /** The adapter's factors do not fit the base module's weight. */
        SHAPE_MISMATCH("shape_mismatch"),
        /** NaN or Inf in the adapter or in the merged weight. */
        NON_FINITE("non_finite"),
        /** A merge loraflow does not do, e.g. into an output head tied to the embeddings. */
        UNSUPPORTED("unsupported");

        private final String code;

        Kind(String code) {
            this.code = code;
        }

        /** The snake_case name events use. */
        public String code() {
            return code;
        }
    }

    private final Kind kind;

    public MergeException(Kind kind, String message) {
        super(message);
        this.kind = Objects.requireNonNull(kind, "kind");
    }

    public MergeException(Kind kind, String message, Throwable cause) {
        super(message, cause);
        this.kind = Objects.requireNonNull(kind, "kind");
    }

    public Kind kind() {
        return kind;
    }
}
