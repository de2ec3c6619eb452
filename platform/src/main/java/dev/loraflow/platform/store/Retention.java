package dev.loraflow.platform.store;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Which artifacts the platform still needs, read from the store's references, and the deletion of the rest
 * once older than a retention. Live are the artifacts that a live reference names (any SHA-256 in it):
 * <ul>
 *   <li>{@code job-<id>.latest.json} (the trainer's): a job's latest checkpoint — where it resumes, what
 *       serving's followed adapters load;</li>
 *   <li>{@code model-<m>.latest.json} (the merger's) → {@code merge-<m>-<version>.outcome.json}: the model
 *       served now — the merged model, its ONNX graph and the adapter it came from;</li>
 *   <li>{@code merge-<job>-<step>.checkpoint.json} without its {@code .outcome.json} yet: a merge still to
 *       be done, and the adapter it needs.</li>
 * </ul>
 * Everything else — earlier checkpoints and model versions, what failed merges left — is deleted once it
 * was stored longer ago than the retention. References themselves stay: they are small, and the merger's
 * records of merges done keep a redelivered checkpoint from being merged twice.
 */
public final class Retention {

    private static final Pattern DIGEST = Pattern.compile("(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])");
    private static final Pattern JOB_LATEST = Pattern.compile("job-.+\\.latest\\.json");
    private static final Pattern MODEL_LATEST = Pattern.compile("model-(.+)\\.latest\\.json");
    private static final Pattern PENDING_MERGE = Pattern.compile("(merge-.+-\\d+)\\.checkpoint\\.json");
    private static final Pattern VERSION = Pattern.compile("\"version\"\\s*:\\s*(\\d+)");

    private Retention() {}

    /** The digests of every artifact a live reference names. */
    public static Set<String> liveDigests(ArtifactStore store) throws IOException {
        Set<String> live = new HashSet<>();
        List<String> names = store.referenceNames();
        for (String name : names) {
            if (JOB_LATEST.matcher(name).matches()) {
                addDigests(store, name, live);
            }
            Matcher model = MODEL_LATEST.matcher(name);
            if (model.matches()) {
                Optional<String> latest = read(store, name);
                Matcher version = VERSION.matcher(latest.orElse(""));
                if (version.find()) {
                    addDigests(store, "merge-" + model.group(1) + "-" + version.group(1) + ".outcome.json", live);
                }
            }
            Matcher pending = PENDING_MERGE.matcher(name);
            if (pending.matches() && !names.contains(pending.group(1) + ".outcome.json")) {
                addDigests(store, name, live);
            }
        }
        return live;
    }

    /** Deletes what no live reference names and is older than {@code retention}; see the class comment. */
    public static ArtifactStore.Sweep sweep(ArtifactStore store, Duration retention, Instant now) throws IOException {
        return store.deleteUnreferenced(liveDigests(store), retention, now);
    }

    private static void addDigests(ArtifactStore store, String reference, Set<String> live) throws IOException {
        Matcher digests = DIGEST.matcher(read(store, reference).orElse(""));
        while (digests.find()) {
            live.add(digests.group());
        }
    }

    private static Optional<String> read(ArtifactStore store, String reference) throws IOException {
        return store.readReference(reference).map(bytes -> new String(bytes, StandardCharsets.UTF_8));
    }
}
