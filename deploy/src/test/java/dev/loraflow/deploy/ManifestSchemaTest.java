package dev.loraflow.deploy;

import static dev.loraflow.deploy.RenderedManifests.name;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every object every overlay renders is valid for its kind's API schema — Kubernetes 1.36's OpenAPI, Strimzi
 * 1.1.0's CRDs, vendored under src/test/resources/schemas — as the API server checks it with strict field
 * validation; and the validator does reject what the API server would (wrong types, unknown fields, missing
 * required fields, values outside an enum, kinds it has no schema for).
 */
class ManifestSchemaTest {

    private static final KubernetesSchemas SCHEMAS = KubernetesSchemas.load();
    private static final Path BASE = Path.of("kubernetes/base").toAbsolutePath();

    static List<String> overlays() throws IOException {
        return RenderedManifests.overlays();
    }

    @ParameterizedTest
    @MethodSource("overlays")
    void everyRenderedObjectIsValidForItsKindsSchema(String overlay) {
        RenderedManifests manifests = RenderedManifests.rendered(overlay);
        List<String> problems = new ArrayList<>();
        for (JsonNode object : manifests.all()) {
            SCHEMAS.problems(object).forEach(problem -> problems.add(overlay + ": " + object.path("apiVersion").asText() + " "
                    + object.path("kind").asText() + " " + name(object) + ": " + problem));
        }
        assertTrue(problems.isEmpty(), problems.size() + " problem(s):\n" + String.join("\n", problems));
        assertTrue(manifests.all().size() > 20, overlay + ": rendered only " + manifests.all().size() + " objects");
    }

    @Test
    void aDeploymentWithAStringForItsReplicasIsRejected() throws IOException {
        ObjectNode serving = valid("serving.yaml", "Deployment", "serving");
        ((ObjectNode) serving.path("spec")).put("replicas", "two");
        assertRejected(serving, "$.spec.replicas", "integer");
    }

    @Test
    void anUnknownFieldOfAContainerIsRejected() throws IOException {
        ObjectNode serving = valid("serving.yaml", "Deployment", "serving");
        ((ObjectNode) serving.at("/spec/template/spec/containers/0")).put("imagePullPolice", "Always");
        assertRejected(serving, "$.spec.template.spec.containers[0]", "imagePullPolice");
    }

    @Test
    void aContainerWithoutANameIsRejected() throws IOException {
        ObjectNode serving = valid("serving.yaml", "Deployment", "serving");
        ((ObjectNode) serving.at("/spec/template/spec/containers/0")).remove("name");
        assertRejected(serving, "$.spec.template.spec.containers[0]", "name");
    }

    @Test
    void anUnknownFieldOfAnObjectsMetadataIsRejected() throws IOException {
        ObjectNode topic = valid("topics.yaml", "KafkaTopic", "loraflow.training.jobs");
        ((ObjectNode) topic.path("metadata")).put("label", "x");
        assertRejected(topic, "$.metadata", "label");
    }

    @Test
    void aKafkaListenerOfAnUnknownTypeIsRejected() throws IOException {
        ObjectNode kafka = valid("kafka.yaml", "Kafka", "loraflow");
        ((ObjectNode) kafka.at("/spec/kafka/listeners/0")).put("type", "internall");
        assertRejected(kafka, "$.spec.kafka.listeners[0].type", "internal");
    }

    @Test
    void anUnknownFieldOfAKafkaIsRejected() throws IOException {
        ObjectNode kafka = valid("kafka.yaml", "Kafka", "loraflow");
        ((ObjectNode) kafka.at("/spec/kafka")).put("zookeeperConnect", "zookeeper:2181");
        assertRejected(kafka, "$.spec.kafka", "zookeeperConnect");
    }

    /** Strimzi's env entries are a name and oneOf value or valueFrom: one is valid, both are not. */
    @Test
    void aContainerEnvEntryOfAKafkaTakesAValueOrAValueFromButNotBoth() throws IOException {
        ObjectNode kafka = valid("kafka.yaml", "Kafka", "loraflow");
        ObjectNode entry = ((ObjectNode) kafka.at("/spec/kafka")).putObject("template").putObject("kafkaContainer").putArray("env")
                .addObject().put("name", "KAFKA_HEAP_OPTS").put("value", "-Xmx2g");
        assertEquals(List.of(), SCHEMAS.problems(kafka));
        entry.putObject("valueFrom").putObject("secretKeyRef").put("name", "heap").put("key", "opts");
        assertRejected(kafka, "$.spec.kafka.template.kafkaContainer.env[0]", "one and only one schema");
    }

    @Test
    void aKafkaTopicWithAStringForItsPartitionsIsRejected() throws IOException {
        ObjectNode topic = valid("topics.yaml", "KafkaTopic", "loraflow.training.jobs");
        ((ObjectNode) topic.path("spec")).put("partitions", "eight");
        assertRejected(topic, "$.spec.partitions", "integer");
    }

    @Test
    void anObjectOfAKindWithoutASchemaIsRejected() throws IOException {
        ObjectNode serving = valid("serving.yaml", "Deployment", "serving");
        serving.put("apiVersion", "apps/v1beta1");
        assertRejected(serving, "$", "no schema for apps/v1beta1/Deployment");
    }

    /**
     * Strimzi's CRD takes any string as the Kafka version, so a version the operator does not run passes the
     * schema: the versions it runs are those its kafka-versions.yaml supports, which KubernetesManifestsTest
     * holds the manifests to.
     */
    @Test
    void aKafkaVersionStrimziDoesNotRunPassesTheSchemaButIsNotASupportedVersion() throws IOException {
        ObjectNode kafka = valid("kafka.yaml", "Kafka", "loraflow");
        ((ObjectNode) kafka.at("/spec/kafka")).put("version", "4.1.1");
        assertEquals(List.of(), SCHEMAS.problems(kafka));
        List<String> supported = KubernetesSchemas.strimziKafkaVersions();
        assertEquals(List.of("4.2.0", "4.2.1", "4.3.0"), supported, "the Kafka versions Strimzi "
                + KubernetesSchemas.STRIMZI_RELEASE + " supports");
        assertFalse(supported.contains("4.1.1"));
    }

    /** One object of a base file, checked to be valid as it is (so that a rejection is the change's alone). */
    private static ObjectNode valid(String file, String kind, String name) throws IOException {
        for (JsonNode document : new YAMLMapper().readerFor(JsonNode.class).<JsonNode>readValues(BASE.resolve(file).toFile()).readAll()) {
            if (kind.equals(document.path("kind").asText()) && name.equals(name(document))) {
                assertEquals(List.of(), SCHEMAS.problems(document), file + ": " + kind + " " + name + " as it is");
                return (ObjectNode) document;
            }
        }
        throw new AssertionError(file + " has no " + kind + " named " + name);
    }

    private static void assertRejected(JsonNode object, String path, String mentioning) {
        List<String> problems = SCHEMAS.problems(object);
        assertTrue(problems.stream().anyMatch(problem -> problem.startsWith(path + ": ") && problem.contains(mentioning)),
                "expected a problem at " + path + " mentioning " + mentioning + ", got " + problems);
    }
}
