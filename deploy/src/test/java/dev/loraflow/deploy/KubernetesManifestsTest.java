package dev.loraflow.deploy;

import static dev.loraflow.deploy.RenderedManifests.containers;
import static dev.loraflow.deploy.RenderedManifests.elements;
import static dev.loraflow.deploy.RenderedManifests.name;
import static dev.loraflow.deploy.RenderedManifests.quantity;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import dev.loraflow.broker.PlatformUsers;
import dev.loraflow.platform.store.ArtifactStores;
import java.io.IOException;
import java.math.BigDecimal;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.apache.kafka.common.acl.AclBinding;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Renders every overlay under {@code kubernetes/overlays} with {@code kubectl kustomize} and checks the
 * result against itself and against the services' own configuration (their application.properties), so
 * that manifests and services cannot drift apart. Skipped, saying why, where kubectl is not installed.
 */
class KubernetesManifestsTest {

    private static final Path MODULE = Path.of("").toAbsolutePath();
    private static final Path REPOSITORY = MODULE.getParent();
    private static final List<String> SERVICES = List.of("trainer", "merger", "serving");
    private static final String NAMESPACE = "loraflow";
    private static final String GPU = "nvidia.com/gpu";
    private static final String WAIT_FOR_TOPICS = "wait-for-topics";
    /** The label of the pods that Kafka's listeners let in (Strimzi's networkPolicyPeers). */
    private static final String KAFKA_CLIENT_LABEL = "loraflow.dev/kafka-client";
    /** KafkaUser loraflow-trainer is broker/PlatformUsers.java's user trainer, and so on. */
    private static final String KAFKA_USER_PREFIX = "loraflow-";
    private static final Set<String> KAFKA_USER_SECRET_KEYS = Set.of("password", "sasl.jaas.config");
    /**
     * Variables the services read that are not loraflow keys: the broker address, JVM options, Quarkus's own, and
     * the artifact store's S3 settings (ArtifactStores reads them from the environment).
     */
    private static final Set<String> OTHER_VARIABLES = Stream.concat(Stream.of("KAFKA_BOOTSTRAP_SERVERS",
            "JDK_JAVA_OPTIONS", "QUARKUS_SHUTDOWN_TIMEOUT"), ArtifactStores.ENVIRONMENT.stream()).collect(Collectors.toSet());

    private static final Map<String, ServiceConfiguration> CONFIGURATIONS = new ConcurrentHashMap<>();

    static List<String> overlays() throws IOException {
        return RenderedManifests.overlays();
    }

    private static RenderedManifests rendered(String overlay) {
        return RenderedManifests.rendered(overlay);
    }

    private static ServiceConfiguration configuration(String service) {
        return CONFIGURATIONS.computeIfAbsent(service, name -> ServiceConfiguration.of(REPOSITORY, name));
    }

    /** The environment of a service's own container. */
    private static Map<String, String> environment(RenderedManifests manifests, String service) {
        return manifests.environment(RenderedManifests.container(manifests.require("Deployment", service), service));
    }

    private static int replicas(JsonNode deployment) {
        return deployment.path("spec").path("replicas").asInt(1);
    }

    private static JsonNode topic(RenderedManifests manifests, String topicName) {
        return manifests.ofKind("KafkaTopic").stream().filter(topic -> topicName.equals(topicName(topic))).findFirst()
                .orElseThrow(() -> new AssertionError(manifests.overlay() + ": no KafkaTopic for topic " + topicName));
    }

    private static String topicName(JsonNode kafkaTopic) {
        return kafkaTopic.path("spec").path("topicName").asText(name(kafkaTopic));
    }

    private static String cluster(JsonNode strimziResource) {
        return strimziResource.path("metadata").path("labels").path("strimzi.io/cluster").asText();
    }

    private static boolean selects(JsonNode matchLabels, JsonNode deployment) {
        JsonNode labels = deployment.path("spec").path("template").path("metadata").path("labels");
        return !matchLabels.isEmpty() && matchLabels.properties().stream()
                .allMatch(label -> label.getValue().asText().equals(labels.path(label.getKey()).asText(null)));
    }

    private static JsonNode selectedDeployment(RenderedManifests manifests, JsonNode matchLabels, String what) {
        List<JsonNode> selected = manifests.ofKind("Deployment").stream().filter(deployment -> selects(matchLabels, deployment)).toList();
        assertEquals(1, selected.size(), manifests.overlay() + ": " + what + " selects " + selected.size() + " Deployments");
        return selected.getFirst();
    }

    /**
     * The containers of a service's pod that talk to Kafka: its own, and the init containers given a broker
     * address (wait-for-topics; not, in the s3 overlay, fetch-base-models).
     */
    private static List<JsonNode> kafkaClients(RenderedManifests manifests, JsonNode deployment) {
        return Stream.concat(containers(deployment, true).stream()
                        .filter(init -> manifests.environment(init).containsKey("KAFKA_BOOTSTRAP_SERVERS")),
                containers(deployment, false).stream()).toList();
    }

    private static boolean hasPort(JsonNode deployment, JsonNode port) {
        return containers(deployment, false).stream().flatMap(container -> elements(container.path("ports")).stream())
                .anyMatch(declared -> port.isNumber() ? declared.path("containerPort").asInt() == port.asInt()
                        : port.asText().equals(declared.path("name").asText()));
    }

    @Test
    void theCpuAndCudaOverlaysExist() throws IOException {
        assertTrue(overlays().containsAll(List.of("cpu", "cuda", "s3")), "overlays found: " + overlays());
    }

    @ParameterizedTest
    @MethodSource("overlays")
    void everyServiceIsADeploymentWithHealthProbesAndResources(String overlay) {
        RenderedManifests manifests = rendered(overlay);
        Set<String> deployments = new TreeSet<>();
        manifests.ofKind("Deployment").forEach(deployment -> deployments.add(name(deployment)));
        assertEquals(new TreeSet<>(SERVICES), deployments, overlay + ": the Deployments");
        for (JsonNode deployment : manifests.ofKind("Deployment")) {
            String where = overlay + ": Deployment " + name(deployment);
            for (JsonNode container : containers(deployment, false)) {
                String at = where + ", container " + container.path("name").asText();
                for (String[] probe : new String[][] {{"livenessProbe", "/q/health/live"}, {"readinessProbe", "/q/health/ready"}}) {
                    JsonNode httpGet = container.path(probe[0]).path("httpGet");
                    assertEquals(probe[1], httpGet.path("path").asText(), at + ": " + probe[0] + " path");
                    assertTrue(hasPort(deployment, httpGet.path("port")), at + ": " + probe[0] + " port " + httpGet.path("port")
                            + " is not a port of the pod");
                }
                checkResources(container, at);
            }
            for (JsonNode container : containers(deployment, true)) {
                checkResources(container, where + ", init container " + container.path("name").asText());
            }
        }
    }

