package dev.loraflow.core.safetensors;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.io.AtomicFiles;
import dev.loraflow.core.io.CodePointOrder;
import dev.loraflow.core.io.DigestingChannel;
import dev.loraflow.core.io.PythonJson;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.FloatBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Collects named tensors and writes them as a safetensors file laid out byte for byte as the
 * reference writer ({@code safetensors.serialize}) would: {@code __metadata__} first, tensors by
 * descending {@link DType} order then name, header padded with spaces to a multiple of 8 bytes.
 *
 * <p>Arrays passed in are referenced, not copied, until the file is written; do not change
 * them in between. Tensors added with {@link #addLazy} are produced only as the file is written, one at a
 * time, so a file can be far larger than the memory it is written with.
 */
public final class SafetensorsWriter {

    /** Name of the index file that {@link #writeSharded} writes and {@link ShardedSafetensors} reads. */
    public static final String INDEX_FILE = "model.safetensors.index.json";

    /** Name of an unsharded checkpoint. */
    public static final String SINGLE_FILE = "model.safetensors";

    private static final int CHUNK_BYTES = DigestingChannel.BUFFER_BYTES;

    /** The largest tensor {@link #addFileRegion(String, DType, Path, long, RegionTransform, long...)} takes: a direct buffer's limit. */
    public static final long MAX_TRANSFORMED_BYTES = Integer.MAX_VALUE - 8;

    private static final Pattern CHECKPOINT_FILE =
            Pattern.compile("model\\.safetensors(\\.index\\.json)?|model-\\d{5,}-of-\\d{5,}\\.safetensors");

    private static final Comparator<Entry> REFERENCE_LAYOUT = Comparator
            .comparingInt((Entry entry) -> -entry.dtype.ordinal())
            .thenComparing(entry -> entry.name, CodePointOrder.INSTANCE);

    private final Map<String, String> metadata = new TreeMap<>(CodePointOrder.INSTANCE);
    private final Map<String, Entry> entries = new LinkedHashMap<>();
    private RegionReads regionReads = (file, offset, bytes) -> { };

    /** A float tensor's values, produced when the writer reaches it; it may throw what producing it throws. */
    @FunctionalInterface
    public interface FloatSource {
        float[] values() throws IOException;
    }

    /**
     * A float tensor's values produced a run at a time as the writer reaches them: elements {@code [start, start +
     * count)} of the flattened tensor into {@code into[0, count)}. Runs come in order, and {@code into} is reused.
     */
    @FunctionalInterface
    public interface FloatRuns {
        void fill(long start, float[] into, int count) throws IOException;
    }

    /** A tensor's little-endian bytes, produced when the writer reaches it: from position to limit, copied before the next. */
    @FunctionalInterface
    public interface ByteSource {
        ByteBuffer bytes() throws IOException;
    }

    /**
     * Told of the bytes read for {@link #addFileRegion} as they are read, e.g. to hash that file in the same pass.
     * Writing to a {@link DigestingChannel}, it is told on the channel's reading thread, beside the writing; else at
     * once. Either way in the order of the reads, and once for each read.
     */
    @FunctionalInterface
    public interface RegionReads {
        /** {@code bytes}, from position to limit, were read from {@code file} at {@code offset}; not to be changed. */
        void read(Path file, long offset, ByteBuffer bytes) throws IOException;
    }

    /** A tensor's bytes to write, made from its bytes as stored, which it must leave as they are (they are read-only). */
    @FunctionalInterface
    public interface RegionTransform {
        ByteBuffer apply(ByteBuffer stored) throws IOException;
    }

    /** Bytes of another file, copied through a buffer as the file is written, or changed by {@code transform}. */
    private record FileRegion(Path file, long offset, RegionTransform transform) {}

    private record Entry(String name, DType dtype, long[] shape, long byteSize, float[] floats, byte[] raw,
                         FloatSource lazy, FileRegion region, ByteSource lazyBytes, FloatRuns runs) {}

    /** Tells {@code observer} of every read {@link #addFileRegion}'s tensors make as the file is written. */
    public SafetensorsWriter onRegionRead(RegionReads observer) {
        this.regionReads = Objects.requireNonNull(observer, "observer");
        return this;
    }

    /** Adds a {@code __metadata__} entry, replacing any earlier value of {@code key}. */
    public SafetensorsWriter putMetadata(String key, String value) {
        metadata.put(requireEncodable(key, "metadata key"), requireEncodable(value, "metadata value"));
        return this;
    }

    /**
     * Adds a float tensor to be stored as {@code dtype}, one of F32, F16 or BF16; F16 and BF16 round
     * to nearest even.
     */
    public SafetensorsWriter add(String name, float[] values, DType dtype, long... shape) {
        requireFloatType(name, dtype);
        long numel = checkedNumel(name, shape);
        if (numel != values.length) {
            throw new IllegalArgumentException("tensor '" + name + "': shape " + Arrays.toString(shape) + " holds "
                    + numel + " elements but " + values.length + " were given");
        }
        return put(new Entry(name, dtype, shape.clone(), numel * dtype.byteSize(), values, null, null, null, null, null));
    }

    /**
     * Adds a float tensor (F32, F16 or BF16) whose values {@code source} produces only when the file is
     * written; they must be as many as {@code shape} holds. The array is dropped once written.
     */
    public SafetensorsWriter addLazy(String name, DType dtype, FloatSource source, long... shape) {
        requireFloatType(name, dtype);
        long numel = checkedNumel(name, shape);
        return put(new Entry(name, dtype, shape.clone(), numel * dtype.byteSize(), null, null,
                Objects.requireNonNull(source, "source"), null, null, null));
    }

    /**
     * Adds a tensor of any dtype whose little-endian bytes lie in {@code file} from {@code offset}: they are
     * read through a small buffer as the file is written, so they never become resident in this process
     * (as a mapping's pages would).
     */
    public SafetensorsWriter addFileRegion(String name, DType dtype, Path file, long offset, long... shape) {
        long bytes = Math.multiplyExact(checkedNumel(name, shape), dtype.byteSize());
        return put(new Entry(name, dtype, shape.clone(), bytes, null, null, null, new FileRegion(file, offset, null), null,
                null));
    }

    /**
     * Adds a tensor whose bytes are made by {@code transform} from those of {@code file} at {@code offset} (as many as
     * {@code shape} of {@code dtype} holds, at most {@value #MAX_TRANSFORMED_BYTES}): read whole into a direct buffer of
     * the writer's, told to the {@link #onRegionRead} observer as {@link #addFileRegion}'s reads are, and transformed.
     * The bytes it returns are copied out before the next tensor is produced, so it may hand out the same buffer every
     * time.
     */
    public SafetensorsWriter addFileRegion(String name, DType dtype, Path file, long offset, RegionTransform transform,
                                           long... shape) {
        long bytes = Math.multiplyExact(checkedNumel(name, shape), dtype.byteSize());
        if (bytes > MAX_TRANSFORMED_BYTES) {
            throw new IllegalArgumentException("tensor '" + name + "': " + bytes + " bytes are more than a transformed"
                    + " region may hold (" + MAX_TRANSFORMED_BYTES + ")");
        }
        return put(new Entry(name, dtype, shape.clone(), bytes, null, null, null,
                new FileRegion(file, offset, Objects.requireNonNull(transform, "transform")), null, null));
    }

    /**
     * Adds a tensor of any dtype whose little-endian bytes {@code source} produces only when the file is written
     * (as many as {@code shape} of {@code dtype} holds); they are copied out before the next tensor is produced,
     * so a source may hand out the same buffer every time.
     */
    public SafetensorsWriter addLazyBytes(String name, DType dtype, ByteSource source, long... shape) {
        long bytes = Math.multiplyExact(checkedNumel(name, shape), dtype.byteSize());
        return put(new Entry(name, dtype, shape.clone(), bytes, null, null, null, null,
                Objects.requireNonNull(source, "source"), null));
    }

    /**
     * Adds a float tensor (F32, F16 or BF16) whose values {@code runs} produces a few MiB at a time as the file is
     * written, so that writing it holds one run, however large the tensor.
     */
    public SafetensorsWriter addRuns(String name, DType dtype, FloatRuns runs, long... shape) {
        requireFloatType(name, dtype);
        long numel = checkedNumel(name, shape);
        return put(new Entry(name, dtype, shape.clone(), numel * dtype.byteSize(), null, null, null, null, null,
                Objects.requireNonNull(runs, "runs")));
    }

    private static void requireFloatType(String name, DType dtype) {
        if (dtype != DType.F32 && dtype != DType.F16 && dtype != DType.BF16) {
            throw new IllegalArgumentException("tensor '" + name + "': float data is stored as F32, F16 or BF16, not " + dtype);
        }
    }

    /** Adds a tensor of any dtype given as its little-endian bytes. */
    public SafetensorsWriter addRaw(String name, DType dtype, byte[] littleEndianBytes, long... shape) {
        long bytes = Math.multiplyExact(checkedNumel(name, shape), dtype.byteSize());
        if (bytes != littleEndianBytes.length) {
            throw new IllegalArgumentException("tensor '" + name + "': shape " + Arrays.toString(shape) + " of " + dtype
                    + " needs " + bytes + " bytes but " + littleEndianBytes.length + " were given");
        }
        return put(new Entry(name, dtype, shape.clone(), bytes, null, littleEndianBytes, null, null, null, null));
    }

    private SafetensorsWriter put(Entry entry) {
        requireEncodable(entry.name, "tensor name");
        if (entry.name.equals(SafetensorsHeader.METADATA_KEY)) {
            throw new IllegalArgumentException("'" + SafetensorsHeader.METADATA_KEY + "' is reserved for metadata");
        }
        if (entries.putIfAbsent(entry.name, entry) != null) {
            throw new IllegalArgumentException("tensor '" + entry.name + "' added twice");
        }
        return this;
    }

    /** A lone surrogate has no UTF-8 form; the header would silently get '?' in its place. */
    private static String requireEncodable(String text, String what) {
        Objects.requireNonNull(text, what);
        if (!StandardCharsets.UTF_8.newEncoder().canEncode(text)) {
            throw new IllegalArgumentException(what + " '" + text + "' is not valid Unicode (unpaired surrogate)");
        }
        return text;
    }

    private static long checkedNumel(String name, long[] shape) {
        long numel = 1;
        for (long dim : shape) {
            if (dim < 0) {
                throw new IllegalArgumentException("tensor '" + name + "': negative dimension in " + Arrays.toString(shape));
            }
            numel = Math.multiplyExact(numel, dim);
        }
        return numel;
    }

    /** Total bytes of tensor data added so far. */
    public long dataBytes() {
        return entries.values().stream().mapToLong(Entry::byteSize).sum();
    }

    /** Atomically writes (or replaces) {@code file}. */
    public void write(Path file) throws IOException {
        AtomicFiles.write(file, this::writeTo);
    }

    /** Streams the file's bytes to {@code channel}. */
    public void writeTo(WritableByteChannel channel) throws IOException {
        writeFile(channel, metadata, new ArrayList<>(entries.values()), regionReads);
    }

    /**
     * Writes a checkpoint into {@code directory} the way transformers' {@code save_pretrained}
     * does: tensors, in the order added, fill shards of at most {@code maxShardBytes} of data
     * (a larger tensor gets a shard of its own), named {@code model-00001-of-00003.safetensors},
     * plus {@value #INDEX_FILE}; when everything fits in one shard, a single {@value #SINGLE_FILE}
     * and no index. The index is written last, so a reader never finds it naming a missing shard.
     * Checkpoint files of an earlier save that this one does not overwrite are then deleted, since
     * a stale {@value #SINGLE_FILE} would take precedence over the new index.
     */
    public void writeSharded(Path directory, long maxShardBytes) throws IOException {
        if (maxShardBytes <= 0) {
            throw new IllegalArgumentException("maxShardBytes must be positive");
        }
        List<List<Entry>> shards = new ArrayList<>();
        List<Entry> current = new ArrayList<>();
        long currentBytes = 0;
        for (Entry entry : entries.values()) {
            if (!current.isEmpty() && currentBytes + entry.byteSize > maxShardBytes) {
                shards.add(current);
                current = new ArrayList<>();
                currentBytes = 0;
            }
            current.add(entry);
            currentBytes += entry.byteSize;
        }
        shards.add(current);

        Files.createDirectories(directory);
        Set<String> written = new HashSet<>();
        if (shards.size() == 1) {
            write(directory.resolve(SINGLE_FILE));
            written.add(SINGLE_FILE);
        } else {
            var factory = JsonNodeFactory.instance;
            ObjectNode weightMap = factory.objectNode();
            for (int i = 0; i < shards.size(); i++) {
                String fileName = String.format("model-%05d-of-%05d.safetensors", i + 1, shards.size());
                List<Entry> shard = shards.get(i);
                AtomicFiles.write(directory.resolve(fileName), channel -> writeFile(channel, metadata, new ArrayList<>(shard), regionReads));
                shard.forEach(entry -> weightMap.put(entry.name, fileName));
                written.add(fileName);
            }
            ObjectNode index = factory.objectNode();
            index.putObject("metadata").put("total_size", dataBytes());
            index.set("weight_map", weightMap);
            AtomicFiles.write(directory.resolve(INDEX_FILE),
                    (PythonJson.dumps(index) + "\n").getBytes(StandardCharsets.UTF_8));
            written.add(INDEX_FILE);
        }
        deleteStaleCheckpointFiles(directory, written);
    }

    private static void deleteStaleCheckpointFiles(Path directory, Set<String> keep) throws IOException {
        List<Path> stale;
        try (Stream<Path> files = Files.list(directory)) {
            stale = files.filter(file -> {
                String name = file.getFileName().toString();
                return CHECKPOINT_FILE.matcher(name).matches() && !keep.contains(name);
            }).toList();
        }
        for (Path file : stale) {
            Files.deleteIfExists(file);
        }
    }

    private static void writeFile(WritableByteChannel channel, Map<String, String> metadata, List<Entry> tensors,
                                  RegionReads regionReads) throws IOException {
        tensors.sort(REFERENCE_LAYOUT);
        byte[] header = header(metadata, tensors);
        Output out = new Output(channel);
        ReadBuffers readBuffers = new ReadBuffers();
        out.buffer.putLong(header.length);
        out.put(header);
        for (Entry tensor : tensors) {
            if (tensor.raw != null) {
                out.put(tensor.raw);
            } else if (tensor.region != null && tensor.region.transform() != null) {
                transformRegion(tensor, out, regionReads, readBuffers);
            } else if (tensor.region != null) {
                copyRegion(tensor, out, regionReads);
            } else if (tensor.lazyBytes != null) {
                ByteBuffer bytes = tensor.lazyBytes.bytes();
                if (bytes.remaining() != tensor.byteSize) {
                    throw new IllegalStateException("tensor '" + tensor.name + "': " + bytes.remaining() + " bytes produced, "
                            + tensor.byteSize + " declared");
                }
                out.put(bytes);
            } else if (tensor.runs != null) {
                putRuns(tensor, out);
            } else {
                float[] values = tensor.lazy != null ? tensor.lazy.values() : tensor.floats;
                if ((long) values.length * tensor.dtype.byteSize() != tensor.byteSize) {
                    throw new IllegalStateException("tensor '" + tensor.name + "': " + values.length + " values produced, "
                            + tensor.byteSize / tensor.dtype.byteSize() + " declared");
                }
                putFloats(tensor.dtype, values, values.length, out);
            }
        }
        out.finish();
    }

    /**
     * The buffer being filled and where it goes when full: to a {@link DigestingChannel} the buffer itself is
     * handed over (and a free one taken), to any other channel it is written and reused.
     */
    private static final class Output {
        private final WritableByteChannel channel;
        private final DigestingChannel pipeline;
        /** What reads the bytes of {@link #buffer} (or bytes read with them) once it is handed over. */
        private final List<DigestingChannel.BufferReader> readers = new ArrayList<>();
        ByteBuffer buffer;

        Output(WritableByteChannel channel) throws IOException {
            this.channel = channel;
            this.pipeline = channel instanceof DigestingChannel digesting ? digesting : null;
            this.buffer = (pipeline != null ? pipeline.emptyBuffer() : ByteBuffer.allocate(CHUNK_BYTES))
                    .order(ByteOrder.LITTLE_ENDIAN);
        }

        void put(byte[] bytes) throws IOException {
            put(ByteBuffer.wrap(bytes));
        }

        /** Whether readers wait for the buffer now being filled to be handed over. */
        boolean readersPending() {
            return !readers.isEmpty();
        }

        /**
         * Runs {@code reader} on the pipeline's reading thread once the buffer now being filled is handed over (it
         * may read bytes put into it so far, which stay as they are until then), or at once without a pipeline.
         */
        void readAlong(DigestingChannel.BufferReader reader) throws IOException {
            if (pipeline != null) {
                readers.add(reader);
            } else {
                reader.read();
            }
        }

        void put(ByteBuffer bytes) throws IOException {
            while (bytes.hasRemaining()) {
                int n = Math.min(buffer.remaining(), bytes.remaining());
                buffer.put(bytes.slice(bytes.position(), n));
                bytes.position(bytes.position() + n);
                if (!buffer.hasRemaining()) {
                    drain();
                }
            }
        }

        /** Sends the bytes in the buffer on; the buffer is empty afterwards. */
        void drain() throws IOException {
            if (pipeline != null) {
                pipeline.handOff(buffer, readers);
                readers.clear();
                buffer = pipeline.emptyBuffer().order(ByteOrder.LITTLE_ENDIAN);
            } else {
                buffer.flip();
                while (buffer.hasRemaining()) {
                    channel.write(buffer);
                }
                buffer.clear();
            }
        }

        /** Sends the last bytes on. */
        void finish() throws IOException {
            if (pipeline != null) {
                pipeline.handOff(buffer, readers);
                readers.clear();
                buffer = null;
            } else {
                drain();
            }
        }
    }

    private static void copyRegion(Entry tensor, Output out, RegionReads regionReads) throws IOException {
        try (FileChannel source = FileChannel.open(tensor.region.file(), StandardOpenOption.READ)) {
            long position = tensor.region.offset();
            long end = position + tensor.byteSize;
            if (source.size() < end) {
                throw new IOException(tensor.region.file() + ": ends before tensor '" + tensor.name + "' does");
            }
            while (position < end) {
                ByteBuffer buffer = out.buffer;
                int limit = (int) Math.min(buffer.remaining(), end - position);
                ByteBuffer slice = buffer.slice(buffer.position(), limit);
                int read = source.read(slice, position);
                if (read < 0) {
                    throw new IOException(tensor.region.file() + ": ends before tensor '" + tensor.name + "' does");
                }
                ByteBuffer bytesRead = slice.flip();
                long readAt = position;
                out.readAlong(() -> regionReads.read(tensor.region.file(), readAt, bytesRead));
                buffer.position(buffer.position() + read);
                position += read;
                if (!buffer.hasRemaining()) {
                    out.drain();
                }
            }
        }
    }

    /**
     * Reads a tensor whole into a buffer that stays as read until the region observer has been told of it (on the
     * pipeline's reading thread), and puts what {@code transform} makes of it.
     */
    private static void transformRegion(Entry tensor, Output out, RegionReads regionReads, ReadBuffers readBuffers)
            throws IOException {
        FileRegion region = tensor.region;
        // waiting for a buffer is safe only when every reader that will release one is on its way through the pipeline
        ByteBuffer stored = readBuffers.take((int) tensor.byteSize, out.pipeline != null && !out.readersPending());
        try (FileChannel source = FileChannel.open(region.file(), StandardOpenOption.READ)) {
            while (stored.hasRemaining()) {
                if (source.read(stored, region.offset() + stored.position()) < 0) {
                    throw new IOException(region.file() + ": ends before tensor '" + tensor.name + "' does");
                }
            }
        }
        ByteBuffer bytesRead = stored.flip().asReadOnlyBuffer();
        out.readAlong(() -> {
            try {
                regionReads.read(region.file(), region.offset(), bytesRead.duplicate());
            } finally {
                readBuffers.release(stored);
            }
        });
        ByteBuffer bytes = region.transform().apply(bytesRead.duplicate());
        if (bytes.remaining() != tensor.byteSize) {
            throw new IllegalStateException("tensor '" + tensor.name + "': " + bytes.remaining() + " bytes produced, "
                    + tensor.byteSize + " declared");
        }
        out.put(bytes);
    }

    /**
     * Direct buffers for whole tensors read by {@link #transformRegion}, each reused once the observer has been told
     * of its bytes: {@value #IN_FLIGHT} of them, one read while the observer reads the other, unless the caller may
     * not wait (then one more is allocated; allocating one per tensor cost more CPU than the merge's writes).
     */
    private static final class ReadBuffers {
        private static final int IN_FLIGHT = 2;

        private final BlockingQueue<ByteBuffer> released = new LinkedBlockingQueue<>();
        /** Buffers taken and not yet released. */
        private int outstanding;

        /** A buffer with {@code bytes} to fill (position 0, limit {@code bytes}). */
        ByteBuffer take(int bytes, boolean mayWait) throws IOException {
            while (true) {
                ByteBuffer buffer = released.poll();
                if (buffer == null && mayWait && outstanding >= IN_FLIGHT) {
                    try {
                        buffer = released.take();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        throw new InterruptedIOException("interrupted while waiting for a read buffer");
                    }
                }
                if (buffer == null) {
                    outstanding++;
                    return ByteBuffer.allocateDirect(bytes);
                }
                if (buffer.capacity() >= bytes) {
                    return buffer.clear().limit(bytes);
                }
                outstanding--; // too small for this tensor: dropped
            }
        }

        void release(ByteBuffer buffer) {
            released.add(buffer);
        }
    }

    private static void putRuns(Entry tensor, Output out) throws IOException {
        long numel = tensor.byteSize / tensor.dtype.byteSize();
        float[] run = new float[(int) Math.min(numel, CHUNK_BYTES / Float.BYTES)];
        for (long start = 0; start < numel; start += run.length) {
            int count = (int) Math.min(run.length, numel - start);
            tensor.runs.fill(start, run, count);
            putFloats(tensor.dtype, run, count, out);
        }
    }

    /** Stores {@code values[0, count)} as {@code dtype}. */
    private static void putFloats(DType dtype, float[] values, int count, Output out) throws IOException {
        int index = 0;
        short[] halves = dtype == DType.BF16 ? new short[Math.min(count, CHUNK_BYTES / Short.BYTES)] : null;
        while (index < count) {
            if (out.buffer.remaining() < Float.BYTES) {
                out.drain();
            }
            ByteBuffer buffer = out.buffer;
            int n = Math.min(count - index, buffer.remaining() / dtype.byteSize());
            switch (dtype) {
                case F32 -> {
                    FloatBuffer floats = buffer.asFloatBuffer();
                    floats.put(values, index, n);
                    buffer.position(buffer.position() + n * Float.BYTES);
                }
                case F16 -> {
                    for (int i = index; i < index + n; i++) {
                        buffer.putShort(HalfFloats.toF16(values[i]));
                    }
                }
                case BF16 -> {
                    // converted a vector at a time into a scratch array, then copied into the buffer in one go
                    HalfFloats.toBf16(values, index, halves, 0, n);
                    buffer.asShortBuffer().put(halves, 0, n);
                    buffer.position(buffer.position() + n * Short.BYTES);
                }
                default -> throw new AssertionError(dtype);
            }
            index += n;
        }
    }

    /** serde_json's compact rendering of the header, padded with spaces to a multiple of 8 bytes. */
    private static byte[] header(Map<String, String> metadata, List<Entry> tensors) {
        var json = new StringBuilder("{");
        if (!metadata.isEmpty()) {
            appendString(json, SafetensorsHeader.METADATA_KEY);
            json.append(":{");
            String separator = "";
            for (Map.Entry<String, String> entry : metadata.entrySet()) {
                json.append(separator);
                appendString(json, entry.getKey());
                json.append(':');
                appendString(json, entry.getValue());
                separator = ",";
            }
            json.append('}');
        }
        long offset = 0;
        for (Entry tensor : tensors) {
            if (json.length() > 1) {
                json.append(',');
            }
            appendString(json, tensor.name);
            json.append(":{\"dtype\":\"").append(tensor.dtype.name()).append("\",\"shape\":[");
            for (int i = 0; i < tensor.shape.length; i++) {
                json.append(i == 0 ? "" : ",").append(tensor.shape[i]);
            }
            json.append("],\"data_offsets\":[").append(offset).append(',').append(offset + tensor.byteSize).append("]}");
            offset += tensor.byteSize;
        }
        json.append('}');
        byte[] utf8 = json.toString().getBytes(StandardCharsets.UTF_8);
        int padded = (utf8.length + 7) & ~7;
        byte[] header = Arrays.copyOf(utf8, padded);
        Arrays.fill(header, utf8.length, padded, (byte) ' ');
        return header;
    }

    /** serde_json escapes quotes, backslashes and control characters, and writes the rest as UTF-8. */
    private static void appendString(StringBuilder json, String text) {
        json.append('"');
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            switch (c) {
                case '"' -> json.append("\\\"");
                case '\\' -> json.append("\\\\");
                case '\n' -> json.append("\\n");
                case '\r' -> json.append("\\r");
                case '\t' -> json.append("\\t");
                case '\b' -> json.append("\\b");
                case '\f' -> json.append("\\f");
                default -> {
                    if (c < 0x20) {
                        json.append(String.format("\\u%04x", (int) c));
                    } else {
                        json.append(c);
                    }
                }
            }
        }
        json.append('"');
    }
}
