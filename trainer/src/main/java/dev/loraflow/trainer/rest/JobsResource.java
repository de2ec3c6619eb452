package dev.loraflow.trainer.rest;

import dev.loraflow.platform.events.EventFormatException;
import dev.loraflow.platform.events.TrainingJob;
import dev.loraflow.platform.reliability.Failures;
import dev.loraflow.service.support.ErrorResponses;
import dev.loraflow.trainer.service.JobStatus;
import dev.loraflow.trainer.service.TrainerService;
import io.smallrye.mutiny.Multi;
import io.smallrye.mutiny.operators.multi.processors.BroadcastProcessor;
import io.smallrye.reactive.messaging.MutinyEmitter;
import io.smallrye.reactive.messaging.kafka.api.OutgoingKafkaRecordMetadata;
import jakarta.annotation.PostConstruct;
import jakarta.inject.Inject;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import org.eclipse.microprofile.reactive.messaging.Channel;
import org.eclipse.microprofile.reactive.messaging.Message;
import org.jboss.resteasy.reactive.RestStreamElementType;

/** Jobs over HTTP: their status, a live progress stream, and submission for clients that don't speak Kafka. */
@Path("/jobs")
public class JobsResource {

    /** Job definitions are small; anything larger is not one. */
    private static final int MAX_JOB_BYTES = 64 * 1024;
    private static final Duration PUBLISH_TIMEOUT = Duration.ofSeconds(30);

    @Inject
    TrainerService service;

    /** Job definitions, published through the connector to the jobs topic (application.properties). */
    @Inject
    @Channel("training-jobs")
    MutinyEmitter<byte[]> jobs;

    private final BroadcastProcessor<JobStatus> progress = BroadcastProcessor.create();

    @PostConstruct
    void listen() {
        service.loop().onStatus(progress::onNext);
    }

    @GET
    @Produces(MediaType.APPLICATION_JSON)
    public List<JobStatus> list() {
        return service.loop().statuses().stream().sorted(Comparator.comparing(JobStatus::jobId)).toList();
    }

    @GET
    @Path("/{id}")
    @Produces(MediaType.APPLICATION_JSON)
    public Response get(@PathParam("id") String id) {
        JobStatus status = service.loop().status(id);
        return status == null ? ErrorResponses.of(Response.Status.NOT_FOUND, "no job " + id) : Response.ok(status).build();
    }

    /** Server-Sent Events: the job's status after every batch it takes, until the client leaves. */
    @GET
    @Path("/{id}/progress")
    @Produces(MediaType.SERVER_SENT_EVENTS)
    @RestStreamElementType(MediaType.APPLICATION_JSON)
    public Multi<JobStatus> progress(@PathParam("id") String id) {
        JobStatus current = service.loop().status(id);
        Multi<JobStatus> updates = progress.filter(status -> status.jobId().equals(id));
        return current == null ? updates : Multi.createBy().concatenating().streams(Multi.createFrom().item(current), updates);
    }

    @POST
    @Consumes(MediaType.APPLICATION_JSON)
    @Produces(MediaType.APPLICATION_JSON)
    public Response submit(byte[] body) {
        if (body == null || body.length > MAX_JOB_BYTES) {
            return ErrorResponses.of(Response.Status.BAD_REQUEST, "a job definition is a JSON object of at most " + MAX_JOB_BYTES + " bytes");
        }
        TrainingJob job;
        try {
            job = TrainingJob.parse(body);
            service.bases().resolve(job.baseModel());
        } catch (EventFormatException | IllegalArgumentException e) {
            return ErrorResponses.of(Response.Status.BAD_REQUEST, e.getMessage());
        } catch (IOException e) {
            return ErrorResponses.of(Response.Status.BAD_REQUEST, e.getMessage());
        }
        try {
            // Answered only once the broker has acknowledged the job (acks=all): an accepted job is never lost.
            jobs.sendMessage(Message.of(job.toJson().toString().getBytes(StandardCharsets.UTF_8))
                            .addMetadata(OutgoingKafkaRecordMetadata.<String>builder().withKey(job.jobId()).build()))
                    .await().atMost(PUBLISH_TIMEOUT);
        } catch (RuntimeException e) {
            return ErrorResponses.of(Response.Status.SERVICE_UNAVAILABLE, "cannot publish the job to Kafka: " + Failures.describe(e));
        }
        return Response.accepted(Map.of("job_id", job.jobId(), "topic", service.jobsTopic())).build();
    }
}
