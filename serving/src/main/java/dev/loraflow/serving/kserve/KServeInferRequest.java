package dev.loraflow.serving.kserve;

import com.fasterxml.jackson.databind.JsonNode;
import dev.loraflow.serving.service.ApiError;
import dev.loraflow.serving.service.GenerationParameters;
import dev.loraflow.serving.service.Requests;
import java.util.ArrayList;
import java.util.List;

/**
 * The body of KServe v2's REST inference request, bound by {@link Requests#bind} and checked as it is built; what
 * only the model can tell (the input's name, datatype and shape against what it takes) {@link KServeInference}
 * checks. The generation parameters are the record both transports bind theirs to.
 *
 * @param outputs the outputs asked for; absent or empty for every output
 */
record KServeInferRequest(String id, List<Input> inputs, GenerationParameters parameters, List<RequestedOutput> outputs) {

    KServeInferRequest {
        if (inputs != null && inputs.contains(null)) {
            throw ApiError.badParameter("inputs", "each input must be {name, shape, datatype, data}, got null");
        }
        if (outputs != null && outputs.contains(null)) {
            throw ApiError.badParameter("outputs", "each output needs a string name, got null");
        }
        inputs = inputs == null ? List.of() : List.copyOf(inputs);
        outputs = outputs == null ? List.of() : List.copyOf(outputs);
    }

    /** A tensor: its data a flat array whose elements' JSON type says what it holds. */
    record Input(String name, String datatype, long[] shape, JsonNode data) {
        Input {
            name = name == null ? "" : name;
            datatype = datatype == null ? "" : datatype;
            if (shape == null || data == null || !data.isArray()) {
                throw ApiError.badParameter("inputs", "input " + name + " needs a shape and a data array");
            }
        }

        /** Integers when every element is one (of 64 bits), strings when every element is one, else other values. */
        KServeInference.Values values() {
            boolean integers = true;
            boolean strings = true;
            for (JsonNode element : data) {
                integers &= element.isIntegralNumber() && element.canConvertToLong();
                strings &= element.isTextual();
            }
            if (integers) {
                long[] longs = new long[data.size()];
                for (int i = 0; i < longs.length; i++) {
                    longs[i] = data.get(i).longValue();
                }
                return new KServeInference.Values.Integers(longs);
            }
            if (strings) {
                List<String> texts = new ArrayList<>();
                data.forEach(element -> texts.add(element.textValue()));
                return new KServeInference.Values.Strings(texts);
            }
            return new KServeInference.Values.Other(data.size());
        }
    }

    record RequestedOutput(String name) {
        RequestedOutput {
            if (name == null) {
                throw ApiError.badParameter("outputs", "each output needs a string name");
            }
        }
    }

    /** The protocol's request, as {@link KServeInference} takes it from either transport. */
    KServeInference.Request toInference() {
        List<KServeInference.Tensor> tensors = inputs.stream()
                .map(input -> new KServeInference.Tensor(input.name(), input.datatype(), input.shape(), input.values()))
                .toList();
        return new KServeInference.Request(id, tensors, parameters,
                outputs.stream().map(RequestedOutput::name).toList());
    }
}
