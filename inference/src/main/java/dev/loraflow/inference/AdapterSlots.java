package dev.loraflow.inference;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import dev.loraflow.onnx.FloatTensor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The stacked LoRA inputs of an un-merged model's runs: per adapted module, A [slots, r, in], B [slots,
 * out, r] and scaling [slots, 1, 1] in native memory, r the largest rank loaded into a slot (smaller ranks
 * zero-padded, which changes no product), and each row's slot fed as {@code lora.slot}, so that the graph
 * gathers every row's own adapter (see dev.loraflow.onnx's package description). An adapter is written into
 * a slot when a sequence using it joins and it is in none, replacing the least recently used adapter no
 * sequence of the batch uses; with one slot per sequence of a full batch, one is always free. A step then
 * costs the same whether its rows use one adapter or as many as it has rows.
 */
final class AdapterSlots {

    private static final String A = ".A";
    private static final String B = ".B";
    private static final String SCALING = ".scaling";

    private final OrtEnvironment env;
    /** "lora.<PEFT module path>" of each adapted module. */
    private final List<String> modules;
    private final int[] in;
    private final int[] out;
    private final int[] rank;
    private final FloatBuffer[] a;
    private final FloatBuffer[] b;
    private final FloatBuffer[] scaling;
    /** Each slot's adapter feeds ({@link ServedModel#adapterFeeds}), null while empty. */
    private final Map<String, FloatTensor>[] occupants;
    private final long[] lastUse;
    private final Map<Map<String, FloatTensor>, Integer> slotOf = new IdentityHashMap<>();
    private long clock;
    /** The inputs over the buffers; null after they were re-allocated, until asked for again. */
    private Map<String, OnnxTensor> tensors;

    @SuppressWarnings("unchecked")
    AdapterSlots(OrtEnvironment env, ServedModel model, int slots) {
        this.env = env;
        this.modules = model.loraInputs().stream().filter(input -> input.endsWith(A))
                .map(input -> input.substring(0, input.length() - A.length())).toList();
        Map<String, FloatTensor> base = model.adapterFeeds(null);
        int count = modules.size();
        this.in = new int[count];
        this.out = new int[count];
        this.rank = new int[count];
        this.a = new FloatBuffer[count];
        this.b = new FloatBuffer[count];
        this.scaling = new FloatBuffer[count];
        for (int m = 0; m < count; m++) {
            in[m] = Math.toIntExact(base.get(modules.get(m) + A).shape()[2]);
            out[m] = Math.toIntExact(base.get(modules.get(m) + B).shape()[1]);
            a[m] = allocate(0);
            b[m] = allocate(0);
            scaling[m] = allocate(slots);
        }
        this.occupants = new Map[slots];
        this.lastUse = new long[slots];
    }

    /**
     * The slot holding {@code adapter}, written into one now if none does.
     *
     * @param inUse the slots of the sequences in the batch, which must stay
     * @throws IllegalStateException if every slot is in use (more sequences than slots)
     */
    int assign(Map<String, FloatTensor> adapter, Set<Integer> inUse) {
        clock++;
        Integer held = slotOf.get(adapter);
        if (held != null) {
            lastUse[held] = clock;
            return held;
        }
        int slot = -1;
        for (int s = 0; s < occupants.length; s++) {
            if (!inUse.contains(s) && (slot < 0 || lastUse[s] < lastUse[slot])) {
                slot = s;
            }
        }
        if (slot < 0) {
            throw new IllegalStateException("all " + occupants.length + " adapter slots are in use");
        }
        if (occupants[slot] != null) {
            slotOf.remove(occupants[slot]);
        }
        occupants[slot] = adapter;
        slotOf.put(adapter, slot);
        lastUse[slot] = clock;
        for (int m = 0; m < modules.size(); m++) {
            int r = Math.toIntExact(adapter.get(modules.get(m) + A).shape()[1]);
            if (r > rank[m]) {
                widen(m, r);
            } else {
                write(m, slot);
            }
        }
        return slot;
    }

    /** Re-allocates module m's A and B for rank r and writes every slot's adapter into them again. */
    private void widen(int m, int r) {
        rank[m] = r;
        a[m] = allocate(occupants.length * r * in[m]);
        b[m] = allocate(occupants.length * out[m] * r);
        for (int s = 0; s < occupants.length; s++) {
            if (occupants[s] != null) {
                write(m, s);
            }
        }
        closeTensors();
    }

    /** Slot s's adapter's A, B and scaling of module m, zero beyond its rank. */
    private void write(int m, int slot) {
        Map<String, FloatTensor> adapter = occupants[slot];
        String module = modules.get(m);
        float[] ownA = adapter.get(module + A).values();
        float[] ownB = adapter.get(module + B).values();
        int r = ownA.length / in[m];
        int width = rank[m];
        int aOffset = slot * width * in[m];
        a[m].put(aOffset, ownA);
        a[m].put(aOffset + ownA.length, new float[(width - r) * in[m]]);
        float[] rowB = new float[width];
        for (int o = 0; o < out[m]; o++) {
            System.arraycopy(ownB, o * r, rowB, 0, r);
            b[m].put((slot * out[m] + o) * width, rowB);
        }
        scaling[m].put(slot, adapter.get(module + SCALING).values()[0]);
    }

    /** The stacked A, B and scaling inputs, valid until the next {@link #assign}; this object closes them. */
    Map<String, OnnxTensor> tensors() throws OrtException {
        if (tensors == null) {
            Map<String, OnnxTensor> made = new HashMap<>();
            try {
                int slots = occupants.length;
                for (int m = 0; m < modules.size(); m++) {
                    String module = modules.get(m);
                    made.put(module + A, tensor(a[m], slots, rank[m], in[m]));
                    made.put(module + B, tensor(b[m], slots, out[m], rank[m]));
                    made.put(module + SCALING, tensor(scaling[m], slots, 1, 1));
                }
            } catch (OrtException | RuntimeException e) {
                made.values().forEach(OnnxTensor::close);
                throw e;
            }
            tensors = made;
        }
        return tensors;
    }

    /** {@code lora.slot} for rows using these slots; the caller closes it. */
    OnnxTensor rows(int[] slots) throws OrtException {
        float[] values = new float[slots.length];
        for (int i = 0; i < slots.length; i++) {
            values[i] = slots[i];
        }
        return OnnxTensor.createTensor(env, FloatBuffer.wrap(values), new long[] {slots.length});
    }

    private OnnxTensor tensor(FloatBuffer buffer, long... shape) throws OrtException {
        long elements = Arrays.stream(shape).reduce(1, Math::multiplyExact);
        // ONNX Runtime wants memory behind a shared tensor; an empty one (rank 0) has none.
        return OnnxTensor.createTensor(env, elements == 0 ? FloatBuffer.allocate(0) : buffer, shape);
    }

    private static FloatBuffer allocate(int floats) {
        return ByteBuffer.allocateDirect(Math.multiplyExact(floats, Float.BYTES)).order(ByteOrder.nativeOrder())
                .asFloatBuffer();
    }

    private void closeTensors() {
        if (tensors != null) {
            tensors.values().forEach(OnnxTensor::close);
            tensors = null;
        }
    }

    void close() {
        closeTensors();
    }
}
