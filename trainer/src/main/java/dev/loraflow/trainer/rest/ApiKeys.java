package dev.loraflow.trainer.rest;

import dev.loraflow.service.support.ServiceApiKeys;
import jakarta.ws.rs.container.ContainerRequestFilter;
import jakarta.ws.rs.container.PreMatching;
import jakarta.ws.rs.ext.Provider;

/** The API keys that may submit jobs ({@code POST /jobs}), checked before the body is read: see {@link ServiceApiKeys}. */
@Provider
@PreMatching
public class ApiKeys extends ServiceApiKeys implements ContainerRequestFilter {

    public ApiKeys() {
        super(Guarded.post("/jobs"), "job submission is disabled");
    }
}