    private static void checkResources(JsonNode container, String at) {
        JsonNode resources = container.path("resources");
        for (String bound : List.of("requests", "limits")) {
            for (String resource : List.of("cpu", "memory")) {
                assertTrue(resources.path(bound).has(resource), at + ": no " + resource + " in resources." + bound);
            }
        }
        resources.path("requests").properties().forEach(request -> {
            JsonNode limit = resources.path("limits").path(request.getKey());
            if (!limit.isMissingNode()) {
                assertTrue(quantity(request.getValue()).compareTo(quantity(limit)) <= 0,
                        at + ": " + request.getKey() + " request " + request.getValue().asText() + " exceeds its limit " + limit.asText());
            }
        });
    }

    /**
     * Every workload runs locked down: no service-account token, the runtime's default seccomp profile, a
     * read-only root file system with size-limited emptyDirs for what is written (/tmp at least),
     * ephemeral-storage requests and limits that hold those emptyDirs, and Secrets only as mounted files.
     */
    @ParameterizedTest
    @MethodSource("overlays")
    void everyWorkloadIsLockedDownAndWritesOnlyToItsVolumes(String overlay) {
        RenderedManifests manifests = rendered(overlay);
        List<JsonNode> workloads = manifests.all().stream()
                .filter(resource -> resource.path("spec").path("template").path("spec").has("containers")).toList();
        assertEquals(SERVICES.size(), workloads.size(), overlay + ": the workloads with a pod template");
        for (JsonNode workload : workloads) {
            String where = overlay + ": " + workload.path("kind").asText() + " " + name(workload);
            JsonNode pod = workload.path("spec").path("template").path("spec");
            assertFalse(pod.path("automountServiceAccountToken").asBoolean(true), where + ": automountServiceAccountToken");
            assertEquals("RuntimeDefault", pod.path("securityContext").path("seccompProfile").path("type").asText(),
                    where + ": the pod's seccompProfile");
            Map<String, JsonNode> volumes = new java.util.HashMap<>();
            elements(pod.path("volumes")).forEach(volume -> volumes.put(volume.path("name").asText(), volume));
            BigDecimal emptyDirs = BigDecimal.ZERO;
            for (JsonNode volume : volumes.values()) {
                if (volume.has("emptyDir")) {
                    JsonNode limit = volume.path("emptyDir").path("sizeLimit");
                    assertFalse(limit.isMissingNode(), where + ": emptyDir " + volume.path("name").asText() + " has no sizeLimit");
                    emptyDirs = emptyDirs.add(quantity(limit));
                }
            }
            BigDecimal ephemeralLimits = BigDecimal.ZERO;
            for (JsonNode container : Stream.concat(containers(workload, true).stream(), containers(workload, false).stream()).toList()) {
                String at = where + ", container " + container.path("name").asText();
                JsonNode security = container.path("securityContext");
                assertTrue(security.path("readOnlyRootFilesystem").asBoolean(false), at + ": readOnlyRootFilesystem");
                assertFalse(security.path("allowPrivilegeEscalation").asBoolean(true), at + ": allowPrivilegeEscalation");
                JsonNode resources = container.path("resources");
                for (String bound : List.of("requests", "limits")) {
                    assertTrue(resources.path(bound).has("ephemeral-storage"), at + ": no ephemeral-storage in resources." + bound);
                }
                ephemeralLimits = ephemeralLimits.add(quantity(resources.path("limits").path("ephemeral-storage")));
                boolean scratch = elements(container.path("volumeMounts")).stream().anyMatch(mount ->
                        mount.path("mountPath").asText().equals("/tmp") && !mount.path("readOnly").asBoolean(false)
                                && volumes.getOrDefault(mount.path("name").asText(), MISSING).has("emptyDir"));
                assertTrue(scratch, at + ": /tmp is not a writable emptyDir on the read-only root file system");
                for (JsonNode source : elements(container.path("envFrom"))) {
                    assertFalse(source.has("secretRef"), at + ": a Secret in the environment; mount it as files");
                }
                for (JsonNode variable : elements(container.path("env"))) {
                    assertFalse(variable.path("valueFrom").has("secretKeyRef"),
                            at + ": " + variable.path("name").asText() + " from a Secret; mount it as a file");
                }
            }
            // A pod whose emptyDirs may outgrow the sum of its containers' limits is evicted before they fill.
            assertTrue(emptyDirs.compareTo(ephemeralLimits) < 0, where + ": emptyDirs of " + emptyDirs
                    + " bytes do not fit the ephemeral-storage limits of " + ephemeralLimits);
        }
        for (String service : SERVICES) {
            JsonNode deployment = manifests.require("Deployment", service);
            JsonNode container = RenderedManifests.container(deployment, service);
            Map<String, String> environment = manifests.environment(container);
            assertFalse(environment.containsKey(ServiceConfiguration.environmentName("loraflow.api-keys")),
                    overlay + ": " + service + " has API keys in its environment");
            String keysFile = environment.get(ServiceConfiguration.environmentName("loraflow.api-keys-file"));
            assertTrue(keysFile != null && !keysFile.isBlank(), overlay + ": " + service + " reads no API key file");
            JsonNode mount = elements(container.path("volumeMounts")).stream()
                    .filter(candidate -> keysFile.startsWith(candidate.path("mountPath").asText() + "/")).findFirst()
                    .orElseThrow(() -> new AssertionError(overlay + ": " + service + ": nothing is mounted at " + keysFile));
            assertTrue(mount.path("readOnly").asBoolean(false), overlay + ": " + service + ": the keys are mounted read-only");
            JsonNode volume = elements(deployment.path("spec").path("template").path("spec").path("volumes")).stream()
                    .filter(candidate -> candidate.path("name").asText().equals(mount.path("name").asText())).findFirst().orElseThrow();
            JsonNode secret = manifests.require("Secret", volume.path("secret").path("secretName").asText());
            String key = keysFile.substring(mount.path("mountPath").asText().length() + 1);
            assertTrue(secret.path("data").has(key), overlay + ": " + service + " reads " + keysFile + ", but Secret "
                    + name(secret) + " has no key " + key);
        }
    }

