package dev.loraflow.onnx;

import dev.loraflow.core.io.Sha256;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.DigestOutputStream;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * An ONNX graph being built node by node, and its serialisation as a ModelProto, with the field numbers
 * of onnx/onnx.proto. Node outputs get fresh names unless given one.
 */
final class OnnxGraph {

    static final int FLOAT = 1;
    static final int UINT8 = 2;
    static final int INT8 = 3;
    static final int INT32 = 6;
    static final int INT64 = 7;
    static final int BOOL = 9;

    // AttributeProto.AttributeType
    private static final int ATTR_FLOAT = 1;
    private static final int ATTR_INT = 2;
    private static final int ATTR_INTS = 7;

    /** ONNX Runtime's contrib operators (MatMulNBits), imported at version 1 when a node uses them. */
    static final String MICROSOFT_DOMAIN = "com.microsoft";

    /** Bytes buffered per write to a file: few system calls for a many-gigabyte weights file. */
    private static final int WRITE_BUFFER = 8 << 20;
    /** External data offsets are page-aligned, as onnx.proto recommends for mmap. */
    private static final long EXTERNAL_ALIGNMENT = 4096;

    /** One dimension of a graph input or output: a fixed size or a symbolic name. */
    record Dim(long value, String param) {
        static Dim of(long value) {
            return new Dim(value, null);
        }

        static Dim of(String param) {
            return new Dim(-1, Objects.requireNonNull(param));
        }
    }

    /** A node attribute: int, ints or float. */
    record Attribute(String name, int type, long[] ints, float value) {
        static Attribute of(String name, long value) {
            return new Attribute(name, ATTR_INT, new long[] {value}, 0f);
        }

        static Attribute ofInts(String name, long... values) {
            return new Attribute(name, ATTR_INTS, values.clone(), 0f);
        }

        static Attribute of(String name, float value) {
            return new Attribute(name, ATTR_FLOAT, null, value);
        }
    }

    private record ValueInfo(String name, int elemType, List<Dim> dims) {}

    /** @param domain "" for the default ONNX domain */
    private record Node(String domain, String opType, List<String> inputs, List<String> outputs,
                        List<Attribute> attributes) {}

    /** A weight whose bytes the payload writes, or an int64/float/bool tensor small enough to encode now. */
    private record Initializer(String name, int dataType, long[] dims, TensorPayload payload, byte[] raw) {
        long byteCount() {
            return payload != null ? payload.byteCount() : raw.length;
        }
    }

    private final String name;
    private final List<ValueInfo> inputs = new ArrayList<>();
    private final List<ValueInfo> outputs = new ArrayList<>();
    private final List<Node> nodes = new ArrayList<>();
    private final Map<String, Initializer> initializers = new LinkedHashMap<>();
    private final Set<String> values = new HashSet<>();
    private final Map<String, Integer> counters = new LinkedHashMap<>();

    OnnxGraph(String name) {
        this.name = name;
    }

    /** Declares a graph input and returns its name. */
    String input(String inputName, int elemType, Dim... dims) {
        define(inputName);
        inputs.add(new ValueInfo(inputName, elemType, List.of(dims)));
        return inputName;
    }

    /** Declares a graph output, which some node must produce under that name. */
    void output(String outputName, int elemType, Dim... dims) {
        outputs.add(new ValueInfo(outputName, elemType, List.of(dims)));
    }

    /**
     * A float initializer of the model's weights; its bytes are read from the payload when the model is
     * written, so the array must not change until then.
     */
    String weight(String weightName, TensorPayload payload, long... dims) {
        return weight(weightName, FLOAT, payload, dims);
    }

    /**
     * A weight of {@code dataType}: {@link #FLOAT}, {@link #INT8} or {@link #UINT8} (one byte per element:
     * a packed int4 tensor is declared as its bytes, as MatMulNBits reads it).
     */
    String weight(String weightName, int dataType, TensorPayload payload, long... dims) {
        int elementBytes = switch (dataType) {
            case FLOAT -> 4;
            case INT8, UINT8 -> 1;
            default -> throw new IllegalArgumentException("weights are float32, int8 or uint8, not data type " + dataType);
        };
        checkElements(weightName, payload.byteCount() / elementBytes, dims);
        return addInitializer(new Initializer(weightName, dataType, dims.clone(), payload, null));
    }

    /** A 1-D int64 constant. */
    String ints(long... values) {
        return int64Constant(new long[] {values.length}, values);
    }

    /** A 0-D int64 constant. */
    String scalar(long value) {
        return int64Constant(new long[0], new long[] {value});
    }

    /** A 0-D float constant. */
    String scalar(float value) {
        byte[] raw = new byte[4];
        putLittleEndian(raw, 0, Float.floatToRawIntBits(value), 4);
        return addInitializer(new Initializer(fresh("const"), FLOAT, new long[0], null, raw));
    }

    private String int64Constant(long[] dims, long[] values) {
        byte[] raw = new byte[8 * values.length];
        for (int i = 0; i < values.length; i++) {
            putLittleEndian(raw, 8 * i, values[i], 8);
        }
        return addInitializer(new Initializer(fresh("const"), INT64, dims, null, raw));
    }

