package dev.loraflow.demo;

import java.io.PrintStream;
import java.util.Locale;

/** A progress bar redrawn in place on a terminal; elsewhere (logs, CI) a plain line every tenth. */
final class Progress {

    private static final int WIDTH = 30;

    private final PrintStream out;
    private final String unit;
    private final long total;
    private final boolean terminal;
    private final long start = System.nanoTime();
    private long shownTenths = -1;
    private long shownPercent = -1;

    Progress(PrintStream out, String unit, long total) {
        this.out = out;
        this.unit = unit;
        this.total = total;
        this.terminal = System.console() != null && System.console().isTerminal();
    }

    void update(long done) {
        long percent = 100 * done / total;
        if (terminal) {
            if (percent != shownPercent) {
                shownPercent = percent;
                int filled = (int) (WIDTH * done / total);
                out.printf(Locale.ROOT, "\r   [%s%s] %3d%%  %d/%d %s", "#".repeat(filled), ".".repeat(WIDTH - filled), percent,
                        done, total, unit);
                out.flush();
            }
        } else if (percent / 10 != shownTenths) {
            shownTenths = percent / 10;
            out.printf(Locale.ROOT, "   %3d%%  %d/%d %s%n", percent, done, total, unit);
        }
    }

    void done() {
        if (terminal) {
            out.println();
        }
        out.printf(Locale.ROOT, "   %d %s in %.1f s%n", total, unit, (System.nanoTime() - start) / 1e9);
    }
}