    private static final JsonNode MISSING = com.fasterxml.jackson.databind.node.MissingNode.getInstance();

    @ParameterizedTest
    @MethodSource("overlays")
    void everyReferencedConfigMapSecretVolumeClaimServiceAndTargetExists(String overlay) {
        RenderedManifests manifests = rendered(overlay);
        for (JsonNode deployment : manifests.ofKind("Deployment")) {
            String where = overlay + ": Deployment " + name(deployment);
            JsonNode pod = deployment.path("spec").path("template").path("spec");
            Set<String> volumes = new HashSet<>();
            for (JsonNode volume : elements(pod.path("volumes"))) {
                volumes.add(volume.path("name").asText());
                if (volume.has("configMap")) {
                    manifests.require("ConfigMap", volume.path("configMap").path("name").asText());
                } else if (volume.has("secret")) {
                    String secretName = volume.path("secret").path("secretName").asText();
                    if (manifests.find("Secret", secretName).isEmpty()) {
                        // The Secret of a KafkaUser, written by Strimzi's User Operator: password and sasl.jaas.config.
                        manifests.require("KafkaUser", secretName);
                        for (JsonNode item : elements(volume.path("secret").path("items"))) {
                            assertTrue(KAFKA_USER_SECRET_KEYS.contains(item.path("key").asText()), where + ": volume "
                                    + volume.path("name").asText() + " names key " + item.path("key").asText()
                                    + " of KafkaUser " + secretName + "'s Secret, which has " + KAFKA_USER_SECRET_KEYS);
                        }
                    } else {
                        manifests.require("Secret", secretName);
                    }
                } else if (volume.has("persistentVolumeClaim")) {
                    manifests.require("PersistentVolumeClaim", volume.path("persistentVolumeClaim").path("claimName").asText());
                }
            }
            for (JsonNode container : Stream.concat(containers(deployment, true).stream(), containers(deployment, false).stream()).toList()) {
                String at = where + ", container " + container.path("name").asText();
                manifests.environment(container); // resolves envFrom: a missing ConfigMap or Secret fails here
                for (JsonNode variable : elements(container.path("env"))) {
                    JsonNode from = variable.path("valueFrom");
                    for (String[] reference : new String[][] {{"configMapKeyRef", "ConfigMap"}, {"secretKeyRef", "Secret"}}) {
                        if (from.has(reference[0])) {
                            String sourceName = from.path(reference[0]).path("name").asText();
                            String key = from.path(reference[0]).path("key").asText();
                            JsonNode source = manifests.require(reference[1], sourceName);
                            assertTrue(source.path("data").has(key),
                                    at + ": " + variable.path("name").asText() + " names a key its " + reference[1] + " lacks");
                        }
                    }
                }
                for (JsonNode mount : elements(container.path("volumeMounts"))) {
                    assertTrue(volumes.contains(mount.path("name").asText()), at + ": mounts a volume the pod lacks: " + mount);
                }
            }
        }
        for (JsonNode service : manifests.ofKind("Service")) {
            JsonNode deployment = selectedDeployment(manifests, service.path("spec").path("selector"), "Service " + name(service));
            for (JsonNode port : elements(service.path("spec").path("ports"))) {
                assertTrue(hasPort(deployment, port.path("targetPort")), overlay + ": Service " + name(service) + " port "
                        + port.path("name").asText() + " targets " + port.path("targetPort") + ", not a port of " + name(deployment));
            }
        }
        for (JsonNode autoscaler : manifests.ofKind("HorizontalPodAutoscaler")) {
            JsonNode target = autoscaler.path("spec").path("scaleTargetRef");
            assertEquals("Deployment", target.path("kind").asText(), overlay + ": HorizontalPodAutoscaler " + name(autoscaler));
            JsonNode deployment = manifests.require("Deployment", target.path("name").asText());
            assertFalse(deployment.path("spec").has("replicas"), overlay + ": Deployment " + name(deployment)
                    + " sets replicas, which every apply would reset under its HorizontalPodAutoscaler");
        }
        for (JsonNode budget : manifests.ofKind("PodDisruptionBudget")) {
            selectedDeployment(manifests, budget.path("spec").path("selector").path("matchLabels"), "PodDisruptionBudget " + name(budget));
        }
        for (JsonNode strimzi : Stream.of("KafkaNodePool", "KafkaTopic", "KafkaUser").flatMap(kind -> manifests.ofKind(kind).stream()).toList()) {
            manifests.require("Kafka", cluster(strimzi));
        }
        manifests.require("Namespace", NAMESPACE);
        for (JsonNode resource : manifests.all()) {
            if (!resource.path("kind").asText().equals("Namespace")) {
                assertEquals(NAMESPACE, resource.path("metadata").path("namespace").asText(),
                        overlay + ": namespace of " + resource.path("kind").asText() + " " + name(resource));
            }
        }
    }

