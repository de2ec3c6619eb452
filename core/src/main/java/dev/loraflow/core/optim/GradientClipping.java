package dev.loraflow.core.optim;

import dev.loraflow.core.kernels.VectorMath;
import java.util.List;

/** Rescales gradients whose global L2 norm exceeds a maximum, as {@code torch.nn.utils.clip_grad_norm_}. */
public final class GradientClipping {

    private GradientClipping() {}

    /**
     * Scales every gradient by maxNorm / (norm + 1e-6) when the global norm exceeds maxNorm.
     *
     * @return the global norm before clipping
     * @throws ArithmeticException when a gradient holds NaN or Inf, naming the first such parameter;
     *                             an update from it would silently destroy the weights
     */
    public static double clipByGlobalNorm(List<Parameter> parameters, double maxNorm) {
        if (!(maxNorm > 0)) {
            throw new IllegalArgumentException("max gradient norm must be > 0, got " + maxNorm);
        }
        double sumOfSquares = 0;
        for (Parameter parameter : parameters) {
            // squared in double: float lanes would overflow for |g| > 1.8e19 and report a finite gradient as Inf
            double own = 0;
            for (float g : parameter.grad()) {
                own += (double) g * g;
            }
            if (!Double.isFinite(own)) {
                throw new ArithmeticException("gradient of " + parameter.name() + " is not finite (NaN or Inf)");
            }
            sumOfSquares += own;
        }
        double norm = Math.sqrt(sumOfSquares);
        double coefficient = maxNorm / (norm + 1e-6);
        if (coefficient < 1) {
            float scale = (float) coefficient;
            for (Parameter parameter : parameters) {
                VectorMath.scale(scale, parameter.grad(), 0, parameter.size());
            }
        }
        return norm;
    }
}
