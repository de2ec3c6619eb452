package dev.loraflow.s3server;

/** The local S3 server did not start; the message says why and carries the end of its log. */
public final class S3ServerStartException extends RuntimeException {

    public S3ServerStartException(String message) {
        super(message);
    }

    public S3ServerStartException(String message, Throwable cause) {
        super(message, cause);
    }
}
