package dev.loraflow.core.safetensors;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A checkpoint that is either one {@value SafetensorsWriter#SINGLE_FILE} or several shards listed by
 * {@value SafetensorsWriter#INDEX_FILE} ({@code {"metadata": {...}, "weight_map": {tensor: file}}}),
 * looked up by tensor name as if it were one file.
 *
 * <p>Opening validates every shard and that each tensor of the weight map is in the shard the map
 * names. Shards must be plain relative names within the checkpoint directory; a symbolic link is
 * followed, since the Hugging Face cache links snapshot files to blobs elsewhere.
 */
public final class ShardedSafetensors implements AutoCloseable {

    private static final ObjectMapper JSON = new ObjectMapper(JsonFactory.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .streamReadConstraints(StreamReadConstraints.builder().maxNestingDepth(64).build())
            .build());

    private final Path source;
    private final Map<String, String> indexMetadata;
    private final Map<String, SafetensorsFile> shardOfTensor;
    private final List<SafetensorsFile> shards;

    private ShardedSafetensors(Path source, Map<String, String> indexMetadata,
                               Map<String, SafetensorsFile> shardOfTensor, List<SafetensorsFile> shards) {
        this.source = source;
        this.indexMetadata = indexMetadata;
        this.shardOfTensor = shardOfTensor;
        this.shards = shards;
    }

    /**
     * Opens a checkpoint. {@code location} is a directory (its {@value SafetensorsWriter#SINGLE_FILE}
     * is preferred over its index, as transformers does), an index file, or a single safetensors file.
     */
    public static ShardedSafetensors open(Path location) throws IOException {
        if (Files.isDirectory(location)) {
            Path single = location.resolve(SafetensorsWriter.SINGLE_FILE);
            Path index = location.resolve(SafetensorsWriter.INDEX_FILE);
            if (Files.exists(single)) {
                return openSingle(single);
            }
            if (Files.exists(index)) {
                return openIndex(index);
            }
            throw new SafetensorsException(location + ": holds neither " + SafetensorsWriter.SINGLE_FILE + " nor "
                    + SafetensorsWriter.INDEX_FILE);
        }
        return location.getFileName().toString().endsWith(".index.json") ? openIndex(location) : openSingle(location);
    }

    private static ShardedSafetensors openSingle(Path file) throws IOException {
        SafetensorsFile shard = SafetensorsFile.open(file);
        Map<String, SafetensorsFile> byTensor = new LinkedHashMap<>();
        for (String name : shard.tensorNames()) {
            byTensor.put(name, shard);
        }
        return new ShardedSafetensors(file, Map.of(), Collections.unmodifiableMap(byTensor), List.of(shard));
    }

    private static ShardedSafetensors openIndex(Path indexFile) throws IOException {
        JsonNode root;
        try {
            root = JSON.readTree(indexFile.toFile());
        } catch (JacksonException e) {
            throw new SafetensorsException(indexFile + ": not valid JSON: " + e.getOriginalMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new SafetensorsException(indexFile + ": must hold a JSON object");
        }
        JsonNode weightMap = root.get("weight_map");
        if (weightMap == null || !weightMap.isObject()) {
            throw new SafetensorsException(indexFile + ": 'weight_map' must be an object of tensor name to shard file");
        }
        Map<String, String> metadata = new LinkedHashMap<>();
        JsonNode metadataNode = root.get("metadata");
        if (metadataNode != null && !metadataNode.isNull()) {
            if (!metadataNode.isObject()) {
                throw new SafetensorsException(indexFile + ": 'metadata' must be an object");
            }
            // Values are usually numbers (total_size); they are exposed as their text.
            for (Map.Entry<String, JsonNode> entry : metadataNode.properties()) {
                JsonNode value = entry.getValue();
                metadata.put(entry.getKey(), value.isValueNode() ? value.asText() : value.toString());
            }
        }

        Path directory = indexFile.toAbsolutePath().getParent();
        Map<String, Path> shardPaths = new LinkedHashMap<>();
        Map<String, String> fileOfTensor = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> entry : weightMap.properties()) {
            String tensor = entry.getKey();
            if (!entry.getValue().isTextual()) {
                throw new SafetensorsException(indexFile + ": tensor '" + tensor + "': shard must be a file name string");
            }
            String fileName = entry.getValue().textValue();
            if (!shardPaths.containsKey(fileName)) {
                shardPaths.put(fileName, resolveShard(indexFile, directory, tensor, fileName));
            }
            fileOfTensor.put(tensor, fileName);
        }

        Map<String, SafetensorsFile> opened = new LinkedHashMap<>();
        boolean success = false;
        try {
            for (Map.Entry<String, Path> shard : shardPaths.entrySet()) {
                opened.put(shard.getKey(), SafetensorsFile.open(shard.getValue()));
            }
            Map<String, SafetensorsFile> byTensor = new LinkedHashMap<>();
            for (Map.Entry<String, String> entry : fileOfTensor.entrySet()) {
                SafetensorsFile shard = opened.get(entry.getValue());
                if (!shard.contains(entry.getKey())) {
                    throw new SafetensorsException(indexFile + ": tensor '" + entry.getKey() + "' is mapped to shard '"
                            + entry.getValue() + "', which does not contain it");
                }
                byTensor.put(entry.getKey(), shard);
            }
            var result = new ShardedSafetensors(indexFile, Collections.unmodifiableMap(metadata),
                    Collections.unmodifiableMap(byTensor), List.copyOf(opened.values()));
            success = true;
            return result;
        } finally {
            if (!success) {
                opened.values().forEach(SafetensorsFile::close);
            }
        }
    }

    private static Path resolveShard(Path indexFile, Path directory, String tensor, String fileName)
            throws SafetensorsException {
        String where = indexFile + ": tensor '" + tensor + "': shard '" + fileName + "'";
        Path relative;
        try {
            relative = Path.of(fileName);
        } catch (InvalidPathException e) {
            throw new SafetensorsException(where + " is not a valid file name");
        }
        if (fileName.isEmpty() || relative.isAbsolute() || relative.getRoot() != null) {
            throw new SafetensorsException(where + " must be a path relative to the index's directory");
        }
        for (Path part : relative) {
            if (part.toString().equals("..")) {
                throw new SafetensorsException(where + " must not leave the index's directory ('..')");
            }
        }
        Path resolved = directory.resolve(relative).normalize();
        if (!resolved.startsWith(directory.normalize())) {
            throw new SafetensorsException(where + " must stay within the index's directory");
        }
        if (!Files.isRegularFile(resolved)) {
            throw new SafetensorsException(where + " does not exist");
        }
        return resolved;
    }

    /** The file opened: the single safetensors file or the index. */
    public Path source() {
        return source;
    }

    /** The index's {@code metadata} with values as text (e.g. {@code total_size}); empty for a single file. */
    public Map<String, String> indexMetadata() {
        return indexMetadata;
    }

    /** Tensor names: the weight map's order, or file order for a single file. */
    public List<String> tensorNames() {
        return List.copyOf(shardOfTensor.keySet());
    }

    public boolean contains(String name) {
        return shardOfTensor.containsKey(name);
    }

    /** The open shards, in the order the index first names them. */
    public List<SafetensorsFile> shards() {
        return shards;
    }

    /** The shard holding tensor {@code name}. */
    public SafetensorsFile shardOf(String name) throws SafetensorsException {
        SafetensorsFile shard = shardOfTensor.get(name);
        if (shard == null) {
            throw new SafetensorsException(source + ": no tensor named '" + name + "' (the checkpoint has "
                    + shardOfTensor.size() + " tensors)");
        }
        return shard;
    }

    public TensorInfo info(String name) throws SafetensorsException {
        return shardOf(name).info(name);
    }

    /** See {@link SafetensorsFile#readFloat32}. */
    public float[] readFloat32(String name) throws SafetensorsException {
        return shardOf(name).readFloat32(name);
    }

    /** See {@link SafetensorsFile#map}. */
    public MemorySegment map(String name, java.lang.foreign.Arena arena) throws IOException {
        return shardOf(name).map(name, arena);
    }

    /** See {@link SafetensorsFile#rawBytes}. */
    public MemorySegment rawBytes(String name) throws SafetensorsException {
        return shardOf(name).rawBytes(name);
    }

    /** Unmaps every shard. */
    @Override
    public void close() {
        shards.forEach(SafetensorsFile::close);
    }
}
