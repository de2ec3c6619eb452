package dev.loraflow.serving.rest;

import dev.loraflow.serving.service.JsonBody;
import dev.loraflow.serving.service.Requests;

/** The admin API's request bodies. */
final class AdminRequests {

    private AdminRequests() {}

    /**
     * {@code POST /admin/models}: the graph, its SHA-256 (optional), the directory of config.json and the
     * tokenizer (optional: beside the file), and the name to serve it as (optional: the default name).
     */
    @JsonBody
    record LoadModel(String path, String sha256, String configDir, String name) {
        LoadModel {
            Requests.required(path, "path");
            if (name != null && name.isBlank()) {
                throw dev.loraflow.serving.service.ApiError.badParameter("name", "name must not be blank");
            }
        }
    }

    /** {@code POST /admin/adapters}: the adapter's name and its PEFT directory. */
    @JsonBody
    record LoadAdapter(String name, String path) {
        LoadAdapter {
            Requests.required(name, "name");
            Requests.required(path, "path");
        }
    }
}
