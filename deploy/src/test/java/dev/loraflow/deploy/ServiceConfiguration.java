package dev.loraflow.deploy;

import java.io.IOException;
import java.io.Reader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Collectors;

/**
 * A service's configuration keys and defaults, read from its {@code src/main/resources/application.properties},
 * and what a container's environment makes of them.
 */
final class ServiceConfiguration {

    private final String service;
    private final Map<String, String> defaults;

    private ServiceConfiguration(String service, Map<String, String> defaults) {
        this.service = service;
        this.defaults = defaults;
    }

    static ServiceConfiguration of(Path repository, String service) {
        Path file = repository.resolve(service).resolve("src/main/resources/application.properties");
        Properties properties = new Properties();
        try (Reader reader = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            properties.load(reader);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file, e);
        }
        Map<String, String> defaults = new TreeMap<>();
        properties.stringPropertyNames().forEach(key -> defaults.put(key, properties.getProperty(key)));
        return new ServiceConfiguration(service, defaults);
    }

    /** MicroProfile Config's environment name of a key: every character but [A-Za-z0-9] becomes '_', upper case. */
    static String environmentName(String key) {
        return key.replaceAll("[^A-Za-z0-9]", "_").toUpperCase(Locale.ROOT);
    }

    String service() {
        return service;
    }

    Set<String> keys() {
        return defaults.keySet();
    }

    boolean knowsEnvironmentName(String variable) {
        return defaults.keySet().stream().anyMatch(key -> environmentName(key).equals(variable));
    }

    /** The key's value in a container with this environment: its variable when set and not empty, else the default. */
    String effective(String key, Map<String, String> environment) {
        if (!defaults.containsKey(key)) {
            throw new AssertionError(service + "'s application.properties has no key " + key);
        }
        String value = environment.get(environmentName(key));
        return value == null || value.isEmpty() ? defaults.get(key) : value;
    }

    /** The keys under {@code loraflow.topics.} that name a topic (the others are partition counts). */
    Set<String> topicKeys() {
        return defaults.entrySet().stream()
                .filter(entry -> entry.getKey().startsWith("loraflow.topics.") && !entry.getValue().matches("\\d+"))
                .map(Map.Entry::getKey).collect(Collectors.toCollection(TreeSet::new));
    }
}
