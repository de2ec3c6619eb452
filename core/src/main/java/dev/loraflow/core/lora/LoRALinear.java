package dev.loraflow.core.lora;

import dev.loraflow.core.kernels.Dropout;
import dev.loraflow.core.kernels.Epilogue;
import dev.loraflow.core.kernels.FrozenMatrix;
import dev.loraflow.core.kernels.Gemm;
import dev.loraflow.core.optim.Parameter;
import dev.loraflow.core.random.Rng;
import java.util.List;
import java.util.Objects;

/**
 * A frozen linear layer with a low-rank adapter: {@code y = x·W0ᵀ + b + s·(drop(x)·Aᵀ)·Bᵀ}.
 *
 * <p>W0 is [out, in], or [in, out] when {@code fanInFanOut} (GPT-2's Conv1D layout); A is [r, in],
 * B is [out, r] either way, as PEFT stores them. A starts kaiming-uniform with a = √5 (U(±1/√in)), B at
 * zero, so a fresh adapter leaves the layer's output unchanged. Only A and B are trainable.
 *
 * <p>W0 is a float32 array, or any {@link FrozenMatrix} (BF16/F16 mapped from the checkpoint, NF4,
 * int8), which the GEMMs widen as they go, so a frozen base never needs a float32 copy.
 *
 * <p>{@link #merge()} folds s·B·A into the weight for inference; {@link #unmerge()} restores the exact
 * bits of W0 from a copy kept while merged, because subtracting the delta back would not round-trip.
 */
public final class LoRALinear {

    private final String name;
    private final int inFeatures;
    private final int outFeatures;
    private final boolean fanInFanOut;
    private final LoraSpec spec;
    private final float scaling;
    /** W0 (or the merged W) as float32, or null while W0 is held as {@link #frozen}. */
    private float[] weight;
    /** W0 when it is not a float32 array; null otherwise. */
    private FrozenMatrix frozen;
    private final float[] bias;
    private final Parameter loraA;
    private final Parameter loraB;
    /** W0's float32 bits while merged (empty when W0 is a frozen matrix), null while unmerged. */
    private float[] unmergedWeight;

    /**
     * @param weight W0, [out, in] or [in, out] when fanInFanOut; used as given (not copied)
     * @param bias   [out] or null
     * @param seed   seeds A's kaiming-uniform initialisation
     */
    public LoRALinear(String name, int inFeatures, int outFeatures, float[] weight, float[] bias,
                      boolean fanInFanOut, LoraSpec spec, long seed) {
        this(name, inFeatures, outFeatures, weight, null, bias, fanInFanOut, spec, seed);
    }

    /**
     * @param weight W0 as a frozen matrix: [out, in], or [in, out] when fanInFanOut
     */
    public LoRALinear(String name, int inFeatures, int outFeatures, FrozenMatrix weight, float[] bias,
                      boolean fanInFanOut, LoraSpec spec, long seed) {
        this(name, inFeatures, outFeatures, null, weight, bias, fanInFanOut, spec, seed);
    }

    /** W0 as whichever of {@code weight} (float32) and {@code frozen} is not null. */
    public static LoRALinear of(String name, int inFeatures, int outFeatures, float[] weight, FrozenMatrix frozen,
                                float[] bias, boolean fanInFanOut, LoraSpec spec, long seed) {
        if ((weight == null) == (frozen == null)) {
            throw new IllegalArgumentException(name + ": give W0 either as a float32 array or as a frozen matrix");
        }
        return new LoRALinear(name, inFeatures, outFeatures, weight, frozen, bias, fanInFanOut, spec, seed);
    }

    private LoRALinear(String name, int inFeatures, int outFeatures, float[] weight, FrozenMatrix frozen, float[] bias,
                       boolean fanInFanOut, LoraSpec spec, long seed) {
        this.name = Objects.requireNonNull(name, "name");
        if (inFeatures <= 0 || outFeatures <= 0) {
            throw new IllegalArgumentException(name + ": features must be positive, got in=" + inFeatures + " out=" + outFeatures);
        }
        String expected = fanInFanOut ? "[" + inFeatures + ", " + outFeatures + "]" : "[" + outFeatures + ", " + inFeatures + "]";
        if (weight != null && weight.length != (long) inFeatures * outFeatures) {
            throw new IllegalArgumentException(name + ": weight has " + weight.length + " elements, expected " + expected);
        }
        if (frozen != null && (frozen.rows() != (fanInFanOut ? inFeatures : outFeatures)
                || frozen.cols() != (fanInFanOut ? outFeatures : inFeatures))) {
            throw new IllegalArgumentException(name + ": weight is [" + frozen.rows() + ", " + frozen.cols() + "], expected "
                    + expected);
        }
        if (bias != null && bias.length != outFeatures) {
            throw new IllegalArgumentException(name + ": bias has " + bias.length + " elements, expected " + outFeatures);
        }
        this.inFeatures = inFeatures;
        this.outFeatures = outFeatures;
        this.weight = weight;
        this.frozen = frozen;
        this.bias = bias;
        this.fanInFanOut = fanInFanOut;
        this.spec = Objects.requireNonNull(spec, "spec");
        this.scaling = spec.scaling();
        int r = spec.rank();
        this.loraA = new Parameter(name + ".lora_A.weight", new float[r * inFeatures]);
        this.loraB = new Parameter(name + ".lora_B.weight", new float[outFeatures * r]);
        Rng rng = new Rng(seed);
        float bound = (float) (1.0 / Math.sqrt(inFeatures));
        float[] a = loraA.value();
        for (int i = 0; i < a.length; i++) {
            a[i] = rng.nextUniform(bound);
        }
    }

