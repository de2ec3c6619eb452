package dev.loraflow.serving;

import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.restassured.path.json.JsonPath;
import io.restassured.response.Response;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Clients that keep posting one completion request until closed, for the tests that swap models under load:
 * each answer is kept with the model version that gave it (its {@code system_fingerprint}), so that a test
 * can wait until a version has answered instead of sleeping, and check afterwards that no request failed
 * and that every answer is wholly one version's.
 */
public final class CompletionLoad implements AutoCloseable {

    private static final String FINGERPRINT_PREFIX = "loraflow-v";
    private static final Duration PATIENCE = Duration.ofSeconds(60);

    private final AtomicBoolean running = new AtomicBoolean(true);
    private final ConcurrentLinkedQueue<String> failures = new ConcurrentLinkedQueue<>();
    private final ConcurrentLinkedQueue<JsonPath> answers = new ConcurrentLinkedQueue<>();
    private final Map<String, AtomicInteger> answersByVersion = new ConcurrentHashMap<>();
    private final ExecutorService clients;
    private final List<Future<?>> loops = new ArrayList<>();
    private boolean closed;

    private CompletionLoad(int clients, String body) {
        this.clients = Executors.newFixedThreadPool(clients);
        for (int c = 0; c < clients; c++) {
            loops.add(this.clients.submit(() -> {
                while (running.get()) {
                    Response response = given().contentType("application/json").body(body).post("/v1/completions");
                    if (response.statusCode() != 200) {
                        failures.add(response.statusCode() + " " + response.asString());
                    } else {
                        JsonPath answer = response.jsonPath();
                        answers.add(answer);
                        answersByVersion.computeIfAbsent(version(answer), v -> new AtomicInteger()).incrementAndGet();
                    }
                }
            }));
        }
    }

    /** Starts {@code clients} threads posting {@code body} to {@code /v1/completions} in a loop. */
    public static CompletionLoad start(int clients, String body) {
        return new CompletionLoad(clients, body);
    }

    /** Waits until model version {@code version} has given {@code count} answers (60 s at most). */
    public void awaitAnswersOf(String version, int count) throws InterruptedException {
        long deadline = System.nanoTime() + PATIENCE.toNanos();
        while (answersOf(version) < count) {
            assertTrue(failures.isEmpty(), "requests failed while waiting for version " + version + ": " + failures);
            assertTrue(System.nanoTime() < deadline, "version " + version + " gave " + answersOf(version)
                    + " answers of " + count + " within " + PATIENCE);
            Thread.sleep(10);
        }
    }

    private int answersOf(String version) {
        AtomicInteger answered = answersByVersion.get(version);
        return answered == null ? 0 : answered.get();
    }

    /** Stops the clients and waits for their last requests. */
    @Override
    public void close() throws Exception {
        if (closed) {
            return;
        }
        closed = true;
        running.set(false);
        try {
            for (Future<?> loop : loops) {
                loop.get(60, TimeUnit.SECONDS);
            }
        } finally {
            clients.shutdown();
        }
    }

    /**
     * After {@link #close()}: no request failed, at least {@code minAnswers} answers came from at least
     * {@code minVersions} versions, and each answer's tokens are those of the version that gave it.
     */
    public void assertEachAnswerWhollyOneVersion(Map<String, List<Integer>> expectedByVersion, int minAnswers,
                                                 int minVersions) {
        assertTrue(closed, "close the load first");
        assertEquals(List.of(), List.copyOf(failures));
        assertTrue(answers.size() >= minAnswers, "requests answered: " + answers.size());
        Set<String> seen = ConcurrentHashMap.newKeySet();
        for (JsonPath answer : answers) {
            String version = version(answer);
            assertTrue(expectedByVersion.containsKey(version), "an answer of version " + version + ", not one of "
                    + expectedByVersion.keySet());
            assertEquals(expectedByVersion.get(version), answer.getList("choices[0].token_ids", Integer.class),
                    "answer of version " + version);
            seen.add(version);
        }
        assertTrue(seen.size() >= minVersions, "answers came from " + seen);
    }

    private static String version(JsonPath answer) {
        return answer.getString("system_fingerprint").substring(FINGERPRINT_PREFIX.length());
    }
}