    /** A node with one output, named freshly after its op type. */
    String node(String opType, List<String> nodeInputs, Attribute... attributes) {
        return nodeNamed(opType, fresh(opType), nodeInputs, attributes);
    }

    String node(String opType, String input, Attribute... attributes) {
        return node(opType, List.of(input), attributes);
    }

    String node(String opType, String first, String second, Attribute... attributes) {
        return node(opType, List.of(first, second), attributes);
    }

    /** A node with one output of a given name: how graph outputs are produced. */
    String nodeNamed(String opType, String outputName, List<String> nodeInputs, Attribute... attributes) {
        return nodeWithOutputs("", opType, List.of(outputName), nodeInputs, attributes).getFirst();
    }

    /** A node of ONNX Runtime's {@value #MICROSOFT_DOMAIN} operators with one fresh output. */
    String microsoftNode(String opType, List<String> nodeInputs, Attribute... attributes) {
        return nodeWithOutputs(MICROSOFT_DOMAIN, opType, List.of(fresh(opType)), nodeInputs, attributes).getFirst();
    }

    /**
     * A node of ONNX Runtime's {@value #MICROSOFT_DOMAIN} operators whose outputs are fresh where {@code produced}
     * is true and omitted ("", as ONNX spells an optional output nobody reads) where it is false.
     */
    List<String> microsoftNodeWithOutputs(String opType, boolean[] produced, List<String> nodeInputs,
                                          Attribute... attributes) {
        List<String> outputNames = new ArrayList<>();
        for (boolean output : produced) {
            outputNames.add(output ? fresh(opType) : "");
        }
        return nodeWithOutputs(MICROSOFT_DOMAIN, opType, outputNames, nodeInputs, attributes);
    }

    /**
     * A node of ONNX Runtime's {@value #MICROSOFT_DOMAIN} operators with outputs of given names, fresh ones from
     * {@link #freshName}.
     */
    List<String> microsoftNodeNamed(String opType, List<String> outputNames, List<String> nodeInputs,
                                    Attribute... attributes) {
        return nodeWithOutputs(MICROSOFT_DOMAIN, opType, outputNames, nodeInputs, attributes);
    }