    @ParameterizedTest
    @MethodSource("overlays")
    void theServicesReachTheBrokerOnAPlainListenerOfTheKafkaCluster(String overlay) {
        RenderedManifests manifests = rendered(overlay);
        for (String service : SERVICES) {
            JsonNode deployment = manifests.require("Deployment", service);
            for (JsonNode container : kafkaClients(manifests, deployment)) {
                Map<String, String> environment = manifests.environment(container);
                String address = environment.getOrDefault(ServiceConfiguration.environmentName("loraflow.kafka.bootstrap-servers"),
                        environment.get("KAFKA_BOOTSTRAP_SERVERS"));
                if (address == null) {
                    assertFalse(configuration(service).keys().contains("loraflow.kafka.bootstrap-servers"),
                            overlay + ": " + service + " uses Kafka but is given no broker address");
                    continue;
                }
                String at = overlay + ": " + service + ", container " + container.path("name").asText() + ", broker " + address;
                String[] hostAndPort = address.split(":");
                assertEquals(2, hostAndPort.length, at);
                assertTrue(hostAndPort[0].endsWith("-kafka-bootstrap"), at + ": not a Strimzi bootstrap Service");
                JsonNode kafka = manifests.require("Kafka", hostAndPort[0].substring(0, hostAndPort[0].length() - "-kafka-bootstrap".length()));
                JsonNode listener = elements(kafka.path("spec").path("kafka").path("listeners")).stream()
                        .filter(candidate -> candidate.path("port").asText().equals(hostAndPort[1])).findFirst()
                        .orElseThrow(() -> new AssertionError(at + ": the Kafka has no listener on that port"));
                assertEquals("internal", listener.path("type").asText(), at);
                assertFalse(listener.path("tls").asBoolean(), at + ": the services speak plain text to the broker");
                assertEquals("scram-sha-512", listener.path("authentication").path("type").asText(), at + ": authentication");
                assertEquals("SASL_PLAINTEXT", configuration(service).effective("loraflow.kafka.security-protocol", environment),
                        at + ": the service signs in over SASL_PLAINTEXT");
                assertEquals("SCRAM-SHA-512", configuration(service).effective("loraflow.kafka.sasl-mechanism", environment),
                        at + ": with the listener's mechanism");
            }
        }
    }

    @ParameterizedTest
    @MethodSource("overlays")
    void kafkaAuthenticatesEveryClientAndEachUsersAclsAreThePlatformsOnly(String overlay) {
        RenderedManifests manifests = rendered(overlay);
        for (JsonNode kafka : manifests.ofKind("Kafka")) {
            String at = overlay + ": Kafka " + name(kafka);
            assertEquals("simple", kafka.path("spec").path("kafka").path("authorization").path("type").asText(), at + ": authorization");
            assertTrue(kafka.path("spec").path("entityOperator").has("userOperator"), at + ": no User Operator for the KafkaUsers");
            for (JsonNode listener : elements(kafka.path("spec").path("kafka").path("listeners"))) {
                String where = at + ", listener " + listener.path("name").asText();
                assertEquals("scram-sha-512", listener.path("authentication").path("type").asText(), where + ": authentication");
                List<JsonNode> peers = elements(listener.path("networkPolicyPeers"));
                assertEquals(1, peers.size(), where + ": networkPolicyPeers");
                assertEquals(Map.of(KAFKA_CLIENT_LABEL, "true"), labels(peers.getFirst().path("podSelector").path("matchLabels")),
                        where + ": only Kafka clients reach it");
            }
        }
        Map<String, Set<String>> expected = new TreeMap<>();
        for (AclBinding acl : PlatformUsers.acls()) {
            expected.computeIfAbsent(KAFKA_USER_PREFIX + acl.entry().principal().substring("User:".length()), user -> new TreeSet<>())
                    .add(acl(acl.pattern().resourceType().name(), acl.pattern().name(), acl.pattern().patternType().name(),
                            acl.entry().operation().name()));
        }
        Map<String, Set<String>> declared = new TreeMap<>();
        for (JsonNode user : manifests.ofKind("KafkaUser")) {
            String at = overlay + ": KafkaUser " + name(user);
            assertEquals("scram-sha-512", user.path("spec").path("authentication").path("type").asText(), at + ": authentication");
            assertEquals("simple", user.path("spec").path("authorization").path("type").asText(), at + ": authorization");
            Set<String> acls = declared.computeIfAbsent(name(user), key -> new TreeSet<>());
            for (JsonNode acl : elements(user.path("spec").path("authorization").path("acls"))) {
                assertEquals("allow", acl.path("type").asText("allow"), at + ": " + acl);
                JsonNode resource = acl.path("resource");
                for (JsonNode operation : elements(acl.path("operations"))) {
                    acls.add(acl(resource.path("type").asText(), resource.path("name").asText(),
                            resource.path("patternType").asText("literal"), operation.asText()));
                }
            }
        }
        assertEquals(expected, declared, overlay + ": the KafkaUsers and their ACLs are broker/PlatformUsers.java's");
    }

    /** One ACL in one spelling for Kafka's enums and Strimzi's words: topic|name|literal|read. */
    private static String acl(String type, String name, String patternType, String operation) {
        String pattern = patternType.toLowerCase(Locale.ROOT);
        return String.join("|", type.toLowerCase(Locale.ROOT), name, pattern.equals("prefixed") ? "prefix" : pattern,
                operation.toLowerCase(Locale.ROOT));
    }

    private static Map<String, String> labels(JsonNode matchLabels) {
        Map<String, String> labels = new TreeMap<>();
        matchLabels.properties().forEach(label -> labels.put(label.getKey(), label.getValue().asText()));
        return labels;
    }

    @ParameterizedTest
    @MethodSource("overlays")
    void everyServiceSignsInAsItsOwnKafkaUserWhoseSecretIsMountedAsThePasswordFile(String overlay) {
        RenderedManifests manifests = rendered(overlay);
        for (String service : SERVICES) {
            JsonNode deployment = manifests.require("Deployment", service);
            assertEquals("true", deployment.path("spec").path("template").path("metadata").path("labels").path(KAFKA_CLIENT_LABEL)
                    .asText(), overlay + ": " + service + "'s pods are not labelled " + KAFKA_CLIENT_LABEL);
            for (JsonNode container : kafkaClients(manifests, deployment)) {
                String at = overlay + ": " + service + ", container " + container.path("name").asText();
                assertEquals(KAFKA_USER_PREFIX + service, manifests.environment(container).get("LORAFLOW_KAFKA_USERNAME"), at);
                // The password is a file from the user's Secret: LORAFLOW_KAFKA_PASSWORD_FILE lies in a mount of
                // that Secret's key "password".
                String file = manifests.environment(container).get("LORAFLOW_KAFKA_PASSWORD_FILE");
                assertNotNull(file, at + ": no LORAFLOW_KAFKA_PASSWORD_FILE");
                JsonNode mount = elements(container.path("volumeMounts")).stream()
                        .filter(candidate -> file.equals(candidate.path("mountPath").asText() + "/password")).findFirst()
                        .orElseThrow(() -> new AssertionError(at + ": nothing mounted at " + file));
                JsonNode volume = elements(deployment.path("spec").path("template").path("spec").path("volumes")).stream()
                        .filter(candidate -> candidate.path("name").asText().equals(mount.path("name").asText())).findFirst()
                        .orElseThrow(() -> new AssertionError(at + ": no volume " + mount.path("name").asText()));
                assertEquals(KAFKA_USER_PREFIX + service, volume.path("secret").path("secretName").asText(),
                        at + ": the password's Secret");
                assertTrue(elements(volume.path("secret").path("items")).stream().anyMatch(item ->
                        item.path("key").asText().equals("password") && item.path("path").asText().equals("password")),
                        at + ": the Secret's key password as the file password");
                manifests.require("KafkaUser", KAFKA_USER_PREFIX + service);
            }
        }
    }

