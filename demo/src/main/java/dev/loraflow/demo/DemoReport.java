package dev.loraflow.demo;

import java.util.List;
import java.util.Locale;

/**
 * What a demo run measured, and the one self-contained HTML page that shows it: the loss curve as
 * inline SVG, throughput, every stage's time, answers before and after the adapter, accuracy.
 */
public record DemoReport(String jobId, String baseModel, long steps, int examples, double tokensPerSecond,
                         List<LossPoint> loss, List<Stage> stages, List<Sample> samples, Accuracy accuracy,
                         int identical, int compared, String failure) {

    public record LossPoint(long step, double loss) {}

    public record Stage(String name, double seconds, boolean passed) {}

    /** A held-out word, its cipher, and what the served model answered before and after the adapter. */
    public record Sample(String prompt, String expected, String before, String after) {}

    public record Accuracy(int beforeCorrect, int afterCorrect, int total) {}

    /** The loss curve's stroke: the test looks for these pixels in the plot. */
    public static final String CURVE_COLOUR = "#d62728";
    static final int PLOT_WIDTH = 640;
    static final int PLOT_HEIGHT = 280;
    static final int MARGIN_LEFT = 56;
    static final int MARGIN_BOTTOM = 36;
    static final int MARGIN_TOP = 12;
    static final int MARGIN_RIGHT = 16;

    public String html() {
        StringBuilder page = new StringBuilder(8192);
        page.append("""
                <!DOCTYPE html>
                <html lang="en"><head><meta charset="utf-8"><title>loraflow demo</title>
                <style>
                body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:980px}
                h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:24px 0 8px}
                .figures{display:flex;gap:16px;flex-wrap:wrap} .figure{border:1px solid #ddd;border-radius:6px;padding:8px 14px}
                .figure b{display:block;font-size:22px} table{border-collapse:collapse} td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}
                td.n{text-align:right;font-variant-numeric:tabular-nums} .ok{color:#1a7f37} .bad{color:#c62828} code{font-size:13px}
                </style></head><body>
                """);
        page.append("<h1>loraflow demo: ").append(escape(jobId)).append("</h1>\n");
        page.append("<p>A LoRA adapter on <code>").append(escape(baseModel))
                .append("</code> learns a letter-substitution cipher through Kafka, the trainer, the merger and the server.</p>\n");
        if (failure != null) {
            page.append("<p class=\"bad\" id=\"failure\">Failed: ").append(escape(failure)).append("</p>\n");
        }
        page.append("<div class=\"figures\">\n");
        figure(page, "accuracy-before", "held-out accuracy before", percent(accuracy.beforeCorrect(), accuracy.total()));
        figure(page, "accuracy-after", "held-out accuracy after", percent(accuracy.afterCorrect(), accuracy.total()));
        figure(page, "throughput", "training throughput", String.format(Locale.ROOT, "%,.0f tokens/s", tokensPerSecond));
        figure(page, "steps", "steps · examples", steps + " · " + examples);
        figure(page, "identical", "served = merged (Java)", "identical " + identical + "/" + compared);
        page.append("</div>\n<h2>Training loss</h2>\n");
        lossCurve(page);
        page.append("<h2>Stages</h2>\n<table id=\"stages\"><tr><th>stage</th><th>seconds</th><th></th></tr>\n");
        double total = 0;
        for (Stage stage : stages) {
            total += stage.seconds();
            page.append("<tr><td>").append(escape(stage.name())).append("</td><td class=\"n\">")
                    .append(String.format(Locale.ROOT, "%.1f", stage.seconds())).append("</td><td class=\"")
                    .append(stage.passed() ? "ok\">ok" : "bad\">failed").append("</td></tr>\n");
        }
        page.append("<tr><th>total</th><th class=\"n\">").append(String.format(Locale.ROOT, "%.1f", total))
                .append("</th><th></th></tr></table>\n");
        page.append("<h2>Answers on held-out words</h2>\n<table id=\"samples\"><tr><th>prompt</th><th>expected</th>"
                + "<th>before</th><th>after</th></tr>\n");
        for (Sample sample : samples) {
            page.append("<tr><td><code>").append(escape(sample.prompt())).append("</code></td><td><code>")
                    .append(escape(sample.expected())).append("</code></td>");
            answerCell(page, sample.before(), sample.expected());
            answerCell(page, sample.after(), sample.expected());
            page.append("</tr>\n");
        }
        page.append("</table>\n</body></html>\n");
        return page.toString();
    }

    private static void figure(StringBuilder page, String id, String label, String value) {
        page.append("<div class=\"figure\" id=\"").append(id).append("\">").append(escape(label)).append("<b>")
                .append(escape(value)).append("</b></div>\n");
    }

    private static void answerCell(StringBuilder page, String answer, String expected) {
        page.append("<td class=\"").append(expected.equals(answer) ? "ok" : "bad").append("\"><code>")
                .append(escape(answer == null ? "" : answer)).append("</code></td>");
    }

    /** Steps on x, loss on y, both axes labelled with their range; empty axes when no step was seen. */
    private void lossCurve(StringBuilder page) {
        int innerWidth = PLOT_WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
        int innerHeight = PLOT_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
        page.append("<svg id=\"loss\" xmlns=\"http://www.w3.org/2000/svg\" width=\"").append(PLOT_WIDTH)
                .append("\" height=\"").append(PLOT_HEIGHT).append("\" viewBox=\"0 0 ").append(PLOT_WIDTH).append(' ')
                .append(PLOT_HEIGHT).append("\">\n");
        page.append("<rect x=\"").append(MARGIN_LEFT).append("\" y=\"").append(MARGIN_TOP).append("\" width=\"")
                .append(innerWidth).append("\" height=\"").append(innerHeight).append("\" fill=\"#fafafa\" stroke=\"#999\"/>\n");
        if (!loss.isEmpty()) {
            long firstStep = loss.getFirst().step();
            long lastStep = Math.max(firstStep + 1, loss.getLast().step());
            double low = loss.stream().mapToDouble(LossPoint::loss).min().orElseThrow();
            double high = loss.stream().mapToDouble(LossPoint::loss).max().orElseThrow();
            double span = Math.max(high - low, 1e-6);
            page.append("<polyline fill=\"none\" stroke=\"").append(CURVE_COLOUR)
                    .append("\" stroke-width=\"2.5\" stroke-linejoin=\"round\" points=\"");
            for (LossPoint point : loss) {
                double x = MARGIN_LEFT + innerWidth * (point.step() - firstStep) / (double) (lastStep - firstStep);
                double y = MARGIN_TOP + innerHeight * (high - point.loss()) / span;
                page.append(String.format(Locale.ROOT, "%.1f,%.1f ", x, y));
            }
            page.append("\"/>\n");
            axisLabel(page, MARGIN_LEFT - 6, MARGIN_TOP + 12, "end", String.format(Locale.ROOT, "%.2f", high));
            axisLabel(page, MARGIN_LEFT - 6, MARGIN_TOP + innerHeight, "end", String.format(Locale.ROOT, "%.2f", low));
            axisLabel(page, MARGIN_LEFT, PLOT_HEIGHT - MARGIN_BOTTOM + 16, "start", "step " + firstStep);
            axisLabel(page, PLOT_WIDTH - MARGIN_RIGHT, PLOT_HEIGHT - MARGIN_BOTTOM + 16, "end", "step " + lastStep);
        }
        axisLabel(page, MARGIN_LEFT + innerWidth / 2, PLOT_HEIGHT - 4, "middle", "loss per training step");
        page.append("</svg>\n");
    }

    private static void axisLabel(StringBuilder page, int x, int y, String anchor, String text) {
        page.append("<text x=\"").append(x).append("\" y=\"").append(y).append("\" text-anchor=\"").append(anchor)
                .append("\" font-size=\"12\" fill=\"#444\">").append(escape(text)).append("</text>\n");
    }

    static String percent(int correct, int total) {
        return total == 0 ? "n/a" : String.format(Locale.ROOT, "%.0f %% (%d/%d)", 100.0 * correct / total, correct, total);
    }

    static String escape(String text) {
        StringBuilder out = new StringBuilder(text.length());
        for (char c : text.toCharArray()) {
            switch (c) {
                case '<' -> out.append("&lt;");
                case '>' -> out.append("&gt;");
                case '&' -> out.append("&amp;");
                case '"' -> out.append("&quot;");
                default -> out.append(c);
            }
        }
        return out.toString();
    }
}