    /** A node with {@code count} fresh outputs. */
    List<String> nodeWithOutputs(String opType, int count, List<String> nodeInputs, Attribute... attributes) {
        List<String> outputNames = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            outputNames.add(fresh(opType));
        }
        return nodeWithOutputs("", opType, outputNames, nodeInputs, attributes);
    }

    private List<String> nodeWithOutputs(String domain, String opType, List<String> outputNames, List<String> nodeInputs,
                                         Attribute... attributes) {
        for (String input : nodeInputs) {
            // "" is an omitted optional input, as ONNX spells it.
            if (!input.isEmpty() && !values.contains(input)) {
                throw new IllegalStateException(opType + " reads '" + input + "', which nothing defines yet");
            }
        }
        outputNames.stream().filter(output -> !output.isEmpty()).forEach(this::define);
        nodes.add(new Node(domain, opType, List.copyOf(nodeInputs), List.copyOf(outputNames), List.of(attributes)));
        return outputNames;
    }

    /** Total bytes of the initializers' data. */
    long initializerBytes() {
        return initializers.values().stream().mapToLong(Initializer::byteCount).sum();
    }

    /**
     * SHA-256 of the files {@link #write} wrote, computed as their bytes went out.
     *
     * @param externalDataSha256 null without external data
     */
    record Written(String modelSha256, String externalDataSha256) {}

    /**
     * Writes the ModelProto to {@code file}; with {@code externalData} the float weights of at least
     * {@code externalMinBytes} go to that file instead, page-aligned, and the model names it relative to
     * its own directory. The weights are written tensor by tensor as their payloads produce them, and
     * each file's digest is taken in the same pass.
     *
     * @param metadata ModelProto.metadata_props, in order
     */
    Written write(Path file, int irVersion, int opset, String producerVersion, Map<String, String> metadata,
                  Path externalData, long externalMinBytes) throws IOException {
        for (ValueInfo output : outputs) {
            if (!values.contains(output.name())) {
                throw new IllegalStateException("graph output '" + output.name() + "' is produced by no node");
            }
        }
        ProtoMessage graph = new ProtoMessage();
        for (Node node : nodes) {
            graph.message(1, nodeProto(node));
        }
        graph.string(2, name);
        List<Initializer> external = new ArrayList<>();
        long offset = 0;
        for (Initializer initializer : initializers.values()) {
            ProtoMessage tensor = new ProtoMessage().int64s(1, initializer.dims()).int64(2, initializer.dataType())
                    .string(8, initializer.name());
            if (externalData != null && initializer.payload() != null && initializer.byteCount() >= externalMinBytes) {
                offset = align(offset);
                tensor.message(13, entry("location", externalData.getFileName().toString()))
                        .message(13, entry("offset", Long.toString(offset)))
                        .message(13, entry("length", Long.toString(initializer.byteCount())))
                        .int64(14, 1);
                external.add(initializer);
                offset += initializer.byteCount();
            } else if (initializer.payload() != null) {
                tensor.payload(9, initializer.payload());
            } else {
                tensor.bytes(9, initializer.raw());
            }
            graph.message(5, tensor);
        }
        inputs.forEach(input -> graph.message(11, valueInfo(input)));
        outputs.forEach(output -> graph.message(12, valueInfo(output)));

        ProtoMessage model = new ProtoMessage()
                .int64(1, irVersion)
                .string(2, "loraflow")
                .string(3, producerVersion)
                .message(7, graph)
                .message(8, new ProtoMessage().string(1, "").int64(2, opset));
        if (nodes.stream().anyMatch(node -> node.domain().equals(MICROSOFT_DOMAIN))) {
            model.message(8, new ProtoMessage().string(1, MICROSOFT_DOMAIN).int64(2, 1));
        }
        metadata.forEach((key, value) -> model.message(14, entry(key, value)));
        if (externalData == null && model.size() > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("the model is " + model.size()
                    + " bytes, over protobuf's 2 GiB limit; write its weights as external data");
        }

        String externalSha256 = null;
        if (externalData != null) {
            MessageDigest digest = Sha256.newDigest();
            try (OutputStream out = digesting(externalData, digest)) {
                long written = 0;
                for (Initializer initializer : external) {
                    for (long aligned = align(written); written < aligned; written++) {
                        out.write(0);
                    }
                    initializer.payload().writeTo(out);
                    written += initializer.byteCount();
                }
            }
            externalSha256 = Sha256.hex(digest);
        }
        MessageDigest digest = Sha256.newDigest();
        try (OutputStream out = digesting(file, digest)) {
            model.writeTo(out);
        }
        return new Written(Sha256.hex(digest), externalSha256);
    }

    /** A buffered stream into {@code file} that feeds {@code digest} what it writes. */
    private static OutputStream digesting(Path file, MessageDigest digest) throws IOException {
        return new BufferedOutputStream(new DigestOutputStream(Files.newOutputStream(file), digest), WRITE_BUFFER);
    }

    private static long align(long offset) {
        return (offset + EXTERNAL_ALIGNMENT - 1) / EXTERNAL_ALIGNMENT * EXTERNAL_ALIGNMENT;
    }

    private static ProtoMessage nodeProto(Node node) {
        ProtoMessage proto = new ProtoMessage();
        node.inputs().forEach(input -> proto.string(1, input));
        node.outputs().forEach(output -> proto.string(2, output));
        proto.string(3, node.outputs().getFirst()).string(4, node.opType());
        if (!node.domain().isEmpty()) {
            proto.string(7, node.domain());
        }
        for (Attribute attribute : node.attributes()) {
            ProtoMessage attr = new ProtoMessage().string(1, attribute.name()).int64(20, attribute.type());
            switch (attribute.type()) {
                case ATTR_FLOAT -> attr.float32(2, attribute.value());
                case ATTR_INT -> attr.int64(3, attribute.ints()[0]);
                case ATTR_INTS -> attr.int64s(8, attribute.ints());
                default -> throw new IllegalStateException("attribute type " + attribute.type());
            }
            proto.message(5, attr);
        }
        return proto;
    }

    private static ProtoMessage valueInfo(ValueInfo info) {
        ProtoMessage shape = new ProtoMessage();
        for (Dim dim : info.dims()) {
            ProtoMessage dimension = new ProtoMessage();
            if (dim.param() != null) {
                dimension.string(2, dim.param());
            } else {
                dimension.int64(1, dim.value());
            }
            shape.message(1, dimension);
        }
        ProtoMessage tensorType = new ProtoMessage().int64(1, info.elemType()).message(2, shape);
        return new ProtoMessage().string(1, info.name()).message(2, new ProtoMessage().message(1, tensorType));
    }

    private static ProtoMessage entry(String key, String value) {
        return new ProtoMessage().string(1, key).string(2, value);
    }

    private String addInitializer(Initializer initializer) {
        define(initializer.name());
        initializers.put(initializer.name(), initializer);
        return initializer.name();
    }

    private void define(String valueName) {
        if (!values.add(valueName)) {
            throw new IllegalStateException("'" + valueName + "' is defined twice in the graph");
        }
    }

    /** A name no value has yet, for a node output named with others ({@link #microsoftNodeNamed}). */
    String freshName(String prefix) {
        return fresh(prefix);
    }

    private String fresh(String prefix) {
        int count = counters.merge(prefix, 1, Integer::sum);
        return prefix + "_" + count;
    }

    private static void checkElements(String tensorName, long elements, long[] dims) {
        long expected = 1;
        for (long dim : dims) {
            expected = Math.multiplyExact(expected, dim);
        }
        if (expected != elements) {
            throw new IllegalArgumentException(tensorName + ": " + elements + " values for dims " + Arrays.toString(dims));
        }
    }

    private static void putLittleEndian(byte[] target, int offset, long value, int bytes) {
        for (int i = 0; i < bytes; i++) {
            target[offset + i] = (byte) (value >>> (8 * i));
        }
    }
}
