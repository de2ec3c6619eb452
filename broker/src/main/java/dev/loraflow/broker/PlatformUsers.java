package dev.loraflow.broker;

import java.util.ArrayList;
import java.util.List;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

/**
 * The Kafka users of the platform and what each may do: the ACLs of the local broker, and the table the
 * Kubernetes {@code KafkaUser} resources are checked against. Nobody but the trainer (its jobs API) and
 * the data producer writes jobs or batches; only the trainer writes checkpoints and its dead letters;
 * only the merger writes merged models and merge failures; serving only reads. The data producer may
 * also read what becomes of its jobs (checkpoints, merged models, merge failures), in consumer groups
 * named {@code loraflow-producer-...}.
 */
public final class PlatformUsers {

    /** The broker's own identity (inter-broker and controller traffic) and the one super user. */
    public static final String ADMIN = "admin";
    public static final String TRAINER = "trainer";
    public static final String MERGER = "merger";
    public static final String SERVING = "serving";
    /** Whoever publishes jobs and batches from outside: {@code kcat}, {@code kafka-console-producer}, scripts. */
    public static final String PRODUCER = "producer";

    /** Every user the local broker creates, the super user first. */
    public static final List<String> ALL = List.of(ADMIN, TRAINER, MERGER, SERVING, PRODUCER);

    public static final String JOBS = "loraflow.training.jobs";
    public static final String BATCHES = "loraflow.training.batches";
    public static final String CHECKPOINTS = "loraflow.adapter.checkpoints";
    public static final String TRAINING_DEAD_LETTERS = "loraflow.training.dead-letters";
    public static final String MODELS_MERGED = "loraflow.models.merged";
    public static final String MERGE_FAILURES = "loraflow.models.merge-failures";
    public static final String MODELS_DEAD_LETTERS = "loraflow.models.dead-letters";
    public static final String TRAINER_GROUP = "loraflow-trainer";
    public static final String MERGER_GROUP = "loraflow-merger";
    /** A group name ending in {@code *} stands for every group whose name starts with what precedes it. */
    public static final String PRODUCER_GROUPS = "loraflow-producer-*";
    /** Each serving replica's own group (it commits nothing; every replica reads every event). */
    public static final String SERVING_GROUPS = "loraflow-serving-*";

    /** A user's rights: topics it reads, topics it writes (both it may create when missing), groups it joins. */
    public record Rights(String user, List<String> reads, List<String> writes, List<String> groups) {}

    public static final List<Rights> RIGHTS = List.of(
            new Rights(TRAINER, List.of(JOBS, BATCHES), List.of(CHECKPOINTS, TRAINING_DEAD_LETTERS, JOBS),
                    List.of(TRAINER_GROUP)),
            new Rights(MERGER, List.of(CHECKPOINTS), List.of(MODELS_MERGED, MERGE_FAILURES, MODELS_DEAD_LETTERS),
                    List.of(MERGER_GROUP)),
            new Rights(SERVING, List.of(MODELS_MERGED, CHECKPOINTS), List.of(), List.of(SERVING_GROUPS)),
            new Rights(PRODUCER, List.of(CHECKPOINTS, MODELS_MERGED, MERGE_FAILURES), List.of(JOBS, BATCHES),
                    List.of(PRODUCER_GROUPS)));

    private PlatformUsers() {}

    /** The ACLs that grant {@link #RIGHTS}; everything else is denied (no ACL, no access). */
    public static List<AclBinding> acls() {
        List<AclBinding> acls = new ArrayList<>();
        for (Rights rights : RIGHTS) {
            for (String topic : rights.reads()) {
                allow(acls, rights.user(), ResourceType.TOPIC, topic, AclOperation.READ, AclOperation.DESCRIBE,
                        AclOperation.CREATE);
            }
            for (String topic : rights.writes()) {
                allow(acls, rights.user(), ResourceType.TOPIC, topic, AclOperation.WRITE, AclOperation.DESCRIBE,
                        AclOperation.CREATE);
            }
            for (String group : rights.groups()) {
                allow(acls, rights.user(), ResourceType.GROUP, group, AclOperation.READ);
            }
        }
        return acls;
    }

    private static void allow(List<AclBinding> acls, String user, ResourceType type, String name,
                              AclOperation... operations) {
        boolean prefix = name.endsWith("*");
        ResourcePattern pattern = new ResourcePattern(type, prefix ? name.substring(0, name.length() - 1) : name,
                prefix ? PatternType.PREFIXED : PatternType.LITERAL);
        for (AclOperation operation : operations) {
            acls.add(new AclBinding(pattern,
                    new AccessControlEntry("User:" + user, "*", operation, AclPermissionType.ALLOW)));
        }
    }
}