    /**
     * Saved forward quantities of one batch, sized once for a maximum row count and reused: a training
     * loop allocates nothing per step.
     */
    public final class Activations {
        private final int maxRows;
        /** drop(x) [rows, in], kept only while dropout is active (A's gradient needs it). */
        private final float[] droppedInput;
        /** u = drop(x)·Aᵀ [rows, r]. */
        private final float[] projected;
        /** s·dy·B, the gradient of u [rows, r]; null in buffers for forward passes alone. */
        private final float[] projectedGrad;
        /** Which elements of x the dropout kept, one bit each. */
        private final long[] dropoutMask;
        private boolean dropoutApplied;

        private LoRALinear owner() {
            return LoRALinear.this;
        }

        private Activations(int maxRows, boolean forBackward) {
            this.maxRows = maxRows;
            int r = spec.rank();
            boolean dropout = forBackward && r > 0 && spec.dropout() > 0f;
            this.droppedInput = dropout ? new float[maxRows * inFeatures] : null;
            this.dropoutMask = dropout ? new long[Dropout.maskWords(maxRows * inFeatures)] : null;
            this.projected = new float[maxRows * r];
            this.projectedGrad = forBackward ? new float[maxRows * r] : null;
        }
    }

    /**
     * Bytes {@link #newActivations}({@code maxRows}) allocates for a module of {@code inFeatures} inputs at {@code rank}
     * with {@code dropout}: what a memory estimate counts before any module exists.
     */
    public static long activationBytes(long maxRows, int inFeatures, int rank, double dropout) {
        long elements = maxRows * inFeatures;
        // the input after dropout, and the mask's bits in whole longs (Dropout.maskWords, for counts beyond an int)
        long dropped = rank > 0 && (float) dropout > 0f ? 4 * elements + 8 * ((elements + 63) >>> 6) : 0;
        return dropped + 2 * forwardActivationBytes(maxRows, rank);
    }

    /** Bytes {@link #newForwardActivations}({@code maxRows}) allocates for a module at {@code rank}. */
    public static long forwardActivationBytes(long maxRows, int rank) {
        return 4 * maxRows * rank;
    }

    /** Buffers for the forward and backward of batches of up to {@code maxRows} rows. */
    public Activations newActivations(int maxRows) {
        return newActivations(maxRows, true);
    }

    /**
     * Buffers for forward passes alone (no dropout, no backward) of up to {@code maxRows} rows: the low-rank projection
     * u, without the input after dropout and the gradient a backward keeps.
     */
    public Activations newForwardActivations(int maxRows) {
        return newActivations(maxRows, false);
    }

    private Activations newActivations(int maxRows, boolean forBackward) {
        if (maxRows <= 0) {
            throw new IllegalArgumentException(name + ": maxRows must be positive, got " + maxRows);
        }
        return new Activations(maxRows, forBackward);
    }

