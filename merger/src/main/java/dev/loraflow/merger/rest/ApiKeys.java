package dev.loraflow.merger.rest;

import dev.loraflow.service.support.ServiceApiKeys;
import jakarta.ws.rs.container.ContainerRequestFilter;
import jakarta.ws.rs.container.PreMatching;
import jakarta.ws.rs.ext.Provider;

/** The API keys that may ask for merges ({@code POST /merges}), checked before the body is read: see {@link ServiceApiKeys}. */
@Provider
@PreMatching
public class ApiKeys extends ServiceApiKeys implements ContainerRequestFilter {

    public ApiKeys() {
        super(Guarded.post("/merges"), "merge requests are disabled");
    }
}
