package dev.loraflow.inference;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import dev.loraflow.onnx.GraphNames;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.Map;

/**
 * The KV cache of rows decoded together, in native memory the engine owns: per layer a key and a value
 * tensor [rows, kvHeads, length, headDim], row after row, each row's tokens in its last slots (left padding
 * before them, masked). Each tensor has two buffers taking turns: a run reads past.* from one and ONNX
 * Runtime writes present.* [rows, kvHeads, length + new, headDim] straight into the other (pinned outputs),
 * so nothing is copied between steps. A row leaving is replaced by the last row; a row joining is written
 * after the last: only those rows are copied. All rows are copied only to re-lay them out: when a joining
 * row is longer than {@link #length()}, or when padding fills most of it ({@link #compact}).
 *
 * <p>Buffers grow (doubling) and are kept while the cache is, so a steady batch allocates nothing. They come from
 * {@code malloc}, not {@link java.nio.ByteBuffer#allocateDirect}, which zeroes every byte at once: a batch of 16 rows
 * of GPT-2 small growing to 273 slots then zeroed 1.3 GB of doubled capacity in one step, stalling every running
 * generation (seconds on a busy machine, measured in docs/serving.md). Untouched capacity costs no memory; only
 * what is written is. Slots nothing has written yet are never read: ONNX Runtime writes every slot of present.*,
 * and a row copied in zeroes its left padding (masked, but weighted by 0 in softmax × values, where 0 × NaN would
 * be NaN). Freed when the buffer is no longer reachable, as a direct buffer is.
 */
final class BatchCache {