    @ParameterizedTest
    @MethodSource("overlays")
    void networkPoliciesDenyEveryIngressButClientsToTheServicesPorts(String overlay) {
        RenderedManifests manifests = rendered(overlay);
        List<JsonNode> policies = manifests.ofKind("NetworkPolicy");
        assertTrue(policies.stream().anyMatch(policy -> policy.path("spec").path("podSelector").isEmpty()
                        && elements(policy.path("spec").path("policyTypes")).stream().anyMatch(type -> type.asText().equals("Ingress"))
                        && elements(policy.path("spec").path("ingress")).isEmpty()),
                overlay + ": no NetworkPolicy denies all ingress by default");
        for (String service : SERVICES) {
            JsonNode deployment = manifests.require("Deployment", service);
            List<JsonNode> selecting = policies.stream().filter(policy -> !policy.path("spec").path("podSelector").isEmpty())
                    .filter(policy -> selects(policy.path("spec").path("podSelector").path("matchLabels"), deployment)).toList();
            assertEquals(1, selecting.size(), overlay + ": NetworkPolicies of " + service + ": " + selecting.size());
            Set<String> ports = new TreeSet<>();
            for (JsonNode rule : elements(selecting.getFirst().path("spec").path("ingress"))) {
                assertFalse(elements(rule.path("from")).isEmpty(), overlay + ": " + service + " takes ingress from anywhere");
                for (JsonNode port : elements(rule.path("ports"))) {
                    assertTrue(hasPort(deployment, port.path("port")), overlay + ": " + service + "'s policy opens port "
                            + port.path("port") + ", not one of its pod's");
                    ports.add(port.path("port").asText());
                }
            }
            Set<String> declared = new TreeSet<>();
            containers(deployment, false).forEach(container -> elements(container.path("ports"))
                    .forEach(port -> declared.add(port.path("name").asText())));
            assertEquals(declared, ports, overlay + ": " + service + " is reachable on exactly its declared ports");
        }
    }

    @ParameterizedTest
    @MethodSource("overlays")
    void everyTopicTheServicesUseIsAKafkaTopicAndTheyWaitForIt(String overlay) {
        RenderedManifests manifests = rendered(overlay);
        Set<String> used = new TreeSet<>();
        for (String service : SERVICES) {
            ServiceConfiguration configuration = configuration(service);
            JsonNode deployment = manifests.require("Deployment", service);
            Map<String, String> environment = environment(manifests, service);
            JsonNode waiter = containers(deployment, true).stream()
                    .filter(container -> WAIT_FOR_TOPICS.equals(container.path("name").asText())).findFirst().orElse(null);
            assertEquals(!configuration.topicKeys().isEmpty(), waiter != null,
                    overlay + ": " + service + " uses topics " + configuration.topicKeys() + "; init container " + WAIT_FOR_TOPICS);
            for (String key : configuration.topicKeys()) {
                String topicName = configuration.effective(key, environment);
                used.add(topicName);
                topic(manifests, topicName);
                assertEquals(topicName, manifests.environment(waiter).get(ServiceConfiguration.environmentName(key)),
                        overlay + ": " + service + "'s " + WAIT_FOR_TOPICS + " does not wait for " + key + " = " + topicName);
            }
        }
        Set<String> declared = new TreeSet<>();
        manifests.ofKind("KafkaTopic").forEach(topic -> declared.add(topicName(topic)));
        assertEquals(used, declared, overlay + ": the KafkaTopics are the topics the services use");
    }

    @ParameterizedTest
    @MethodSource("overlays")
    void partitionsReplicasAndRecordSizesFitTheServices(String overlay) {
        RenderedManifests manifests = rendered(overlay);
        ServiceConfiguration trainer = configuration("trainer");
        Map<String, String> trainerEnvironment = environment(manifests, "trainer");
        JsonNode batches = topic(manifests, trainer.effective("loraflow.topics.batches", trainerEnvironment));
        int batchPartitions = Integer.parseInt(trainer.effective("loraflow.topics.batch-partitions", trainerEnvironment));
        assertEquals(batchPartitions, batches.path("spec").path("partitions").asInt(),
                overlay + ": the batches topic has the partitions the trainer would give it");
        assertEquals(batchPartitions, topic(manifests, trainer.effective("loraflow.topics.checkpoints", trainerEnvironment))
                .path("spec").path("partitions").asInt(), overlay + ": the checkpoints topic has the partitions the trainer would give it");
        int trainers = replicas(manifests.require("Deployment", "trainer"));
        assertTrue(trainers <= batchPartitions, overlay + ": " + trainers + " trainers for " + batchPartitions
                + " partitions of the batches topic would leave some idle");
        ServiceConfiguration merger = configuration("merger");
        int checkpointPartitions = topic(manifests, merger.effective("loraflow.topics.checkpoints", environment(manifests, "merger")))
                .path("spec").path("partitions").asInt();
        assertTrue(replicas(manifests.require("Deployment", "merger")) <= checkpointPartitions, overlay + ": mergers beyond the partitions");

        long recordBytes = Long.parseLong(trainer.effective("loraflow.trainer.max-record-bytes", trainerEnvironment));
        JsonNode maxMessageBytes = batches.path("spec").path("config").path("max.message.bytes");
        assertTrue(maxMessageBytes.asLong(0) >= recordBytes, overlay + ": the batches topic takes records of "
                + maxMessageBytes.asText("the broker's default") + " bytes; the trainer reads " + recordBytes);

        for (JsonNode topic : manifests.ofKind("KafkaTopic")) {
            JsonNode kafka = manifests.require("Kafka", cluster(topic));
            int brokers = manifests.ofKind("KafkaNodePool").stream()
                    .filter(pool -> cluster(pool).equals(name(kafka)))
                    .filter(pool -> elements(pool.path("spec").path("roles")).stream().anyMatch(role -> role.asText().equals("broker")))
                    .mapToInt(pool -> pool.path("spec").path("replicas").asInt()).sum();
            int replicas = topic.path("spec").path("replicas").asInt();
            int minInSync = topic.path("spec").path("config").path("min.insync.replicas")
                    .asInt(kafka.path("spec").path("kafka").path("config").path("min.insync.replicas").asInt(1));
            String at = overlay + ": KafkaTopic " + name(topic);
            assertTrue(topic.path("spec").path("partitions").asInt() >= 1, at + ": partitions");
            assertTrue(replicas >= 1 && replicas <= brokers, at + ": " + replicas + " replicas on " + brokers + " brokers");
            assertTrue(minInSync < replicas, at + ": with min.insync.replicas " + minInSync + " of " + replicas
                    + " replicas, one broker down stops every write");
        }
    }

