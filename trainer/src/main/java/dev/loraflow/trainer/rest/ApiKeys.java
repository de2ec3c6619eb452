package dev.loraflow.trainer.rest;

import dev.loraflow.platform.security.ApiKeyCheck;
import dev.loraflow.platform.security.ConfiguredKeys;
import jakarta.annotation.PostConstruct;
import jakarta.enterprise.context.ApplicationScoped;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import org.eclipse.microprofile.config.inject.ConfigProperty;

/** The API keys that may submit jobs ({@code POST /jobs}), in the services' one scheme: see {@link ApiKeyCheck}. */
@ApplicationScoped
public class ApiKeys {

    @ConfigProperty(name = "loraflow.api-keys")
    Optional<List<String>> inline;
    /** A file of keys, e.g. a mounted Secret: see {@link ConfiguredKeys}. */
    @ConfigProperty(name = "loraflow.api-keys-file")
    Optional<String> file;

    private ConfiguredKeys keys;

    @PostConstruct
    void read() {
        keys = new ConfiguredKeys(inline.orElse(List.of()), file.filter(name -> !name.isBlank()).map(Path::of));
    }

    public boolean accepts(String authorization, String apiKey) {
        return keys.accepts(authorization, apiKey);
    }

    public boolean configured() {
        return keys.configured();
    }
}
