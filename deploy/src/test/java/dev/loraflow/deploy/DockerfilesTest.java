package dev.loraflow.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The images start the services as the build does and hold nothing but their Quarkus builds. */
class DockerfilesTest {

    private static final Path MODULE = Path.of("").toAbsolutePath();
    private static final Path REPOSITORY = MODULE.getParent();

    /** A Dockerfile's instructions, continuation lines joined and comments dropped. */
    private static List<String> instructions(Path dockerfile) throws IOException {
        List<String> instructions = new ArrayList<>();
        StringBuilder current = new StringBuilder();
        for (String line : Files.readAllLines(dockerfile)) {
            if (line.strip().startsWith("#") || (line.isBlank() && current.isEmpty())) {
                continue;
            }
            current.append(line.strip());
            if (current.toString().endsWith("\\")) {
                current.setLength(current.length() - 1);
                current.append(' ');
            } else {
                instructions.add(current.toString());
                current.setLength(0);
            }
        }
        return instructions;
    }

    /** The flags every loraflow JVM runs with, from the parent pom. */
    private static List<String> jvmFlags() throws IOException {
        Matcher flags = Pattern.compile("<loraflow\\.jvm\\.flags>([^<]+)</loraflow\\.jvm\\.flags>")
                .matcher(Files.readString(REPOSITORY.resolve("pom.xml")));
        assertTrue(flags.find(), "the parent pom defines loraflow.jvm.flags");
        return List.of(flags.group(1).strip().split("\\s+"));
    }

    @ParameterizedTest
    @ValueSource(strings = {"Dockerfile.jvm", "Dockerfile.cuda"})
    void theImageRunsTheQuarkusBuildWithTheProjectsJvmFlags(String file) throws IOException {
        List<String> instructions = instructions(MODULE.resolve("docker").resolve(file));
        List<String> entrypoints = instructions.stream().filter(line -> line.startsWith("ENTRYPOINT ")).toList();
        assertEquals(1, entrypoints.size(), file + ": one ENTRYPOINT");
        List<String> command = new ArrayList<>();
        new ObjectMapper().readTree(entrypoints.getFirst().substring("ENTRYPOINT ".length())).forEach(word -> command.add(word.asText()));
        assertEquals("java", command.getFirst(), file + ": exec form, java first: " + command);
        assertEquals(List.of("-jar", "/deployments/quarkus-run.jar"), command.subList(command.size() - 2, command.size()), file);
        String joined = String.join(" ", command);
        assertTrue(joined.contains(String.join(" ", jvmFlags())), file + " runs " + joined + " without " + jvmFlags());

        List<String> copies = instructions.stream().filter(line -> line.startsWith("COPY ") && !line.startsWith("COPY --from=")).toList();
        assertFalse(copies.isEmpty(), file + " copies the Quarkus build");
        for (String copy : copies) {
            String source = copy.split("\\s+")[1];
            String service = file.equals("Dockerfile.cuda") ? "serving" : "\\$\\{SERVICE}";
            assertTrue(source.matches(service + "/target/quarkus-app/.*"), file + ": " + copy);
            assertTrue(copy.endsWith(" /deployments/") || copy.matches(".* /deployments/[a-z]+/"), file + ": " + copy);
        }
        assertTrue(instructions.stream().anyMatch(line -> line.matches("USER [1-9][0-9]*")), file + ": runs as a numeric non-root user");
    }

    @ParameterizedTest
    @ValueSource(strings = {"trainer", "merger", "serving"})
    void theBuildContextAdmitsEachServicesQuarkusBuild(String service) throws IOException {
        List<String> rules = Files.readAllLines(REPOSITORY.resolve(".dockerignore")).stream()
                .filter(line -> !line.isBlank() && !line.startsWith("#")).toList();
        assertEquals("*", rules.getFirst(), ".dockerignore starts by leaving everything out");
        assertTrue(rules.contains("!" + service + "/target/quarkus-app/"), ".dockerignore admits " + service + "/target/quarkus-app/");
    }
}