    /**
     * Each service's heap is a share of its pod's memory limit (the JVM reads the cgroup's), at most half: the model's
     * weights live outside it, mapped or native. Its collector settings are those of the services ./loraflow up starts.
     */
    @ParameterizedTest
    @MethodSource("overlays")
    void everyServicesHeapIsAtMostHalfItsPodsLimitWithTheLocalCollectorSettings(String overlay) throws IOException {
        RenderedManifests manifests = rendered(overlay);
        List<String> collector = Files.readAllLines(Path.of("local/heap-gc.args")).stream()
                .map(line -> line.replaceFirst("#.*", "").strip()).filter(line -> !line.isEmpty()).toList();
        for (String service : SERVICES) {
            JsonNode container = RenderedManifests.container(manifests.require("Deployment", service), service);
            List<String> options = List.of(manifests.environment(container).getOrDefault("JDK_JAVA_OPTIONS", "").split("\\s+"));
            assertTrue(options.containsAll(collector) && options.contains("-XX:G1PeriodicGCInterval=60000"),
                    overlay + ": " + service + "'s JDK_JAVA_OPTIONS " + options + " lack the collector settings " + collector);
            List<Integer> percentages = options.stream().filter(option -> option.startsWith("-XX:MaxRAMPercentage="))
                    .map(option -> Integer.parseInt(option.substring("-XX:MaxRAMPercentage=".length()))).toList();
            assertTrue(percentages.size() == 1 && percentages.getFirst() > 0 && percentages.getFirst() <= 50,
                    overlay + ": " + service + "'s heap is one share of its memory limit, at most half: " + options);
            assertFalse(options.stream().anyMatch(option -> option.startsWith("-Xmx")), overlay + ": " + service
                    + "'s heap follows the pod's limit, not a fixed -Xmx");
            assertTrue(quantity(container.path("resources").path("limits").path("memory")).signum() > 0,
                    overlay + ": " + service + " has a memory limit for the percentage to be of");
        }
    }

    @ParameterizedTest
    @MethodSource("overlays")
    void containersSetOnlyConfigurationTheirServiceReads(String overlay) {
        RenderedManifests manifests = rendered(overlay);
        for (String service : SERVICES) {
            ServiceConfiguration configuration = configuration(service);
            JsonNode container = RenderedManifests.container(manifests.require("Deployment", service), service);
            for (String variable : manifests.environment(container).keySet()) {
                if (variable.startsWith("LORAFLOW_") && !OTHER_VARIABLES.contains(variable)) {
                    assertTrue(configuration.knowsEnvironmentName(variable), overlay + ": " + service + " is given " + variable
                            + ", which names no key of its application.properties");
                } else {
                    assertTrue(OTHER_VARIABLES.contains(variable), overlay + ": " + service + " is given " + variable
                            + ", which it does not read");
                }
            }
            assertTrue(elements(container.path("ports")).stream().anyMatch(port -> port.path("name").asText().equals("http")
                            && port.path("containerPort").asInt() == 8080),
                    overlay + ": " + service + " serves HTTP on Quarkus's port 8080, named http");
        }
        JsonNode serving = RenderedManifests.container(manifests.require("Deployment", "serving"), "serving");
        int threads = Integer.parseInt(configuration("serving").effective("loraflow.serving.intra-op-threads",
                manifests.environment(serving)));
        BigDecimal cpus = quantity(serving.path("resources").path("limits").path("cpu"));
        assertTrue(threads >= 1 && BigDecimal.valueOf(threads).compareTo(cpus) <= 0, overlay + ": serving's ONNX Runtime runs "
                + threads + " threads (0 = one per core of the node) on a CPU limit of " + cpus);
        assertTrue(elements(serving.path("ports")).stream().anyMatch(port -> port.path("name").asText().equals("grpc")),
                overlay + ": serving declares its gRPC port");
    }

    @ParameterizedTest
    @MethodSource("overlays")
    void gpusAreAskedForInLimitsOnly(String overlay) {
        RenderedManifests manifests = rendered(overlay);
        for (JsonNode deployment : manifests.ofKind("Deployment")) {
            for (JsonNode container : Stream.concat(containers(deployment, true).stream(), containers(deployment, false).stream()).toList()) {
                assertFalse(container.path("resources").path("requests").has(GPU), overlay + ": Deployment " + name(deployment)
                        + ", container " + container.path("name").asText() + " requests " + GPU + "; extended resources go in limits");
            }
        }
    }

    @Test
    void theCudaOverlayGivesEveryServingReplicaAGpuAndTheCudaImage() {
        RenderedManifests cuda = rendered("cuda");
        JsonNode serving = RenderedManifests.container(cuda.require("Deployment", "serving"), "serving");
        assertTrue(serving.path("resources").path("limits").path(GPU).asInt(0) >= 1, "cuda: serving's limits: " + serving.path("resources"));
        assertEquals("cuda", configuration("serving").effective("loraflow.serving.provider", cuda.environment(serving)));
        JsonNode cpuServing = RenderedManifests.container(rendered("cpu").require("Deployment", "serving"), "serving");
        assertNotEquals(cpuServing.path("image").asText(), serving.path("image").asText(), "cuda: serving runs the CUDA image");
        for (String service : List.of("trainer", "merger")) {
            JsonNode container = RenderedManifests.container(cuda.require("Deployment", service), service);
            assertFalse(container.path("resources").path("limits").has(GPU), "cuda: " + service + " has no use for a GPU");
        }
    }

