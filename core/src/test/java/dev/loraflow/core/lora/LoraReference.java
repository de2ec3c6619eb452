package dev.loraflow.core.lora;

/**
 * LoRALinear written straight from the formula in double precision, with no kernels:
 * y = x·W0ᵀ + b + s·((x ⊙ keepScale)·Aᵀ)·Bᵀ, and its gradients for x, A and B.
 */
record LoraReference(int in, int out, int rank, double scaling, boolean fanInFanOut,
                     double[] w0, double[] bias, double[] a, double[] b) {

    record Gradients(double[] dx, double[] dA, double[] dB) {}

    static LoraReference of(LoRALinear layer) {
        return new LoraReference(layer.inFeatures(), layer.outFeatures(), layer.spec().rank(), layer.scaling(),
                layer.fanInFanOut(), LoRALinearTest.toDouble(layer.weight()),
                layer.bias() == null ? null : LoRALinearTest.toDouble(layer.bias()),
                LoRALinearTest.toDouble(layer.loraA().value()), LoRALinearTest.toDouble(layer.loraB().value()));
    }

    double weight(int o, int i) {
        return fanInFanOut ? w0[i * out + o] : w0[o * in + i];
    }

    double[] forward(double[] x, int rows, double[] keepScale) {
        double[] y = new double[rows * out];
        for (int n = 0; n < rows; n++) {
            double[] u = new double[rank];
            for (int k = 0; k < rank; k++) {
                for (int i = 0; i < in; i++) {
                    u[k] += a[k * in + i] * x[n * in + i] * keepScale[n * in + i];
                }
            }
            for (int o = 0; o < out; o++) {
                double sum = bias == null ? 0 : bias[o];
                for (int i = 0; i < in; i++) {
                    sum += weight(o, i) * x[n * in + i];
                }
                for (int k = 0; k < rank; k++) {
                    sum += scaling * b[o * rank + k] * u[k];
                }
                y[n * out + o] = sum;
            }
        }
        return y;
    }

    Gradients backward(double[] x, double[] dy, int rows, double[] keepScale) {
        double[] dx = new double[rows * in];
        double[] dA = new double[rank * in];
        double[] dB = new double[out * rank];
        for (int n = 0; n < rows; n++) {
            double[] u = new double[rank];
            for (int k = 0; k < rank; k++) {
                for (int i = 0; i < in; i++) {
                    u[k] += a[k * in + i] * x[n * in + i] * keepScale[n * in + i];
                }
            }
            double[] du = new double[rank];
            for (int o = 0; o < out; o++) {
                double g = dy[n * out + o];
                for (int i = 0; i < in; i++) {
                    dx[n * in + i] += g * weight(o, i);
                }
                for (int k = 0; k < rank; k++) {
                    dB[o * rank + k] += scaling * g * u[k];
                    du[k] += scaling * g * b[o * rank + k];
                }
            }
            for (int k = 0; k < rank; k++) {
                for (int i = 0; i < in; i++) {
                    double dropped = x[n * in + i] * keepScale[n * in + i];
                    dA[k * in + i] += du[k] * dropped;
                    dx[n * in + i] += du[k] * a[k * in + i] * keepScale[n * in + i];
                }
            }
        }
        return new Gradients(dx, dA, dB);
    }
}
