package dev.loraflow.serving.rest;

import jakarta.enterprise.context.ApplicationScoped;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.List;
import java.util.Optional;
import org.eclipse.microprofile.config.inject.ConfigProperty;

/**
 * The API keys that may change what is served (every {@code /admin} endpoint), in the trainer's
 * scheme: {@code Authorization: Bearer <key>} or {@code X-API-Key: <key>}. With no key configured,
 * nothing is accepted.
 */
@ApplicationScoped
public class ApiKeys {

    @ConfigProperty(name = "loraflow.api-keys")
    Optional<List<String>> keys;

    /** Compares in constant time, so response timing reveals nothing of a key. */
    public boolean accepts(String authorization, String apiKey) {
        String presented = apiKey != null ? apiKey
                : authorization != null && authorization.startsWith("Bearer ") ? authorization.substring(7).strip() : null;
        if (presented == null || presented.isEmpty()) {
            return false;
        }
        boolean match = false;
        for (String key : keys.orElse(List.of())) {
            if (!key.isBlank()) {
                match |= MessageDigest.isEqual(key.strip().getBytes(StandardCharsets.UTF_8),
                        presented.getBytes(StandardCharsets.UTF_8));
            }
        }
        return match;
    }

    public boolean configured() {
        return keys.orElse(List.of()).stream().anyMatch(key -> !key.isBlank());
    }
}
