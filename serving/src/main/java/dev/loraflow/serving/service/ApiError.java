package dev.loraflow.serving.service;

/**
 * A request refused with a 4xx: what is wrong, the parameter at fault (or null), and a code for
 * programs (OpenAI's {@code code}, e.g. "model_not_found").
 */
public final class ApiError extends RuntimeException {

    private final int status;
    private final String param;
    private final String code;

    public ApiError(int status, String message, String param, String code) {
        super(message);
        this.status = status;
        this.param = param;
        this.code = code;
    }

    public static ApiError badParameter(String param, String message) {
        return new ApiError(400, message, param, "invalid_parameter");
    }

    public int status() {
        return status;
    }

    public String param() {
        return param;
    }

    public String code() {
        return code;
    }

    /** OpenAI's error type for the status: a client's mistake for a 4xx, the server's for a 5xx. */
    public String type() {
        return switch (status) {
            case 401 -> "authentication_error";
            case 404 -> "not_found_error";
            case 413 -> "request_too_large";
            case 429 -> "rate_limit_error";
            case 503 -> "service_unavailable";
            case 504 -> "timeout_error";
            default -> status >= 500 ? "server_error" : "invalid_request_error";
        };
    }
}