    /**
     * y = x·W0ᵀ + b + s·(drop(x)·Aᵀ)·Bᵀ, or x·Wᵀ + b when merged. x [rows, in], y [rows, out].
     *
     * @param training applies dropout (when the spec has any), keyed by {@code dropoutKey} so that the
     *                 same key reproduces the same mask
     */
    public void forward(float[] x, float[] y, int rows, Activations saved, boolean training, long dropoutKey) {
        checkRows(rows, saved, x.length, y.length);
        saved.dropoutApplied = false;
        if (spec.rank() == 0 || isMerged()) {
            baseForward(x, y, rows, bias == null ? null : Epilogue.bias(bias));
            return;
        }
        int r = spec.rank();
        float[] input = x;
        saved.dropoutApplied = training && spec.dropout() > 0f;
        if (saved.dropoutApplied && saved.droppedInput == null) {
            throw new IllegalArgumentException(name + ": dropout in a training forward needs activations for the "
                    + "backward (newActivations), not a forward pass's alone");
        }
        if (saved.dropoutApplied) {
            Dropout.forward(x, saved.droppedInput, rows * inFeatures, spec.dropout(), dropoutKey, saved.dropoutMask);
            input = saved.droppedInput;
        }
        // u = drop(x)·Aᵀ [rows, r]; then y = x·W0ᵀ + b + s·u·Bᵀ in one pass over y
        Gemm.matmulXWt(input, loraA.value(), saved.projected, rows, inFeatures, r, false);
        baseForward(x, y, rows, Epilogue.lowRank(bias, saved.projected, r, loraB.value(), r, true, r, scaling));
    }

    /** Inference without dropout into a new array: x [rows, in] → y [rows, out]. */
    public float[] infer(float[] x, int rows) {
        float[] y = new float[rows * outFeatures];
        forward(x, y, rows, newForwardActivations(rows), false, 0);
        return y;
    }

    /**
     * From dy [rows, out] and the forward's x [rows, in]: accumulates A's and B's gradients, and writes
     * dx [rows, in] (adds to it when {@code accumulateDx}). W0 gets no gradient.
     */
    public void backward(float[] x, float[] dy, float[] dx, int rows, Activations saved, boolean accumulateDx) {
        checkRows(rows, saved, x.length, dy.length);
        if (dx.length < rows * inFeatures) {
            throw new IllegalArgumentException(name + ": dx holds " + dx.length + " values, needs " + rows * inFeatures);
        }
        if (isMerged()) {
            throw new IllegalStateException(name + ": backward through a merged layer; unmerge() before training");
        }
        if (saved.projectedGrad == null) {
            throw new IllegalStateException(name + ": backward with a forward pass's activations alone; the backward"
                    + " needs newActivations");
        }
        int r = spec.rank();
        if (r == 0) {
            baseBackward(dy, dx, rows, accumulateDx, null);
            return;
        }
        float[] input = saved.dropoutApplied ? saved.droppedInput : x;
        // dB += s·dyᵀ·u   [out, r]
        Gemm.sgemm(true, false, outFeatures, r, rows, scaling, dy, 0, outFeatures, saved.projected, 0, r,
                1f, loraB.grad(), 0, r);
        // du = s·dy·B     [rows, r]
        Gemm.sgemm(false, false, rows, r, outFeatures, scaling, dy, 0, outFeatures, loraB.value(), 0, r,
                0f, saved.projectedGrad, 0, r);
        // dA += duᵀ·drop(x)   [r, in]
        Gemm.sgemm(true, false, r, inFeatures, rows, 1f, saved.projectedGrad, 0, r, input, 0, inFeatures,
                1f, loraA.grad(), 0, inFeatures);
        // dx = dy·W0 + (du·A ⊙ keep/(1 − p) when dropout was applied), in one pass over dx
        Epilogue loraGrad = Epilogue.lowRank(null, saved.projectedGrad, r, loraA.value(), inFeatures, false, r,
                saved.dropoutApplied ? 1f / (1f - spec.dropout()) : 1f);
        baseBackward(dy, dx, rows, accumulateDx, saved.dropoutApplied ? loraGrad.masked(saved.dropoutMask, inFeatures) : loraGrad);
    }

    /** y = x·Wᵀ with the layer's current weight (W0, or the merged W), plus the epilogue's terms. */
    private void baseForward(float[] x, float[] y, int rows, Epilogue epilogue) {
        if (weight == null) {
            Gemm.sgemm(false, !fanInFanOut, rows, outFeatures, inFeatures, 1f, x, 0, inFeatures, frozen,
                    0f, y, 0, outFeatures, epilogue);
        } else if (fanInFanOut) {
            Gemm.sgemm(false, false, rows, outFeatures, inFeatures, 1f, x, 0, inFeatures, weight, 0, outFeatures,
                    0f, y, 0, outFeatures, epilogue);
        } else {
            Gemm.sgemm(false, true, rows, outFeatures, inFeatures, 1f, x, 0, inFeatures, weight, 0, inFeatures,
                    0f, y, 0, outFeatures, epilogue);
        }
    }

