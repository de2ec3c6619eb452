package dev.loraflow.platform.reliability;

import dev.loraflow.core.io.Resources;
import dev.loraflow.platform.store.ArtifactIntegrityException;
import java.io.IOException;
import java.io.UncheckedIOException;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.errors.InvalidTopicException;
import org.apache.kafka.common.errors.RecordBatchTooLargeException;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.errors.SerializationException;

/**
 * Whether a consumer's failure on one record goes away by itself. Transient: the file system (a full
 * disk, a store that is not mounted), the broker (down, timing out, rebalancing, refusing for now). The
 * record is then retried with {@link Backoff}, never given up. Anything else — content that does not
 * fit, a digest that does not match, a model too large for this process's memory, a bug — happens again
 * on every try, so the record is set aside with its reason.
 */
public final class Failures {

    private Failures() {}

    public static boolean isTransient(Throwable failure) {
        for (Throwable cause = failure; cause != null; cause = cause.getCause()) {
            if (cause instanceof ArtifactIntegrityException || cause instanceof Resources.InsufficientResourcesException
                    || cause instanceof RecordTooLargeException || cause instanceof RecordBatchTooLargeException
                    || cause instanceof SerializationException || cause instanceof InvalidTopicException) {
                return false;
            }
            if (cause instanceof IOException || cause instanceof UncheckedIOException || cause instanceof KafkaException) {
                return true;
            }
            if (cause.getCause() == cause) {
                break;
            }
        }
        return false;
    }

    /** The message, or the type when there is none, for logs and statuses. */
    public static String describe(Throwable failure) {
        String message = failure.getMessage();
        return message == null || message.isBlank() ? failure.getClass().getSimpleName() : message;
    }
}
