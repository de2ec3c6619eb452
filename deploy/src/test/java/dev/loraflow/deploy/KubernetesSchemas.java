package dev.loraflow.deploy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import com.networknt.schema.JsonSchema;
import com.networknt.schema.JsonSchemaFactory;
import com.networknt.schema.PathType;
import com.networknt.schema.SchemaValidatorsConfig;
import com.networknt.schema.SpecVersion;
import com.networknt.schema.ValidationMessage;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The API schemas of the kinds the manifests use, vendored under {@code src/test/resources/schemas} (its
 * README names their sources): the Kubernetes 1.36 OpenAPI definitions and the CRDs of Strimzi
 * {@value #STRIMZI_RELEASE}. Read as the API server decodes a request with strict field validation (what
 * {@code kubectl apply} asks for): an unknown field is an error, int-or-string fields take either, and a
 * Quantity may be a number.
 */
final class KubernetesSchemas {

    /** The Strimzi release the manifests are written for; its CRDs and kafka-versions.yaml are vendored. */
    static final String STRIMZI_RELEASE = "1.1.0";
    static final String KUBERNETES_RELEASE = "1.36";

    private static final String ROOT = "/schemas/";
    private static final List<String> STRIMZI_CRDS = List.of("040-Crd-kafka.yaml", "043-Crd-kafkatopic.yaml",
            "044-Crd-kafkauser.yaml", "045-Crd-kafkanodepool.yaml");
    private static final String DEFINITIONS = "#/definitions/";
    private static final String OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
    private static final String QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity";
    /** Keywords whose value is one schema, and those whose value maps names to schemas. */
    private static final Set<String> SCHEMA_KEYWORDS = Set.of("items", "additionalProperties", "not");
    private static final Set<String> SCHEMA_MAP_KEYWORDS = Set.of("properties", "patternProperties", "definitions");
    private static final Set<String> SCHEMA_LIST_KEYWORDS = Set.of("allOf", "anyOf", "oneOf");

    private static final JsonSchemaFactory FACTORY = JsonSchemaFactory.getInstance(SpecVersion.VersionFlag.V4);
    private static final SchemaValidatorsConfig CONFIG = SchemaValidatorsConfig.builder().pathType(PathType.JSON_PATH).build();

    /** Schema by {@code apiVersion/kind}, e.g. {@code apps/v1/Deployment}. */
    private final Map<String, JsonSchema> schemas;

    private KubernetesSchemas(Map<String, JsonSchema> schemas) {
        this.schemas = schemas;
    }

    static KubernetesSchemas load() {
        ObjectNode definitions = JsonNodeFactory.instance.objectNode();
        read(new ObjectMapper(), "kubernetes-" + KUBERNETES_RELEASE + "/swagger.json").path("definitions").properties()
                .forEach(definition -> definitions.set(definition.getKey(), strict(definition.getValue())));
        // resource.Quantity's decoder takes a JSON number as well as a string (cpu: 2, nvidia.com/gpu: 1).
        ((ObjectNode) definitions.path(QUANTITY)).set("type", types("string", "number"));
        Map<String, JsonSchema> schemas = new HashMap<>();
        definitions.properties().forEach(definition -> {
            for (JsonNode kind : definition.getValue().path("x-kubernetes-group-version-kind")) {
                String group = kind.path("group").asText();
                String apiVersion = group.isEmpty() ? kind.path("version").asText() : group + "/" + kind.path("version").asText();
                ObjectNode schema = JsonNodeFactory.instance.objectNode();
                schema.put("$ref", DEFINITIONS + definition.getKey());
                schema.set("definitions", definitions);
                schemas.put(apiVersion + "/" + kind.path("kind").asText(), FACTORY.getSchema(schema, CONFIG));
            }
        });
        YAMLMapper yaml = new YAMLMapper();
        for (String file : STRIMZI_CRDS) {
            JsonNode crd = read(yaml, "strimzi-" + STRIMZI_RELEASE + "/" + file).path("spec");
            for (JsonNode version : crd.path("versions")) {
                if (!version.path("served").asBoolean()) {
                    continue;
                }
                ObjectNode schema = (ObjectNode) strict(version.path("schema").path("openAPIV3Schema"));
                // The API server checks a custom resource's metadata as it does any object's.
                ((ObjectNode) schema.path("properties")).set("metadata",
                        JsonNodeFactory.instance.objectNode().put("$ref", DEFINITIONS + OBJECT_META));
                schema.set("definitions", definitions);
                schemas.put(crd.path("group").asText() + "/" + version.path("name").asText() + "/"
                        + crd.path("names").path("kind").asText(), FACTORY.getSchema(schema, CONFIG));
            }
        }
        return new KubernetesSchemas(Map.copyOf(schemas));
    }