    /** dx (+)= dy·W0, plus the epilogue's terms. */
    private void baseBackward(float[] dy, float[] dx, int rows, boolean accumulate, Epilogue epilogue) {
        float beta = accumulate ? 1f : 0f;
        if (weight == null) {
            Gemm.sgemm(false, fanInFanOut, rows, inFeatures, outFeatures, 1f, dy, 0, outFeatures, frozen,
                    beta, dx, 0, inFeatures, epilogue);
        } else if (fanInFanOut) {
            Gemm.sgemm(false, true, rows, inFeatures, outFeatures, 1f, dy, 0, outFeatures, weight, 0, outFeatures,
                    beta, dx, 0, inFeatures, epilogue);
        } else {
            Gemm.sgemm(false, false, rows, inFeatures, outFeatures, 1f, dy, 0, outFeatures, weight, 0, inFeatures,
                    beta, dx, 0, inFeatures, epilogue);
        }
    }

    /**
     * Folds the adapter into the weight: W = W0 + s·B·A (transposed for fanInFanOut). Refuses to merge
     * twice, and refuses — leaving W0 untouched — a result with NaN or Inf.
     */
    public void merge() {
        if (isMerged()) {
            throw new IllegalStateException(name + ": adapter already merged; merging again would add it twice");
        }
        int r = spec.rank();
        if (r == 0) {
            return;
        }
        float[] merged = weight != null ? weight.clone() : frozen.toFloat32();
        if (fanInFanOut) {
            // W [in, out] += s·Aᵀ·Bᵀ
            Gemm.sgemm(true, true, inFeatures, outFeatures, r, scaling, loraA.value(), 0, inFeatures,
                    loraB.value(), 0, r, 1f, merged, 0, outFeatures);
        } else {
            // W [out, in] += s·B·A
            Gemm.sgemm(false, false, outFeatures, inFeatures, r, scaling, loraB.value(), 0, r,
                    loraA.value(), 0, inFeatures, 1f, merged, 0, inFeatures);
        }
        for (int i = 0; i < merged.length; i++) {
            if (!Float.isFinite(merged[i])) {
                int cols = fanInFanOut ? outFeatures : inFeatures;
                throw new ArithmeticException(name + ": merging the adapter gives " + merged[i] + " at weight["
                        + i / cols + ", " + i % cols + "]; the adapter is broken (NaN/Inf), the weight is left unmerged");
            }
        }
        unmergedWeight = weight != null ? weight : new float[0];
        weight = merged;
    }

    /** Restores W0 exactly as it was before {@link #merge()}. */
    public void unmerge() {
        if (!isMerged()) {
            throw new IllegalStateException(name + ": adapter is not merged");
        }
        weight = frozen == null ? unmergedWeight : null;
        unmergedWeight = null;
    }

    public boolean isMerged() {
        return unmergedWeight != null;
    }

    /** A and B, the only trainable tensors. */
    public List<Parameter> trainableParameters() {
        return spec.rank() == 0 ? List.of() : List.of(loraA, loraB);
    }

    public String name() {
        return name;
    }

    public int inFeatures() {
        return inFeatures;
    }

    public int outFeatures() {
        return outFeatures;
    }

    public boolean fanInFanOut() {
        return fanInFanOut;
    }

    public LoraSpec spec() {
        return spec;
    }

    public float scaling() {
        return scaling;
    }

    /**
     * The weight in use as float32: W0, or W0 + s·B·A while merged. Not a copy when W0 is a float32 array
     * or the layer is merged; widened into a new array when W0 is held otherwise.
     */
    public float[] weight() {
        return weight != null ? weight : frozen.toFloat32();
    }

    /** W0 as held: a float32 array, mapped BF16/F16, or quantized. */
    public FrozenMatrix frozenWeight() {
        return frozen != null ? frozen : FrozenMatrix.of(isMerged() ? unmergedWeight : weight,
                fanInFanOut ? inFeatures : outFeatures, fanInFanOut ? outFeatures : inFeatures);
    }

    /** [out] or null. */
    public float[] bias() {
        return bias;
    }

    /** A [r, in]. Not a copy. */
    public Parameter loraA() {
        return loraA;
    }

    /** B [out, r]. Not a copy. */
    public Parameter loraB() {
        return loraB;
    }

    private void checkRows(int rows, Activations saved, int inputLength, int outputLength) {
        if (saved.owner() != this) {
            throw new IllegalArgumentException(name + ": activations belong to another layer");
        }
        if (rows <= 0 || rows > saved.maxRows) {
            throw new IllegalArgumentException(name + ": " + rows + " rows, activations hold 1.." + saved.maxRows);
        }
        if (inputLength < rows * inFeatures) {
            throw new IllegalArgumentException(name + ": input holds " + inputLength + " values, needs " + rows * inFeatures);
        }
        if (outputLength < rows * outFeatures) {
            throw new IllegalArgumentException(name + ": output holds " + outputLength + " values, needs " + rows * outFeatures);
        }
    }
}
