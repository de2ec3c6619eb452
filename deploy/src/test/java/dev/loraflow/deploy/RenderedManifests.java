package dev.loraflow.deploy;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/** The resources one overlay renders to ({@code kubectl kustomize DIR}), with the lookups the checks need. */
final class RenderedManifests {

    /** The kubectl to run: {@code -Dloraflow.kubectl=PATH}, or kubectl on the PATH. */
    static final String KUBECTL = System.getProperty("loraflow.kubectl", "kubectl");

    /** The overlays, each a directory under this one. */
    static final Path OVERLAYS = Path.of("kubernetes/overlays").toAbsolutePath();

    private static final YAMLMapper YAML = new YAMLMapper();
    private static final Map<String, RenderedManifests> RENDERED = new ConcurrentHashMap<>();

    private final String overlay;
    private final List<JsonNode> resources;

    private RenderedManifests(String overlay, List<JsonNode> resources) {
        this.overlay = overlay;
        this.resources = resources;
    }

    /** The names of the overlays, sorted. */
    static List<String> overlays() throws IOException {
        try (Stream<Path> directories = Files.list(OVERLAYS)) {
            return directories.filter(Files::isDirectory).map(directory -> directory.getFileName().toString()).sorted().toList();
        }
    }

    /** One overlay rendered, once per test JVM; the calling test is skipped, saying why, where kubectl is missing. */
    static RenderedManifests rendered(String overlay) {
        assumeTrue(kubectlAvailable(), "kubectl (" + KUBECTL + ") is not installed, so the Kubernetes manifests are "
                + "neither rendered nor checked; on Debian: apt-get install -y kubernetes-client");
        return RENDERED.computeIfAbsent(overlay, name -> render(OVERLAYS.resolve(name)));
    }

    static boolean kubectlAvailable() {
        if (KUBECTL.contains(File.separator)) {
            return Files.isExecutable(Path.of(KUBECTL));
        }
        String path = System.getenv().getOrDefault("PATH", "");
        return Stream.of(path.split(File.pathSeparator)).filter(directory -> !directory.isEmpty())
                .anyMatch(directory -> Files.isExecutable(Path.of(directory, KUBECTL)));
    }

    static RenderedManifests render(Path overlayDirectory) {
        try {
            Path stderr = Files.createTempFile("kustomize", ".err");
            try {
                Process process = new ProcessBuilder(KUBECTL, "kustomize", overlayDirectory.toString())
                        .redirectError(stderr.toFile()).start();
                String yaml = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                if (!process.waitFor(60, TimeUnit.SECONDS)) {
                    process.destroyForcibly();
                    throw new AssertionError(KUBECTL + " kustomize " + overlayDirectory + " did not finish in 60 s");
                }
                if (process.exitValue() != 0) {
                    throw new AssertionError(KUBECTL + " kustomize " + overlayDirectory + " failed (exit "
                            + process.exitValue() + "): " + Files.readString(stderr));
                }
                List<JsonNode> documents = YAML.readerFor(JsonNode.class).<JsonNode>readValues(yaml).readAll();
                return new RenderedManifests(overlayDirectory.getFileName().toString(),
                        documents.stream().filter(document -> document != null && document.isObject()).toList());
            } finally {
                Files.deleteIfExists(stderr);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted while rendering " + overlayDirectory, e);
        }
    }

    String overlay() {
        return overlay;
    }

    List<JsonNode> all() {
        return resources;
    }

    List<JsonNode> ofKind(String kind) {
        return resources.stream().filter(resource -> kind.equals(resource.path("kind").asText())).toList();
    }

    Optional<JsonNode> find(String kind, String name) {
        return ofKind(kind).stream().filter(resource -> name.equals(name(resource))).findFirst();
    }

    JsonNode require(String kind, String name) {
        return find(kind, name).orElseThrow(() -> new AssertionError(overlay + ": no " + kind + " named " + name));
    }

    static String name(JsonNode resource) {
        return resource.path("metadata").path("name").asText();
    }

    static List<JsonNode> elements(JsonNode array) {
        List<JsonNode> list = new ArrayList<>();
        array.forEach(list::add);
        return list;
    }

    /** The containers of a Deployment's pod template; with {@code init} its init containers. */
    static List<JsonNode> containers(JsonNode deployment, boolean init) {
        return elements(deployment.path("spec").path("template").path("spec").path(init ? "initContainers" : "containers"));
    }

    static JsonNode container(JsonNode deployment, String name) {
        return containers(deployment, false).stream().filter(container -> name.equals(container.path("name").asText()))
                .findFirst().orElseThrow(() -> new AssertionError("Deployment " + name(deployment) + " has no container " + name));
    }

    /**
     * The environment a container starts with: its envFrom ConfigMaps and Secrets in order, then its own
     * env values (later ones win, as the kubelet does it). Entries taken from elsewhere (valueFrom) map to null.
     */
    Map<String, String> environment(JsonNode container) {
        Map<String, String> environment = new LinkedHashMap<>();
        for (JsonNode source : elements(container.path("envFrom"))) {
            if (source.has("configMapRef")) {
                JsonNode configMap = require("ConfigMap", source.path("configMapRef").path("name").asText());
                configMap.path("data").properties().forEach(entry -> environment.put(entry.getKey(), entry.getValue().asText()));
            } else if (source.has("secretRef")) {
                JsonNode secret = require("Secret", source.path("secretRef").path("name").asText());
                secret.path("data").properties().forEach(entry -> environment.put(entry.getKey(),
                        new String(Base64.getDecoder().decode(entry.getValue().asText()), StandardCharsets.UTF_8)));
                secret.path("stringData").properties().forEach(entry -> environment.put(entry.getKey(), entry.getValue().asText()));
            } else {
                throw new AssertionError(overlay + ": envFrom entry of neither a ConfigMap nor a Secret: " + source);
            }
        }
        for (JsonNode variable : elements(container.path("env"))) {
            environment.put(variable.path("name").asText(), variable.has("value") ? variable.path("value").asText() : null);
        }
        return environment;
    }

    /**
     * A Kubernetes quantity as a number: {@code 500m} = 0.5, {@code 8Gi} = 8·2³⁰, {@code 2} = 2.
     *
     * @throws IllegalArgumentException for a quantity it does not read
     */
    static BigDecimal quantity(JsonNode value) {
        String text = value.asText();
        String[][] suffixes = {{"Ki", "1024"}, {"Mi", "1048576"}, {"Gi", "1073741824"}, {"Ti", "1099511627776"},
                {"m", "0.001"}, {"k", "1000"}, {"M", "1000000"}, {"G", "1000000000"}, {"T", "1000000000000"}};
        try {
            for (String[] suffix : suffixes) {
                if (text.endsWith(suffix[0])) {
                    return new BigDecimal(text.substring(0, text.length() - suffix[0].length())).multiply(new BigDecimal(suffix[1]));
                }
            }
            return new BigDecimal(text);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("not a Kubernetes quantity: '" + text + "'", e);
        }
    }
}