    /**
     * What the API server would reject in one object, each as {@code PATH: MESSAGE}; empty when it is valid.
     * An object of a kind without a vendored schema is itself a problem.
     */
    List<String> problems(JsonNode object) {
        String key = object.path("apiVersion").asText() + "/" + object.path("kind").asText();
        JsonSchema schema = schemas.get(key);
        if (schema == null) {
            return List.of("$: no schema for " + key + " (add it to deploy/vendor-schemas.py and rerun it)");
        }
        List<String> problems = new ArrayList<>();
        schema.validate(object).stream().sorted(Comparator.comparing(message -> message.getInstanceLocation().toString()))
                .forEach(message -> problems.add(describe(message)));
        return problems;
    }

    /** The message names the path first: {@code $.spec.replicas: string found, integer expected}. */
    private static String describe(ValidationMessage message) {
        return message.getMessage();
    }

    /**
     * A copy of the schema as strict field validation reads it: an object with properties and no
     * additionalProperties closed to other fields (unless it preserves unknown fields), int-or-string fields
     * open to both, and the vendor extensions, which the validator does not know, left out.
     */
    private static JsonNode strict(JsonNode schema) {
        return strict(schema, true);
    }

    /**
     * With {@code close} false (inside allOf, anyOf, oneOf or not) no object is closed: a structural schema's
     * junctors only constrain fields the enclosing schema declares (Strimzi's env entry is {@code oneOf} of
     * {@code {properties: {value: {}}}} and {@code {properties: {valueFrom: {}}}} beside its {@code name}).
     */
    private static JsonNode strict(JsonNode schema, boolean close) {
        if (!schema.isObject()) {
            return schema.deepCopy();
        }
        ObjectNode copy = JsonNodeFactory.instance.objectNode();
        schema.properties().forEach(entry -> {
            String keyword = entry.getKey();
            JsonNode value = entry.getValue();
            if (SCHEMA_KEYWORDS.contains(keyword)) {
                copy.set(keyword, strict(value, close && !keyword.equals("not")));
            } else if (SCHEMA_MAP_KEYWORDS.contains(keyword)) {
                ObjectNode map = copy.putObject(keyword);
                value.properties().forEach(named -> map.set(named.getKey(), strict(named.getValue(), close)));
            } else if (SCHEMA_LIST_KEYWORDS.contains(keyword)) {
                ArrayNode list = copy.putArray(keyword);
                value.forEach(element -> list.add(strict(element, false)));
            } else if (!keyword.startsWith("x-") || keyword.equals("x-kubernetes-group-version-kind")) {
                copy.set(keyword, value.deepCopy());
            }
        });
        if (schema.path("x-kubernetes-int-or-string").asBoolean(false) || schema.path("format").asText().equals("int-or-string")) {
            copy.set("type", types("integer", "string"));
            copy.remove("format");
        }
        if (close && schema.has("properties") && !schema.has("additionalProperties")
                && !schema.path("x-kubernetes-preserve-unknown-fields").asBoolean(false)) {
            copy.put("additionalProperties", false);
        }
        return copy;
    }

    private static ArrayNode types(String... types) {
        ArrayNode array = JsonNodeFactory.instance.arrayNode();
        for (String type : types) {
            array.add(type);
        }
        return array;
    }

    private static JsonNode read(ObjectMapper mapper, String resource) {
        try (InputStream in = KubernetesSchemas.class.getResourceAsStream(ROOT + resource)) {
            if (in == null) {
                throw new IllegalStateException("no test resource " + ROOT + resource);
            }
            return mapper.readTree(in);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The Kafka versions the vendored Strimzi release supports (kafka-versions.yaml, supported: true). */
    static List<String> strimziKafkaVersions() {
        List<String> versions = new ArrayList<>();
        for (JsonNode entry : read(new YAMLMapper(), "strimzi-" + STRIMZI_RELEASE + "/kafka-versions.yaml")) {
            if (entry.path("supported").asBoolean(false)) {
                versions.add(entry.path("version").asText());
            }
        }
        return versions;
    }
}
