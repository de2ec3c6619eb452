package dev.loraflow.core.safetensors;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A memory-mapped safetensors file whose header has been fully validated on {@link #open}.
 *
 * <p>Reads may run concurrently from any thread; {@link #close()} unmaps the file and must not race
 * with them. Segments from {@link #rawBytes} are valid only until then. If another process
 * truncates the file while it is mapped, reads fail with an internal error of the JVM: safetensors
 * files are expected to be replaced (as {@link SafetensorsWriter} does), never rewritten in place.
 */
public final class SafetensorsFile implements AutoCloseable {

    /** The largest tensor {@link #readFloat32} returns; Java arrays cannot be longer than about this. */
    public static final long MAX_ARRAY_ELEMENTS = Integer.MAX_VALUE - 8;

    private static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfDouble F64_LE = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort U16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Path path;
    private final Arena arena;
    private final MemorySegment data;
    /** Where the data buffer starts in the file. */
    private final long dataOffset;
    private final Map<String, String> metadata;
    private final List<TensorInfo> tensors;
    private final Map<String, TensorInfo> byName;

    private SafetensorsFile(Path path, Arena arena, MemorySegment data, SafetensorsHeader header) {
        this.path = path;
        this.arena = arena;
        this.data = data;
        this.dataOffset = header.dataOffset();
        this.metadata = header.metadata;
        this.tensors = header.tensors;
        this.byName = new HashMap<>(tensors.size() * 2);
        for (TensorInfo tensor : tensors) {
            byName.put(tensor.name(), tensor);
        }
    }

    /**
     * Maps {@code path} and validates its header.
     *
     * @throws SafetensorsException if the file is not a well-formed safetensors file
     * @throws IOException if it cannot be read at all
     */
    public static SafetensorsFile open(Path path) throws IOException {
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = channel.size();
            if (size < 8) {
                throw new SafetensorsException(path + ": file has " + size
                        + " bytes, fewer than the 8-byte header length prefix");
            }
            // Shared, so tensors can be read from worker threads; the mapping outlives the channel.
            Arena arena = Arena.ofShared();
            boolean success = false;
            try {
                MemorySegment file = channel.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
                SafetensorsHeader header = SafetensorsHeader.parse(path.toString(), file);
                var result = new SafetensorsFile(path, arena, file.asSlice(header.dataOffset()), header);
                success = true;
                return result;
            } finally {
                if (!success) {
                    arena.close();
                }
            }
        }
    }

    public Path path() {
        return path;
    }

    /** The {@code __metadata__} entries; empty when the header has none. */
    public Map<String, String> metadata() {
        return metadata;
    }

    /** All tensors in file order, that is by ascending position in the data buffer. */
    public List<TensorInfo> tensors() {
        return tensors;
    }

    /** Names of all tensors, in file order. */
    public List<String> tensorNames() {
        return tensors.stream().map(TensorInfo::name).toList();
    }

    public boolean contains(String name) {
        return byName.containsKey(name);
    }

    /** The header entry of tensor {@code name}. */
    public TensorInfo info(String name) throws SafetensorsException {
        TensorInfo tensor = byName.get(name);
        if (tensor == null) {
            throw new SafetensorsException(path + ": no tensor named '" + name + "' (the file has "
                    + tensors.size() + " tensors)");
        }
        return tensor;
    }

    /** The tensor's bytes as stored: little-endian, row-major, read-only. */
    public MemorySegment rawBytes(String name) throws SafetensorsException {
        TensorInfo tensor = info(name);
        return data.asSlice(tensor.begin(), tensor.byteSize());
    }

    /** Where the tensor's bytes start in the file. */
    public long fileOffset(String name) throws SafetensorsException {
        return dataOffset + info(name).begin();
    }

    /**
     * The tensor's bytes as stored, mapped again in {@code arena}: the mapping lives as long as the
     * arena, not this file (with {@link Arena#ofAuto()}, as long as the segment is reachable), so a model
     * can keep its frozen weights off the heap after the checkpoint is closed.
     */
    public MemorySegment map(String name, Arena arena) throws IOException {
        TensorInfo tensor = info(name);
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
            return channel.map(FileChannel.MapMode.READ_ONLY, dataOffset + tensor.begin(), tensor.byteSize(), arena);
        }
    }

    /**
     * The tensor's elements as float32, row-major. F32 is copied; F16, BF16 and F64 are converted
     * (F64 rounds to nearest).
     *
     * @throws SafetensorsException for other element types, or a tensor too large for one array
     */
    public float[] readFloat32(String name) throws SafetensorsException {
        TensorInfo tensor = info(name);
        if (!tensor.dtype().isReadableAsFloat32()) {
            throw new SafetensorsException(path + ": tensor '" + name + "' has dtype " + tensor.dtype()
                    + ", which is not a float type (F16, BF16, F32 or F64)");
        }
        long count = tensor.numel();
        if (count > MAX_ARRAY_ELEMENTS) {
            throw new SafetensorsException(path + ": tensor '" + name + "' has " + count
                    + " elements, more than one Java array holds (" + MAX_ARRAY_ELEMENTS + ")");
        }
        int n = (int) count;
        MemorySegment bytes = data.asSlice(tensor.begin(), tensor.byteSize());
        float[] out = new float[n];
        switch (tensor.dtype()) {
            case F32 -> MemorySegment.copy(bytes, F32_LE, 0, out, 0, n);
            case F16 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = HalfFloats.fromF16(bytes.getAtIndex(U16_LE, i));
                }
            }
            case BF16 -> HalfFloats.fromBf16(bytes, out, 0, n);
            case F64 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = (float) bytes.getAtIndex(F64_LE, i);
                }
            }
            default -> throw new AssertionError(tensor.dtype());
        }
        return out;
    }

    /** Unmaps the file. */
    @Override
    public void close() {
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }

    @Override
    public String toString() {
        return "SafetensorsFile[" + path + ", " + tensors.size() + " tensors]";
    }
}
