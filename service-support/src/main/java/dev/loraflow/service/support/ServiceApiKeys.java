package dev.loraflow.service.support;

import dev.loraflow.platform.security.ApiKeyFilter;
import dev.loraflow.platform.security.ConfiguredKeys;
import jakarta.annotation.PostConstruct;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import org.eclipse.microprofile.config.inject.ConfigProperty;

/**
 * The API-key filter every service runs, configured once: the keys come from {@code loraflow.api-keys}
 * (comma-separated) and {@code loraflow.api-keys-file} (a mounted Secret, re-read when it changes, see
 * {@link ConfiguredKeys}); the check itself is {@link ApiKeyFilter}'s. A service says only what it guards
 * and what a refusal without keys says:
 *
 * <pre>
 * &#64;Provider
 * &#64;PreMatching
 * public class ApiKeys extends ServiceApiKeys implements ContainerRequestFilter {
 *     public ApiKeys() {
 *         super(Guarded.post("/jobs"), "job submission is disabled");
 *     }
 * }
 * </pre>
 *
 * (The subclass names {@code ContainerRequestFilter} itself: Quarkus finds providers in the service's own
 * class index.)
 */
public abstract class ServiceApiKeys extends ApiKeyFilter {

    /** Which requests need a key, by method and path (beginning with "/"). */
    @FunctionalInterface
    public interface Guarded {
        boolean test(String method, String path);

        /** {@code POST path} (with or without a trailing slash). */
        static Guarded post(String path) {
            return (method, requested) -> "POST".equals(method) && (requested.equals(path) || requested.equals(path + "/"));
        }

        /** Every method on {@code prefix} and below it. */
        static Guarded under(String prefix) {
            return (method, requested) -> requested.equals(prefix) || requested.startsWith(prefix + "/");
        }
    }

    @ConfigProperty(name = "loraflow.api-keys")
    protected Optional<List<String>> inline;
    @ConfigProperty(name = "loraflow.api-keys-file")
    protected Optional<String> file;

    private final Guarded guarded;
    private final String disabled;
    private ConfiguredKeys keys;

    /**
     * @param disabled what a request is refused for while no key is configured, e.g. "job submission is
     *                 disabled"; the message goes on to name the settings that enable it
     */
    protected ServiceApiKeys(Guarded guarded, String disabled) {
        this.guarded = guarded;
        this.disabled = disabled;
    }

    @PostConstruct
    void read() {
        keys = new ConfiguredKeys(inline.orElse(List.of()), file.filter(name -> !name.isBlank()).map(Path::of));
    }

    @Override
    protected List<String> keys() {
        return keys.keys();
    }

    @Override
    protected boolean guards(String method, String path) {
        return guarded.test(method, path);
    }

    @Override
    protected String disabledMessage() {
        return disabled + ": no API key is configured (loraflow.api-keys or loraflow.api-keys-file)";
    }
}
