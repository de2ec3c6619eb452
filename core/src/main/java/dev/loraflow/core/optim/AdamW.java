package dev.loraflow.core.optim;

import java.util.ArrayList;
import java.util.List;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Adam with decoupled weight decay (Loshchilov &amp; Hutter), in the order PyTorch's {@code torch.optim.AdamW}
 * applies it: p ← p·(1 − lr·λ); m ← β1·m + (1 − β1)·g; v ← β2·v + (1 − β2)·g²;
 * p ← p − (lr / (1 − β1ᵗ))·m / (√v / √(1 − β2ᵗ) + ε). Only the parameters given are updated, so a frozen
 * base weight is never touched.
 */
public final class AdamW {

    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;

    /** Hyper-parameters; PyTorch's defaults are lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01. */
    public record Settings(float beta1, float beta2, float epsilon, float weightDecay) {
        public Settings {
            if (!(beta1 >= 0f && beta1 < 1f) || !(beta2 >= 0f && beta2 < 1f)) {
                throw new IllegalArgumentException("betas must be in [0, 1), got " + beta1 + ", " + beta2);
            }
            if (!(epsilon > 0f) || !(weightDecay >= 0f)) {
                throw new IllegalArgumentException("epsilon must be > 0 and weight decay >= 0, got " + epsilon + ", " + weightDecay);
            }
        }

        public static Settings defaults() {
            return new Settings(0.9f, 0.999f, 1e-8f, 0.01f);
        }
    }

    private final List<Parameter> parameters;
    private final Settings settings;
    private final float[][] firstMoments;
    private final float[][] secondMoments;
    private long step;

    public AdamW(List<Parameter> parameters, Settings settings) {
        this.parameters = List.copyOf(parameters);
        this.settings = settings;
        this.firstMoments = new float[this.parameters.size()][];
        this.secondMoments = new float[this.parameters.size()][];
        for (int i = 0; i < this.parameters.size(); i++) {
            firstMoments[i] = new float[this.parameters.get(i).size()];
            secondMoments[i] = new float[this.parameters.get(i).size()];
        }
    }

    /** One update with learning rate {@code lr} from the gradients accumulated so far (which it leaves alone). */
    public void step(float lr) {
        if (!(lr >= 0f) || !Float.isFinite(lr)) {
            throw new IllegalArgumentException("learning rate must be finite and >= 0, got " + lr);
        }
        step++;
        double biasCorrection1 = 1 - Math.pow(settings.beta1(), step);
        double biasCorrection2 = 1 - Math.pow(settings.beta2(), step);
        float stepSize = (float) (lr / biasCorrection1);
        float sqrtCorrection2 = (float) Math.sqrt(biasCorrection2);
        float decay = 1f - lr * settings.weightDecay();
        for (int i = 0; i < parameters.size(); i++) {
            update(parameters.get(i), firstMoments[i], secondMoments[i], stepSize, sqrtCorrection2, decay);
        }
    }

    private void update(Parameter parameter, float[] m, float[] v, float stepSize, float sqrtCorrection2, float decay) {
        float[] p = parameter.value();
        float[] g = parameter.grad();
        float beta1 = settings.beta1();
        float beta2 = settings.beta2();
        float epsilon = settings.epsilon();
        int n = p.length;
        int i = 0;
        for (int bound = SPECIES.loopBound(n); i < bound; i += SPECIES.length()) {
            FloatVector grad = FloatVector.fromArray(SPECIES, g, i);
            FloatVector mi = FloatVector.fromArray(SPECIES, m, i).mul(beta1).add(grad.mul(1f - beta1));
            FloatVector vi = FloatVector.fromArray(SPECIES, v, i).mul(beta2).add(grad.mul(grad).mul(1f - beta2));
            FloatVector denominator = vi.sqrt().div(sqrtCorrection2).add(epsilon);
            FloatVector pi = FloatVector.fromArray(SPECIES, p, i).mul(decay).sub(mi.div(denominator).mul(stepSize));
            mi.intoArray(m, i);
            vi.intoArray(v, i);
            pi.intoArray(p, i);
        }
        for (; i < n; i++) {
            float grad = g[i];
            m[i] = m[i] * beta1 + grad * (1f - beta1);
            v[i] = v[i] * beta2 + grad * grad * (1f - beta2);
            float denominator = (float) Math.sqrt(v[i]) / sqrtCorrection2 + epsilon;
            p[i] = p[i] * decay - m[i] / denominator * stepSize;
        }
    }

    public void zeroGrad() {
        for (Parameter parameter : parameters) {
            parameter.zeroGrad();
        }
    }

    /** Updates taken so far (t in the bias corrections). */
    public long stepCount() {
        return step;
    }

    public Settings settings() {
        return settings;
    }

    public List<Parameter> parameters() {
        return parameters;
    }

    /** The optimiser's state for a checkpoint: first and second moments per parameter, in order. */
    public State state() {
        List<float[]> first = new ArrayList<>();
        List<float[]> second = new ArrayList<>();
        for (int i = 0; i < parameters.size(); i++) {
            first.add(firstMoments[i].clone());
            second.add(secondMoments[i].clone());
        }
        return new State(step, first, second);
    }

    /** Restores a state saved by {@link #state()} for the same parameters, so training continues bit-identically. */
    public void restore(State state) {
        if (state.firstMoments().size() != parameters.size() || state.secondMoments().size() != parameters.size()) {
            throw new IllegalArgumentException("optimiser state has " + state.firstMoments().size()
                    + " parameters, this optimiser " + parameters.size());
        }
        for (int i = 0; i < parameters.size(); i++) {
            Parameter parameter = parameters.get(i);
            float[] first = state.firstMoments().get(i);
            float[] second = state.secondMoments().get(i);
            if (first.length != parameter.size() || second.length != parameter.size()) {
                throw new IllegalArgumentException(parameter.name() + ": optimiser state has " + first.length
                        + " elements, parameter " + parameter.size());
            }
            System.arraycopy(first, 0, firstMoments[i], 0, first.length);
            System.arraycopy(second, 0, secondMoments[i], 0, second.length);
        }
        step = state.step();
    }

    /** Moments and step count of an optimiser. */
    public record State(long step, List<float[]> firstMoments, List<float[]> secondMoments) {}
}
