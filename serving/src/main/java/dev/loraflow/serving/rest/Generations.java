package dev.loraflow.serving.rest;

import dev.loraflow.inference.Completion;
import dev.loraflow.inference.Engine;
import dev.loraflow.inference.GenerationListener;
import dev.loraflow.inference.GenerationRequest;
import dev.loraflow.inference.QueueFullException;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.eclipse.microprofile.config.inject.ConfigProperty;

/** Hands requests to the engine for both APIs and counts what Prometheus reports of them. */
@ApplicationScoped
public class Generations {

    @Inject
    Serving serving;
    @Inject
    MeterRegistry meters;

    @ConfigProperty(name = "loraflow.serving.retry-after-seconds", defaultValue = "1")
    int retryAfterSeconds;
    @ConfigProperty(name = "loraflow.serving.request-timeout", defaultValue = "PT5M")
    java.time.Duration requestTimeout;

    /** One event of a streamed generation. */
    sealed interface Event {
        record Token(int id, String text) implements Event {}

        record Done(Completion completion) implements Event {}

        record Failed(RuntimeException error) implements Event {}
    }

    /** A streamed generation: its events in order, and the handle to cancel it when the client leaves. */
    record Stream(BlockingQueue<Event> events, Engine.Generation generation) {}

    /** Runs to the end; the completion. */
    public Completion complete(Serving.Target target, GenerationRequest request, String api) {
        CompletableFuture<Completion> done = new CompletableFuture<>();
        Engine.Generation generation = submit(target, request, api, GenerationListener.completing(done));
        try {
            return done.get(requestTimeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            generation.cancel();
            throw new IllegalStateException("the generation did not finish within " + requestTimeout);
        } catch (InterruptedException e) {
            generation.cancel();
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while generating");
        } catch (ExecutionException e) {
            throw e.getCause() instanceof RuntimeException runtime ? runtime : new IllegalStateException(e.getCause());
        }
    }

    /** Starts a generation whose events arrive on the returned queue. */
    Stream stream(Serving.Target target, GenerationRequest request, String api) {
        BlockingQueue<Event> events = new LinkedBlockingQueue<>();
        Engine.Generation generation = submit(target, request, api, new GenerationListener() {
            @Override
            public void onToken(int token, String text) {
                events.add(new Event.Token(token, text));
            }

            @Override
            public void onComplete(Completion completion) {
                events.add(new Event.Done(completion));
            }

            @Override
            public void onError(RuntimeException error) {
                events.add(new Event.Failed(error));
            }
        });
        return new Stream(events, generation);
    }

    /**
     * @throws ApiError 429 when the queue is full, 400 for what the engine refuses
     */
    private Engine.Generation submit(Serving.Target target, GenerationRequest request, String api,
                                     GenerationListener downstream) {
        String model = target.servedName();
        Counter tokens = meters.counter("loraflow.generated.tokens", "model", model);
        Timer firstToken = meters.timer("loraflow.time.to.first.token", "model", model);
        GenerationListener counting = new GenerationListener() {
            @Override
            public void onToken(int token, String text) {
                tokens.increment();
                downstream.onToken(token, text);
            }

            @Override
            public void onComplete(Completion completion) {
                firstToken.record(completion.firstTokenNanos(), TimeUnit.NANOSECONDS);
                meters.counter("loraflow.requests", "api", api, "outcome", "completed").increment();
                downstream.onComplete(completion);
            }

            @Override
            public void onError(RuntimeException error) {
                meters.counter("loraflow.requests", "api", api, "outcome", "failed").increment();
                downstream.onError(error);
            }
        };
        try {
            return serving.engine().submit(target.model(), request, counting);
        } catch (QueueFullException e) {
            meters.counter("loraflow.requests", "api", api, "outcome", "refused_overload").increment();
            throw new ApiError(429, e.getMessage(), null, "server_overloaded");
        } catch (IllegalArgumentException e) {
            meters.counter("loraflow.requests", "api", api, "outcome", "invalid").increment();
            throw new ApiError(400, e.getMessage(), null, "invalid_request");
        }
    }

    public int retryAfterSeconds() {
        return retryAfterSeconds;
    }

    /** Counts a request refused before it reached the engine. */
    public void refused(String api, int status) {
        meters.counter("loraflow.requests", "api", api, "outcome", "refused_" + status).increment();
    }
}