    @Test
    void theCpuOverlayAsksForNoGpu() {
        RenderedManifests cpu = rendered("cpu");
        for (JsonNode deployment : cpu.ofKind("Deployment")) {
            for (JsonNode container : containers(deployment, false)) {
                if (container.path("resources").path("limits").has(GPU)) {
                    fail("cpu: Deployment " + name(deployment) + " asks for a GPU");
                }
            }
        }
        JsonNode serving = RenderedManifests.container(cpu.require("Deployment", "serving"), "serving");
        assertEquals("cpu", configuration("serving").effective("loraflow.serving.provider", cpu.environment(serving)));
    }

    @ParameterizedTest
    @MethodSource("overlays")
    void everyServiceRunsTwoOrMoreReplicasSpreadOverNodesAndKeptByADisruptionBudget(String overlay) {
        RenderedManifests manifests = rendered(overlay);
        for (String service : SERVICES) {
            JsonNode deployment = manifests.require("Deployment", service);
            String where = overlay + ": " + service;
            List<JsonNode> autoscalers = manifests.ofKind("HorizontalPodAutoscaler").stream()
                    .filter(autoscaler -> autoscaler.path("spec").path("scaleTargetRef").path("name").asText().equals(service))
                    .toList();
            int least = autoscalers.isEmpty() ? replicas(deployment)
                    : autoscalers.getFirst().path("spec").path("minReplicas").asInt(1);
            assertTrue(least >= 2, where + " runs " + least + " replica(s) at least");
            List<JsonNode> budgets = manifests.ofKind("PodDisruptionBudget").stream()
                    .filter(budget -> selects(budget.path("spec").path("selector").path("matchLabels"), deployment)).toList();
            assertEquals(1, budgets.size(), where + ": PodDisruptionBudgets selecting it");
            JsonNode budget = budgets.getFirst().path("spec");
            assertTrue(budget.path("maxUnavailable").asInt(least) < least || budget.path("minAvailable").asInt(0) >= 1,
                    where + ": its PodDisruptionBudget lets every replica go at once: " + budget);
            List<JsonNode> antiAffinity = elements(deployment.path("spec").path("template").path("spec").path("affinity")
                    .path("podAntiAffinity").path("preferredDuringSchedulingIgnoredDuringExecution"));
            assertTrue(antiAffinity.stream().map(term -> term.path("podAffinityTerm")).anyMatch(term ->
                            term.path("topologyKey").asText().equals("kubernetes.io/hostname")
                                    && selects(term.path("labelSelector").path("matchLabels"), deployment)),
                    where + ": no pod anti-affinity spreads its replicas over nodes");
        }
    }

    /** The autoscaler's custom metrics are serving's own meters, under the names Prometheus gives them. */
    @ParameterizedTest
    @MethodSource("overlays")
    void servingScalesOnItsQueueDepthAndTokensPerSecond(String overlay) throws IOException {
        RenderedManifests manifests = rendered(overlay);
        JsonNode autoscaler = manifests.require("HorizontalPodAutoscaler", "serving");
        Set<String> metrics = new TreeSet<>();
        for (JsonNode metric : elements(autoscaler.path("spec").path("metrics"))) {
            if (metric.path("type").asText().equals("Pods")) {
                metrics.add(metric.path("pods").path("metric").path("name").asText());
            }
        }
        assertEquals(new TreeSet<>(List.of("loraflow_queue_depth", "loraflow_generated_tokens_per_second")), metrics,
                overlay + ": serving's autoscaler metrics");
        String servingSources;
        try (Stream<Path> files = Files.walk(REPOSITORY.resolve("serving/src/main/java"))) {
            StringBuilder text = new StringBuilder();
            for (Path file : files.filter(file -> file.toString().endsWith(".java")).toList()) {
                text.append(Files.readString(file));
            }
            servingSources = text.toString();
        }
        // Micrometer's Prometheus names: dots become underscores, a counter gains _total (its rate is per second).
        assertTrue(servingSources.contains("\"loraflow.queue.depth\""), "serving registers no gauge loraflow.queue.depth");
        assertTrue(servingSources.contains("\"loraflow.generated.tokens\""), "serving counts no loraflow.generated.tokens");
    }

    @Test
    void theS3OverlayKeepsArtifactsInTheBucketWithCredentialsFromASecret() {
        RenderedManifests s3 = rendered("s3");
        assertTrue(s3.ofKind("PersistentVolumeClaim").stream().noneMatch(claim -> name(claim).equals("loraflow-artifacts")),
                "s3: no artifacts volume");
        for (String service : SERVICES) {
            JsonNode deployment = s3.require("Deployment", service);
            JsonNode container = RenderedManifests.container(deployment, service);
            Map<String, String> environment = s3.environment(container);
            String where = "s3: " + service;
            assertTrue(configuration(service).effective("loraflow.store.uri", environment).startsWith("s3://"),
                    where + "'s store is not a bucket: " + environment);
            List<JsonNode> volumes = elements(deployment.path("spec").path("template").path("spec").path("volumes"));
            assertTrue(volumes.stream().noneMatch(volume -> volume.path("persistentVolumeClaim").path("claimName").asText()
                    .equals("loraflow-artifacts")), where + " still mounts the artifacts volume");
            String credentials = environment.get("AWS_SHARED_CREDENTIALS_FILE");
            assertNotNull(credentials, where + " reads no credentials file");
            JsonNode mount = elements(container.path("volumeMounts")).stream()
                    .filter(candidate -> credentials.startsWith(candidate.path("mountPath").asText() + "/")).findFirst()
                    .orElseThrow(() -> new AssertionError(where + ": nothing is mounted at " + credentials));
            assertTrue(mount.path("readOnly").asBoolean(false), where + ": the credentials are mounted read-only");
            JsonNode volume = volumes.stream().filter(candidate -> candidate.path("name").asText()
                    .equals(mount.path("name").asText())).findFirst().orElseThrow();
            JsonNode secret = s3.require("Secret", volume.path("secret").path("secretName").asText());
            assertTrue(secret.path("data").has(credentials.substring(credentials.lastIndexOf('/') + 1)),
                    where + ": the Secret has no key " + credentials);
            String cache = environment.get("LORAFLOW_STORE_CACHE_DIR");
            JsonNode cacheMount = elements(container.path("volumeMounts")).stream()
                    .filter(candidate -> candidate.path("mountPath").asText().equals(cache)).findFirst()
                    .orElseThrow(() -> new AssertionError(where + ": the read cache " + cache + " is no volume"));
            JsonNode cacheVolume = volumes.stream().filter(candidate -> candidate.path("name").asText()
                    .equals(cacheMount.path("name").asText())).findFirst().orElseThrow();
            BigDecimal limit = quantity(cacheVolume.path("emptyDir").path("sizeLimit"));
            long bound = ArtifactStores.parseSize("LORAFLOW_STORE_CACHE_MAX_BYTES",
                    environment.get("LORAFLOW_STORE_CACHE_MAX_BYTES"));
            assertTrue(BigDecimal.valueOf(bound).compareTo(limit) < 0, where + ": a cache bound of " + bound
                    + " bytes does not fit its volume's " + limit);
        }
    }

