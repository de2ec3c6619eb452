package dev.loraflow.core.testing;

import java.util.ArrayList;
import java.util.List;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.TestPlan;

/**
 * Lists, at the end of a module's test run, every test that did not run and why: an assumption that failed
 * for a missing tool ("skipped: no chromium on PATH ...") or a disabled condition. Surefire's summary only
 * counts skipped tests; this puts the reason beside the count, so a green build that skipped something says
 * what. Registered for every module whose tests have core's test-jar (META-INF/services).
 */
public final class SkippedTestsReport implements TestExecutionListener {

    private final List<String> skipped = new ArrayList<>();

    @Override
    public void executionSkipped(TestIdentifier test, String reason) {
        skipped.add(name(test) + ": " + reason);
    }

    @Override
    public void executionFinished(TestIdentifier test, TestExecutionResult result) {
        if (result.getStatus() == TestExecutionResult.Status.ABORTED) {
            skipped.add(name(test) + ": " + result.getThrowable().map(Throwable::getMessage).orElse("aborted"));
        }
    }

    @Override
    public void testPlanExecutionFinished(TestPlan plan) {
        for (String line : skipped) {
            System.out.println("[loraflow] NOT RUN " + line);
        }
    }

    private static String name(TestIdentifier test) {
        String id = test.getUniqueId();
        int classStart = id.indexOf("[class:");
        String className = classStart < 0 ? "" : id.substring(classStart + 7, id.indexOf(']', classStart));
        return className.substring(className.lastIndexOf('.') + 1) + "." + test.getDisplayName();
    }
}
