package dev.loraflow.serving.service;

import dev.loraflow.inference.Completion;
import dev.loraflow.inference.DeadlineExceededException;
import dev.loraflow.inference.Engine;
import dev.loraflow.inference.GenerationListener;
import dev.loraflow.inference.GenerationRequest;
import dev.loraflow.inference.EngineOverloadedException;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.vertx.ext.web.RoutingContext;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/** Hands requests to the engine for both APIs and counts what Prometheus reports of them. */
@ApplicationScoped
public class Generations {

    @Inject
    Serving serving;
    @Inject
    MeterRegistry meters;

    @Inject
    ServingConfig config;

    /** One event of a streamed generation. */
    public sealed interface Event {
        record Token(int id, String text) implements Event {}

        record Done(Completion completion) implements Event {}

        record Failed(RuntimeException error) implements Event {}

        /** The client went away: the generation was cancelled, nothing more comes. */
        record Gone() implements Event {}
    }

    /** A streamed generation: its events in order, and the handle to cancel it when the client leaves. */
    public record Stream(BlockingQueue<Event> events, Engine.Generation generation) {}

    /**
     * Where a request hears that its exchange with the client ended: the action runs once when the response
     * has been sent or the connection closed before (the client went away).
     */
    @FunctionalInterface
    public interface ExchangeEnd {
        /** For callers with no client connection to watch. */
        ExchangeEnd NEVER = action -> { };

        void then(Runnable action);

        /**
         * Watches the exchange from now on, not from the first {@link #then}: a client that leaves while its
         * request is being handed to the engine still cancels the generation.
         */
        static ExchangeEnd of(RoutingContext routing) {
            EndLatch latch = new EndLatch();
            routing.addEndHandler(ignored -> latch.end());
            // Ended before the handler was in place: Vert.x reports a close only to handlers already registered.
            if (routing.response().closed() || routing.response().ended()) {
                latch.end();
            }
            return latch;
        }
    }

    /** An exchange's end, remembered: actions added after it run at once, each action runs once. */
    static final class EndLatch implements ExchangeEnd {
        private final List<Runnable> actions = new ArrayList<>();
        private boolean ended;

        @Override
        public void then(Runnable action) {
            synchronized (this) {
                if (!ended) {
                    actions.add(action);
                    return;
                }
            }
            action.run();
        }

        void end() {
            List<Runnable> pending;
            synchronized (this) {
                if (ended) {
                    return;
                }
                ended = true;
                pending = List.copyOf(actions);
                actions.clear();
            }
            pending.forEach(Runnable::run);
        }
    }

    /**
     * Runs to the end; the completion. When the client goes away first, the generation is cancelled (the
     * engine drops it before its next step) and the caller gets a 499 nobody reads.
     *
     * @throws ApiError 504 when the request's deadline ({@code loraflow.serving.request-timeout}) passes first
     */
    public Completion complete(Serving.Target target, GenerationRequest request, String api, ExchangeEnd end) {
        CompletableFuture<Completion> done = new CompletableFuture<>();
        Engine.Generation generation = submit(target, request, api, GenerationListener.completing(done));
        end.then(() -> {
            if (!done.isDone()) {
                generation.cancel();
                cancelled(api);
                done.cancel(false);
            }
        });
        try {
            // The engine ends every generation by its deadline at the latest.
            return done.get();
        } catch (CancellationException e) {
            throw new ApiError(499, "the client closed the connection", null, "client_closed_request");
        } catch (InterruptedException e) {
            generation.cancel();
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while generating");
        } catch (ExecutionException e) {
            if (e.getCause() instanceof DeadlineExceededException late) {
                throw timedOut(late);
            }
            throw e.getCause() instanceof RuntimeException runtime ? runtime : new IllegalStateException(e.getCause());
        }
    }

    /** The 504 for a generation past its deadline. */
    public ApiError timedOut(DeadlineExceededException late) {
        return new ApiError(504, late.getMessage() + "; requests may take " + config.requestTimeout()
                + " (loraflow.serving.request-timeout)", null, "request_timeout");
    }

    /** Starts a generation whose events arrive on the returned queue; cancelled when the client goes away. */
    public Stream stream(Serving.Target target, GenerationRequest request, String api, ExchangeEnd end) {
        BlockingQueue<Event> events = new LinkedBlockingQueue<>();
        AtomicBoolean ended = new AtomicBoolean();
        Engine.Generation generation = submit(target, request, api, new GenerationListener() {
            @Override
            public void onToken(int token, String text) {
                events.add(new Event.Token(token, text));
            }

            @Override
            public void onComplete(Completion completion) {
                ended.set(true);
                events.add(new Event.Done(completion));
            }

            @Override
            public void onError(RuntimeException error) {
                ended.set(true);
                events.add(new Event.Failed(error));
            }
        });
        end.then(() -> {
            if (!ended.get()) {
                generation.cancel();
                cancelled(api);
            }
            events.add(new Event.Gone());
        });
        return new Stream(events, generation);
    }

    /**
     * @throws ApiError 429 when the queue or the KV cache budget is full, 400 for what the engine refuses
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
                meters.counter("loraflow.requests", "api", api, "outcome",
                        error instanceof DeadlineExceededException ? "timed_out" : "failed").increment();
                downstream.onError(error);
            }
        };
        long deadline = System.nanoTime() + config.requestTimeout().toNanos();
        try {
            return serving.engine().submit(target.model(), request, counting, deadline);
        } catch (EngineOverloadedException e) {
            meters.counter("loraflow.requests", "api", api, "outcome", "refused_overload").increment();
            throw new ApiError(429, e.getMessage(), null, "server_overloaded");
        } catch (IllegalArgumentException e) {
            meters.counter("loraflow.requests", "api", api, "outcome", "invalid").increment();
            throw new ApiError(400, e.getMessage(), null, "invalid_request");
        }
    }

    public int retryAfterSeconds() {
        return config.retryAfterSeconds();
    }

    private void cancelled(String api) {
        meters.counter("loraflow.requests", "api", api, "outcome", "cancelled").increment();
    }

    /**
     * Counts a request refused before it reached the engine; a 499 or 504 ended in it, and was counted as
     * cancelled or timed_out there.
     */
    public void refused(String api, int status) {
        if (status == 499 || status == 504) {
            return;
        }
        meters.counter("loraflow.requests", "api", api, "outcome", "refused_" + status).increment();
    }
}
