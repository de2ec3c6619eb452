package dev.loraflow.core.train;

import java.io.PrintWriter;
import java.util.Locale;

/**
 * Step, loss, throughput and time left of a training run: a bar redrawn in place on a terminal,
 * one plain line per report otherwise (logs and pipes must not fill with carriage returns).
 */
public final class ProgressReport {

    private static final int BAR_WIDTH = 24;

    private final PrintWriter out;
    private final boolean terminal;
    private final long totalSteps;
    private final long startNanos;
    private final long firstStep;
    private long tokens;

    /**
     * @param firstStep the step the run starts from (non-zero when resumed), so the rate counts only
     *                  this process's work
     */
    public ProgressReport(PrintWriter out, boolean terminal, long totalSteps, long firstStep) {
        this.out = out;
        this.terminal = terminal;
        this.totalSteps = totalSteps;
        this.firstStep = firstStep;
        this.startNanos = System.nanoTime();
    }

    public void update(Trainer.StepResult result) {
        tokens += result.tokens();
        double seconds = Math.max(1e-9, (System.nanoTime() - startNanos) / 1e9);
        long done = result.step() - firstStep;
        double tokensPerSecond = tokens / seconds;
        double eta = done == 0 ? 0 : seconds / done * (totalSteps - result.step());
        // Three significant digits below 100 tokens/s, so that a big model's fraction of a token a second still shows.
        String speed = String.format(Locale.ROOT, tokensPerSecond >= 100 ? "%.0f" : "%.3g", tokensPerSecond);
        String figures = String.format(Locale.ROOT, "step %d/%d  loss %.4f  lr %.3g  %s tok/s  ETA %s",
                result.step(), totalSteps, result.loss(), result.learningRate(), speed, duration(eta));
        if (terminal) {
            int filled = (int) (BAR_WIDTH * result.step() / Math.max(1, totalSteps));
            out.print("\r[" + "#".repeat(filled) + ".".repeat(BAR_WIDTH - filled) + "] " + figures + "  ");
            if (result.step() >= totalSteps) {
                out.println();
            }
        } else {
            out.println(figures);
        }
        out.flush();
    }

    static String duration(double seconds) {
        long s = Math.round(seconds);
        return s >= 3600 ? String.format(Locale.ROOT, "%dh%02dm", s / 3600, s / 60 % 60)
                : s >= 60 ? String.format(Locale.ROOT, "%dm%02ds", s / 60, s % 60)
                : s + "s";
    }
}