    /**
     * The s3 overlay asks the cluster for no ReadWriteMany volume — no claim of it, no pod volume of it — and
     * each trainer and merger pod has its base models (its models root) on an emptyDir of its own that an init
     * container fills, with the S3 key mounted for it.
     */
    @Test
    void theS3OverlayNeedsNoReadWriteManyVolume() {
        RenderedManifests s3 = rendered("s3");
        for (JsonNode claim : s3.ofKind("PersistentVolumeClaim")) {
            assertFalse(elements(claim.path("spec").path("accessModes")).stream().anyMatch(mode -> mode.asText().equals("ReadWriteMany")),
                    "s3: PersistentVolumeClaim " + name(claim) + " is ReadWriteMany");
        }
        for (JsonNode deployment : s3.ofKind("Deployment")) {
            for (JsonNode volume : elements(deployment.path("spec").path("template").path("spec").path("volumes"))) {
                String where = "s3: " + name(deployment) + "'s volume " + volume.path("name").asText();
                JsonNode claimName = volume.path("persistentVolumeClaim").path("claimName");
                assertTrue(claimName.isMissingNode() || s3.find("PersistentVolumeClaim", claimName.asText()).isPresent(),
                        where + " names the claim " + claimName.asText() + ", which the overlay does not render");
                JsonNode template = volume.path("ephemeral").path("volumeClaimTemplate").path("spec").path("accessModes");
                assertFalse(elements(template).stream().anyMatch(mode -> mode.asText().equals("ReadWriteMany")), where + " is ReadWriteMany");
            }
        }
        for (String service : List.of("trainer", "merger")) {
            JsonNode deployment = s3.require("Deployment", service);
            String modelsRoot = configuration(service).effective("loraflow.models.root",
                    s3.environment(RenderedManifests.container(deployment, service)));
            List<JsonNode> volumes = elements(deployment.path("spec").path("template").path("spec").path("volumes"));
            JsonNode mount = elements(RenderedManifests.container(deployment, service).path("volumeMounts")).stream()
                    .filter(candidate -> candidate.path("mountPath").asText().equals(modelsRoot)).findFirst()
                    .orElseThrow(() -> new AssertionError("s3: " + service + "'s models root " + modelsRoot + " is no volume"));
            String volumeName = mount.path("name").asText();
            assertTrue(volumes.stream().anyMatch(volume -> volume.path("name").asText().equals(volumeName) && volume.has("emptyDir")),
                    "s3: " + service + "'s models root is not on an emptyDir of its own");
            JsonNode filler = containers(deployment, true).stream().filter(init -> elements(init.path("volumeMounts")).stream()
                            .anyMatch(candidate -> candidate.path("name").asText().equals(volumeName) && !candidate.path("readOnly").asBoolean(false)))
                    .findFirst().orElseThrow(() -> new AssertionError("s3: no init container of " + service + " fills its base models"));
            String credentials = s3.environment(filler).get("AWS_SHARED_CREDENTIALS_FILE");
            assertNotNull(credentials, "s3: " + service + "'s " + filler.path("name").asText() + " reads no credentials file");
            assertTrue(elements(filler.path("volumeMounts")).stream().anyMatch(candidate ->
                            credentials.startsWith(candidate.path("mountPath").asText() + "/") && candidate.path("readOnly").asBoolean(false)),
                    "s3: " + service + "'s " + filler.path("name").asText() + " has no read-only mount at " + credentials);
        }
    }

    /** Strimzi runs the Kafka version the local broker is; that version is one the targeted Strimzi supports. */
    @ParameterizedTest
    @MethodSource("overlays")
    void kafkaOnKubernetesIsTheLocalBrokersVersionAndOneStrimziSupports(String overlay) throws IOException {
        RenderedManifests manifests = rendered(overlay);
        java.util.regex.Matcher declared = java.util.regex.Pattern.compile("<kafka.broker.version>([^<]+)</kafka.broker.version>")
                .matcher(Files.readString(REPOSITORY.resolve("broker/pom.xml")));
        assertTrue(declared.find(), "broker/pom.xml declares no kafka.broker.version");
        String version = declared.group(1);
        List<String> supported = KubernetesSchemas.strimziKafkaVersions();
        assertTrue(supported.contains(version), "the local broker's Kafka " + version
                + " is not one Strimzi " + KubernetesSchemas.STRIMZI_RELEASE + " supports: " + supported);
        JsonNode kafka = manifests.require("Kafka", "loraflow").path("spec").path("kafka");
        assertEquals(version, kafka.path("version").asText(), overlay + ": the Kafka version Strimzi runs");
        String[] parts = version.split("\\.");
        assertTrue(kafka.path("metadataVersion").asText().startsWith(parts[0] + "." + parts[1] + "-"),
                overlay + ": metadataVersion " + kafka.path("metadataVersion").asText() + " of Kafka " + version);
        for (JsonNode deployment : manifests.ofKind("Deployment")) {
            for (JsonNode init : containers(deployment, true)) {
                if (init.path("image").asText().startsWith("quay.io/strimzi/kafka:")) {
                    assertEquals("quay.io/strimzi/kafka:" + KubernetesSchemas.STRIMZI_RELEASE + "-kafka-" + version, init.path("image").asText(),
                            overlay + ": " + name(deployment) + "'s " + init.path("name").asText());
                }
            }
        }
    }
}
