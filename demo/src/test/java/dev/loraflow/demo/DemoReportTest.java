package dev.loraflow.demo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The report as a person sees it: rendered by headless Chromium, the loss curve is drawn across the
 * plot and falls, and the numbers are on the page. Skipped, saying so, where no Chromium is installed
 * (.ci/run installs Debian's {@code chromium}).
 */
class DemoReportTest {

    private static final int WIDTH = 1000;
    private static final int HEIGHT = 1400;

    @TempDir
    Path temp;
    private static String chromium;

    @BeforeAll
    static void findChromium() {
        chromium = Stream.of("chromium", "chromium-browser", "google-chrome")
                .flatMap(name -> Stream.of(System.getenv().getOrDefault("PATH", "").split(":")).map(dir -> Path.of(dir, name)))
                .filter(Files::isExecutable).map(Path::toString).findFirst().orElse(null);
    }

    /** Loss falling from 5.5 to 1.2 over 300 steps, as a trained demo shows it. */
    private static DemoReport report(String failure) {
        List<DemoReport.LossPoint> loss = new ArrayList<>();
        for (int step = 1; step <= 300; step++) {
            loss.add(new DemoReport.LossPoint(step, 1.2 + 4.3 * Math.exp(-step / 60.0)));
        }
        return new DemoReport("demo-20261128-120000", "demo-gpt2", 300, 4800, 1234.5, loss,
                List.of(new DemoReport.Stage("base model", 0.5, true), new DemoReport.Stage("training", 87.25, true),
                        new DemoReport.Stage("merge, ONNX export, verify", 4.75, failure == null)),
                List.of(new DemoReport.Sample("enc: tdao = ", "kahj", "        ", "kahj"),
                        new DemoReport.Sample("enc: gyab = ", "qbhg", "<|x|>", "qbhh")),
                new DemoReport.Accuracy(0, 93, 100), 100, 100, failure);
    }

    private String render(DemoReport report, String... mode) throws Exception {
        assumeTrue(chromium != null, "skipped: no chromium on PATH to render the report (Debian: apt-get install chromium)");
        Path page = temp.resolve("report.html");
        Files.writeString(page, report.html());
        List<String> command = new ArrayList<>(List.of(chromium, "--headless=new", "--disable-gpu", "--no-sandbox",
                "--hide-scrollbars", "--force-device-scale-factor=1", "--window-size=" + WIDTH + "," + HEIGHT,
                "--user-data-dir=" + temp.resolve("profile")));
        command.addAll(List.of(mode));
        command.add(page.toUri().toString());
        Path output = temp.resolve("chromium.out");
        Process process = new ProcessBuilder(command).redirectErrorStream(false).redirectOutput(output.toFile())
                .redirectError(temp.resolve("chromium.err").toFile()).start();
        assertTrue(process.waitFor(60, TimeUnit.SECONDS), "chromium did not finish in 60 s");
        assertEquals(0, process.exitValue(), () -> "chromium failed: " + read(temp.resolve("chromium.err")));
        return Files.readString(output);
    }

    @Test
    void theLossCurveIsDrawnAcrossThePlotAndFalls() throws Exception {
        Path screenshot = temp.resolve("report.png");
        render(report(null), "--screenshot=" + screenshot);
        BufferedImage image = ImageIO.read(screenshot.toFile());
        assertEquals(WIDTH, image.getWidth());
        int left = Integer.MAX_VALUE;
        int right = -1;
        int top = Integer.MAX_VALUE;
        int bottom = -1;
        int leftY = -1;
        int rightY = -1;
        int pixels = 0;
        for (int x = 0; x < image.getWidth(); x++) {
            for (int y = 0; y < image.getHeight(); y++) {
                if (isCurveColour(image.getRGB(x, y))) {
                    pixels++;
                    if (x < left) {
                        left = x;
                        leftY = y;
                    }
                    if (x >= right) {
                        right = x;
                        rightY = y;
                    }
                    top = Math.min(top, y);
                    bottom = Math.max(bottom, y);
                }
            }
        }
        int innerWidth = DemoReport.PLOT_WIDTH - DemoReport.MARGIN_LEFT - DemoReport.MARGIN_RIGHT;
        int innerHeight = DemoReport.PLOT_HEIGHT - DemoReport.MARGIN_TOP - DemoReport.MARGIN_BOTTOM;
        assertTrue(pixels > innerWidth, "the curve is drawn: " + pixels + " pixels of " + DemoReport.CURVE_COLOUR);
        assertTrue(right - left >= innerWidth * 0.95, "the curve spans the steps: " + left + ".." + right);
        assertTrue(bottom - top >= innerHeight * 0.9, "the curve spans the loss range: " + top + ".." + bottom);
        assertTrue(leftY < rightY - innerHeight / 2, "the loss falls: it starts at y " + leftY + " and ends at y " + rightY);
    }

    /** The curve's stroke, allowing for the rounding of a rendered colour but not for another red. */
    private static boolean isCurveColour(int rgb) {
        int r = (rgb >> 16) & 0xff;
        int g = (rgb >> 8) & 0xff;
        int b = rgb & 0xff;
        return Math.abs(r - 0xd6) <= 6 && Math.abs(g - 0x27) <= 6 && Math.abs(b - 0x28) <= 6;
    }

    @Test
    void theNumbersAreOnThePage() throws Exception {
        String dom = render(report(null), "--dump-dom");
        String text = dom.replaceAll("<[^>]*>", " ").replaceAll("\\s+", " ");
        for (String shown : List.of("0 % (0/100)", "93 % (93/100)", "1,235 tokens/s", "300 · 4800", "identical 100/100",
                "training 87.3", "merge, ONNX export, verify 4.8", "total 92.5", "enc: tdao = kahj", "step 1", "step 300",
                "5.43", "1.23")) {
            assertTrue(text.contains(shown), "the page shows '" + shown + "': " + text);
        }
        assertTrue(dom.contains("&lt;|x|&gt;"), "answers are escaped, not markup");
        assertFalse(text.contains("Failed"), "a passing run reports no failure");
    }

    @Test
    void aFailedRunSaysWhichStageFailed() throws Exception {
        String dom = render(report("stage 'merge, ONNX export, verify' failed: verification_failed"), "--dump-dom");
        String text = dom.replaceAll("<[^>]*>", " ").replaceAll("\\s+", " ");
        assertTrue(text.contains("Failed: stage 'merge, ONNX export, verify' failed: verification_failed"), text);
        assertTrue(text.contains("merge, ONNX export, verify 4.8 failed"), text);
    }

    private static String read(Path file) {
        try {
            return Files.readString(file);
        } catch (IOException e) {
            return e.toString();
        }
    }
}
