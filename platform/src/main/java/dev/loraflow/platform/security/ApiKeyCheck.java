package dev.loraflow.platform.security;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.List;

/**
 * The services' one scheme for endpoints that change things (the trainer's {@code POST /jobs}, the
 * merger's {@code POST /merges}, serving's {@code /admin}): {@code Authorization: Bearer <key>} or
 * {@code X-API-Key: <key>}, one of the configured keys. With no key configured, nothing is accepted.
 */
public final class ApiKeyCheck {

    private ApiKeyCheck() {}

    /** Compares with every key in constant time, so response timing reveals nothing of a key. */
    public static boolean accepts(List<String> keys, String authorization, String apiKey) {
        return match(keys, authorization, apiKey) != null;
    }

    /** The configured key presented (stripped), compared with every key in constant time; null when none is. */
    public static String match(List<String> keys, String authorization, String apiKey) {
        String presented = apiKey != null ? apiKey
                : authorization != null && authorization.startsWith("Bearer ") ? authorization.substring(7).strip() : null;
        if (presented == null || presented.isEmpty()) {
            return null;
        }
        String match = null;
        for (String key : keys) {
            if (!key.isBlank() && MessageDigest.isEqual(key.strip().getBytes(StandardCharsets.UTF_8),
                    presented.getBytes(StandardCharsets.UTF_8))) {
                match = key.strip();
            }
        }
        return match;
    }

    public static boolean configured(List<String> keys) {
        return keys.stream().anyMatch(key -> !key.isBlank());
    }
}