    private static final MethodHandle MALLOC = Linker.nativeLinker().downcallHandle(
            Linker.nativeLinker().defaultLookup().find("malloc").orElseThrow(),
            FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.JAVA_LONG));
    private static final MethodHandle FREE = Linker.nativeLinker().downcallHandle(
            Linker.nativeLinker().defaultLookup().find("free").orElseThrow(), FunctionDescriptor.ofVoid(ValueLayout.ADDRESS));

    /** Below this length, padding is not worth a re-layout. */
    private static final int MIN_COMPACT_LENGTH = 32;

    private final int tensors;
    private final int heads;
    private final int headDim;
    private FloatBuffer[] front;
    private FloatBuffer[] back;
    private int rows;
    private int length;

    BatchCache(int layers, int heads, int headDim) {
        this.tensors = 2 * layers;
        this.heads = heads;
        this.headDim = headDim;
        this.front = new FloatBuffer[tensors];
        this.back = new FloatBuffer[tensors];
    }

    int rows() {
        return rows;
    }

    /** Slots per row: the longest row's tokens and the others' padding. */
    int length() {
        return length;
    }

    /** Drops every row; the buffers stay for the next use. */
    void clear() {
        reset(0);
    }

    /** {@code rows} empty rows, to be filled by a run (a prefill); the buffers stay. */
    void reset(int rows) {
        this.rows = rows;
        this.length = 0;
    }

    /** Floats of one row of one tensor at {@code slots} slots. */
    private long rowSize(int slots) {
        return (long) heads * slots * headDim;
    }

    /**
     * Adds past.* [rows, kvHeads, length, headDim] to {@code inputs} and present.* with {@code added} more
     * slots to {@code outputs}, as tensors over the buffers; the caller closes them after the run.
     */
    void bind(OrtEnvironment env, int added, Map<String, OnnxTensor> inputs, Map<String, OnnxTensor> outputs)
            throws OrtException {
        ensure(rows * rowSize(length + added), true);
        long[] pastShape = {rows, heads, length, headDim};
        long[] presentShape = {rows, heads, length + added, headDim};
        for (int i = 0; i < tensors; i++) {
            int layer = i / 2;
            boolean key = i % 2 == 0;
            inputs.put(key ? GraphNames.pastKey(layer) : GraphNames.pastValue(layer), view(env, front[i], pastShape));
            outputs.put(key ? GraphNames.presentKey(layer) : GraphNames.presentValue(layer), view(env, back[i], presentShape));
        }
    }

    /** After a run bound with {@link #bind}: the present buffers become the past. */
    void advance(int added) {
        FloatBuffer[] swap = front;
        front = back;
        back = swap;
        length += added;
    }

    private static OnnxTensor view(OrtEnvironment env, FloatBuffer buffer, long[] shape) throws OrtException {
        long elements = shape[0] * shape[1] * shape[2] * shape[3];
        if (elements == 0) {
            // ONNX Runtime wants memory behind a tensor; an empty one has none to share.
            return OnnxTensor.createTensor(env, FloatBuffer.allocate(0), shape);
        }
        return OnnxTensor.createTensor(env, buffer.slice(0, Math.toIntExact(elements)), shape);
    }

    /** Both buffers of every tensor hold at least {@code floats}; {@code keepFront}: the front's rows are kept. */
    private void ensure(long floats, boolean keepFront) {
        if (floats > Integer.MAX_VALUE) {
            throw new IllegalStateException("a KV cache tensor of " + floats + " floats is beyond one buffer");
        }
        for (int i = 0; i < tensors; i++) {
            if (front[i] == null || front[i].capacity() < floats) {
                FloatBuffer grown = allocate(grow(front[i], floats));
                if (keepFront && front[i] != null) {
                    grown.put(0, front[i], 0, Math.toIntExact(rows * rowSize(length)));
                }
                front[i] = grown;
            }
            if (back[i] == null || back[i].capacity() < floats) {
                back[i] = allocate(grow(back[i], floats));
            }
        }
    }

    private static int grow(FloatBuffer buffer, long floats) {
        long doubled = buffer == null ? floats : Math.max(floats, 2L * buffer.capacity());
        return Math.toIntExact(Math.min(doubled, Integer.MAX_VALUE));
    }

    private static FloatBuffer allocate(int floats) {
        long bytes = Math.multiplyExact(floats, Float.BYTES);
        MemorySegment memory;
        try {
            memory = (MemorySegment) MALLOC.invokeExact(bytes);
        } catch (Throwable e) {
            throw new IllegalStateException("malloc of the KV cache failed", e);
        }
        if (memory.equals(MemorySegment.NULL)) {
            throw new OutOfMemoryError("no native memory for " + bytes + " bytes of KV cache");
        }
        return memory.reinterpret(bytes, Arena.ofAuto(), BatchCache::free).asByteBuffer().order(ByteOrder.nativeOrder())
                .asFloatBuffer();
    }

    private static void free(MemorySegment memory) {
        try {
            FREE.invokeExact(memory);
        } catch (Throwable e) {
            throw new IllegalStateException("free of the KV cache failed", e);
        }
    }

    /**
     * Appends {@code source}'s row {@code row} (its last {@code tokens} slots) as a new last row; re-lays the
     * rows out first if it is longer than {@link #length()}.
     *
     * @param fed each present row's tokens, for a re-layout
     */
    void append(BatchCache source, int row, int tokens, int[] fed) {
        if (tokens > length) {
            relayout(tokens, fed);
        }
        ensure((rows + 1) * rowSize(length + 1), true);
        for (int i = 0; i < tensors; i++) {
            copyRow(source.front[i], source.length, row, front[i], length, rows, tokens);
        }
        rows++;
    }

    /** Removes row {@code row}: the last row takes its place (the caller moves its sequence likewise). */
    void remove(int row) {
        int last = rows - 1;
        if (row != last) {
            int size = Math.toIntExact(rowSize(length));
            for (int i = 0; i < tensors; i++) {
                front[i].put(row * size, front[i], last * size, size);
            }
        }
        rows--;
        if (rows == 0) {
            length = 0;
        }
    }

    /** Re-lays the rows out to the longest one's tokens when padding fills more than half of each row. */
    void compact(int[] fed) {
        int longest = 0;
        for (int b = 0; b < rows; b++) {
            longest = Math.max(longest, fed[b]);
        }
        if (length >= MIN_COMPACT_LENGTH && longest < length / 2) {
            relayout(longest, fed);
        }
    }

    /** Every row's last fed[b] slots into rows of {@code newLength} slots. */
    private void relayout(int newLength, int[] fed) {
        ensure(rows * rowSize(Math.max(newLength, length) + 1), true);
        for (int i = 0; i < tensors; i++) {
            for (int b = 0; b < rows; b++) {
                copyRow(front[i], length, b, back[i], newLength, b, fed[b]);
            }
        }
        FloatBuffer[] swap = front;
        front = back;
        back = swap;
        length = newLength;
    }

    /**
     * The last {@code tokens} slots of each head of row {@code from} into the last slots of row {@code to}, the
     * slots before them (padding) zeroed.
     */
    private void copyRow(FloatBuffer source, int sourceLength, int from, FloatBuffer target, int targetLength, int to,
                         int tokens) {
        int span = tokens * headDim;
        int padding = (targetLength - tokens) * headDim;
        for (int h = 0; h < heads; h++) {
            int sourceOffset = ((from * heads + h) * sourceLength + sourceLength - tokens) * headDim;
            int rowStart = (to * heads + h) * targetLength * headDim;
            MemorySegment.ofBuffer(target).asSlice((long) rowStart * Float.BYTES, (long) padding * Float.BYTES).fill((byte) 0);
            target.put(rowStart + padding, source, sourceOffset, span);
        }
    }
}
