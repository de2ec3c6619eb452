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
 * The KV cache of rows decoded together, in native memory the engine owns: per layer one key and one value
 * buffer [rows, kvHeads, slots, headDim], row after row, each row's tokens in its first slots (right padding
 * after them, never read). A run binds each buffer as both past_key_values.* and present.* (pinned outputs) of
 * the same shape: the graph's GroupQueryAttention sees one buffer and writes each row's new keys and values
 * after its cached ones, in place, so nothing is copied between steps. A row leaving is replaced by the last
 * row; a row joining is written after the last: only those rows are copied. All rows are copied only when the
 * buffers grow (doubling their rows or slots), and kept while the cache is, so a steady batch allocates nothing.
 *
 * <p>The buffers come from {@code malloc}, not {@link java.nio.ByteBuffer#allocateDirect}, which zeroes every byte
 * at once: a batch of 16 rows of GPT-2 small growing to 273 slots then zeroed 1.3 GB of doubled capacity in one
 * step, stalling every running generation (seconds on a busy machine, measured in docs/serving.md). Untouched
 * capacity costs no memory; only what is written is. Slots past a row's tokens hold whatever was there (not
 * zeroed): GroupQueryAttention reads each row's first seqlens_k + 1 slots only. Freed when the buffer is no
 * longer reachable, as a direct buffer is.
 */
final class BatchCache {

    private static final MethodHandle MALLOC = Linker.nativeLinker().downcallHandle(
            Linker.nativeLinker().defaultLookup().find("malloc").orElseThrow(),
            FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.JAVA_LONG));
    private static final MethodHandle FREE = Linker.nativeLinker().downcallHandle(
            Linker.nativeLinker().defaultLookup().find("free").orElseThrow(), FunctionDescriptor.ofVoid(ValueLayout.ADDRESS));

    private final int tensors;
    private final int heads;
    private final int headDim;
    private final FloatBuffer[] buffers;
    private int rows;
    /** Rows the buffers hold. */
    private int rowCapacity;
    /** Slots per row and head. */
    private int slots;

    BatchCache(int layers, int heads, int headDim) {
        this.tensors = 2 * layers;
        this.heads = heads;
        this.headDim = headDim;
        this.buffers = new FloatBuffer[tensors];
    }

    int rows() {
        return rows;
    }

    /** Slots per row: at least the longest row's tokens and those of the last run. */
    int slots() {
        return slots;
    }

    /** Drops every row; the buffers stay for the next use. */
    void clear() {
        rows = 0;
    }

    /** {@code rows} empty rows, to be filled by a run (a prefill); the buffers stay. */
    void reset(int rows) {
        this.rows = rows;
    }

    /**
     * Adds each layer's buffer as past.* to {@code inputs} and as present.* to {@code outputs}, both
     * [rows, kvHeads, slots, headDim] with room for {@code total} tokens per row; the caller closes them after the
     * run, in which ONNX Runtime writes the new tokens' keys and values into the buffers.
     */
    void bind(OrtEnvironment env, int total, Map<String, OnnxTensor> inputs, Map<String, OnnxTensor> outputs)
            throws OrtException {
        ensure(rows, total);
        long[] shape = {rows, heads, slots, headDim};
        int floats = Math.toIntExact(rows * rowSize());
        for (int i = 0; i < tensors; i++) {
            int layer = i / 2;
            boolean key = i % 2 == 0;
            FloatBuffer view = buffers[i].slice(0, floats);
            inputs.put(key ? GraphNames.pastKey(layer) : GraphNames.pastValue(layer), OnnxTensor.createTensor(env, view, shape));
            outputs.put(key ? GraphNames.presentKey(layer) : GraphNames.presentValue(layer),
                    OnnxTensor.createTensor(env, view, shape));
        }
    }

    /** Floats of one row of one tensor. */
    private long rowSize() {
        return (long) heads * slots * headDim;
    }

    /**
     * Appends {@code source}'s row {@code row} (its first {@code tokens} slots) as a new last row, with room for
     * one more token.
     */
    void append(BatchCache source, int row, int tokens) {
        ensure(rows + 1, tokens + 1);
        for (int i = 0; i < tensors; i++) {
            copyRow(source.buffers[i], source.slots, row, buffers[i], slots, rows, tokens);
        }
        rows++;
    }

    /**
     * Removes row {@code row}: the last row, holding {@code lastTokens} tokens, takes its place (the caller moves
     * its sequence likewise).
     */
    void remove(int row, int lastTokens) {
        int last = rows - 1;
        if (row != last) {
            for (int i = 0; i < tensors; i++) {
                copyRow(buffers[i], slots, last, buffers[i], slots, row, lastTokens);
            }
        }
        rows--;
    }

    /** Buffers of at least {@code needRows} rows of {@code needSlots} slots; the present rows are kept. */
    private void ensure(int needRows, int needSlots) {
        if (buffers[0] != null && needRows <= rowCapacity && needSlots <= slots) {
            return;
        }
        int newRows = needRows <= rowCapacity ? rowCapacity : Math.max(needRows, 2 * rowCapacity);
        int newSlots = needSlots <= slots ? slots : Math.max(needSlots, 2 * slots);
        long floats = (long) newRows * heads * newSlots * headDim;
        if (floats > Integer.MAX_VALUE) {
            throw new IllegalStateException("a KV cache tensor of " + floats + " floats is beyond one buffer");
        }
        for (int i = 0; i < tensors; i++) {
            FloatBuffer grown = allocate((int) floats);
            if (buffers[i] != null) {
                // Rows a reset announced beyond the old capacity hold nothing yet.
                for (int b = 0; b < Math.min(rows, rowCapacity); b++) {
                    copyRow(buffers[i], slots, b, grown, newSlots, b, slots);
                }
            }
            buffers[i] = grown;
        }
        rowCapacity = newRows;
        slots = newSlots;
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

    /** The first {@code tokens} slots of each head of row {@code from} into the first slots of row {@code to}. */
    private void copyRow(FloatBuffer source, int sourceSlots, int from, FloatBuffer target, int targetSlots, int to,
                         int tokens) {
        int span = tokens * headDim;
        for (int h = 0; h < heads; h++) {
            target.put((to * heads + h) * targetSlots * headDim, source, (from * heads + h) * sourceSlots * headDim, span);
        }
    }
}
