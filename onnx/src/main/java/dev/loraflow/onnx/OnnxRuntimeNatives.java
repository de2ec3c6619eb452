package dev.loraflow.onnx;

import ai.onnxruntime.OrtEnvironment;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.CodeSource;
import java.util.Locale;

/**
 * The one way into ONNX Runtime: {@link #environment()} instead of {@code OrtEnvironment.getEnvironment()}.
 *
 * <p>ONNX Runtime's Java binding copies its native libraries (28 MB on Linux x64) out of its jar into a new
 * {@code onnxruntime-java*} directory under {@code java.io.tmpdir} in every JVM that loads it (1.29): a normal
 * exit leaves the empty directory behind, a killed JVM all 28 MB. Before ONNX Runtime is first touched, this
 * class unpacks them once into a verified, content-named directory ({@link NativeLibraryCache}) under
 * {@value #CACHE_PROPERTY} (or {@value #CACHE_ENVIRONMENT}; by default
 * {@code <java.io.tmpdir>/loraflow-onnxruntime-<user>}) and has ONNX Runtime load them from there, through its
 * {@code onnxruntime.native.path} property, set only while ONNX Runtime initialises: the JVM lets one class
 * loader only load a library from a given path, and Quarkus dev and test mode start the application again in
 * a new class loader, whose ONNX Runtime then extracts its own copy as before. Hands off when the user steers
 * ONNX Runtime with any {@code onnxruntime.native.*} property, on file systems without POSIX owners and
 * permissions, and, with a warning, when the cache cannot be used (someone else's directory, a full disk):
 * ONNX Runtime then copies the libraries itself.
 */
public final class OnnxRuntimeNatives {

    /** The system property naming the directory of the unpacked libraries. */
    public static final String CACHE_PROPERTY = "loraflow.onnxruntime.cache";
    /** The environment variable naming it when the system property is not set. */
    public static final String CACHE_ENVIRONMENT = "LORAFLOW_ONNXRUNTIME_CACHE";

    private static final System.Logger LOG = System.getLogger(OnnxRuntimeNatives.class.getName());
    private static final String ORT_PROPERTIES = "onnxruntime.native.";
    private static final String ORT_NATIVE_PATH = ORT_PROPERTIES + "path";
    private static final String ORT_RESOURCES = "ai/onnxruntime/native/";
    /** Where the first class loader of this JVM loaded them from: a second one may not load those files again. */
    private static final String LOADED_FROM = "loraflow.onnxruntime.loaded-from";

    private static boolean initialised;

    private OnnxRuntimeNatives() {}

    /** ONNX Runtime's environment, its native libraries loaded from the cache the first time. */
    public static OrtEnvironment environment() {
        initialise();
        return OrtEnvironment.getEnvironment();
    }

    private static synchronized void initialise() {
        if (initialised) {
            return;
        }
        initialised = true;
        Path directory = cachedLibraries();
        if (directory == null) {
            return;
        }
        System.setProperty(ORT_NATIVE_PATH, directory.toString());
        try {
            OrtEnvironment.getEnvironment();
            System.setProperty(LOADED_FROM, directory.toString());
        } finally {
            System.clearProperty(ORT_NATIVE_PATH);
        }
    }

    /** The directory of the verified libraries, or null where ONNX Runtime is to copy them itself. */
    private static Path cachedLibraries() {
        if (System.getProperties().stringPropertyNames().stream().anyMatch(name -> name.startsWith(ORT_PROPERTIES))) {
            return null;
        }
        String loadedFrom = System.getProperty(LOADED_FROM);
        if (loadedFrom != null) {
            LOG.log(Level.DEBUG, "another class loader of this JVM loaded ONNX Runtime's native libraries from "
                    + loadedFrom + "; this one's ONNX Runtime copies them itself");
            return null;
        }
        String platform = platform();
        Path jar = jarOf(OrtEnvironment.class);
        if (platform == null || jar == null || !FileSystems.getDefault().supportedFileAttributeViews().contains("unix")) {
            return null;
        }
        Path cache = cache();
        try {
            return NativeLibraryCache.prepare(jar, ORT_RESOURCES, platform, cache);
        } catch (NativeLibraryCache.UnsafeCacheException e) {
            LOG.log(Level.WARNING, "not using " + cache + " for ONNX Runtime's native libraries: " + e.getMessage()
                    + "; remove it or set " + CACHE_PROPERTY + " (" + CACHE_ENVIRONMENT + ") to a directory of this"
                    + " user's. ONNX Runtime copies them into a temporary directory instead.");
        } catch (IOException | RuntimeException e) {
            LOG.log(Level.WARNING, "could not unpack ONNX Runtime's native libraries into " + cache + ": " + e
                    + ". ONNX Runtime copies them into a temporary directory instead.");
        }
        return null;
    }

    /** {@value #CACHE_PROPERTY}, else {@value #CACHE_ENVIRONMENT}, else a directory of this user's in java.io.tmpdir. */
    private static Path cache() {
        String configured = System.getProperty(CACHE_PROPERTY, System.getenv(CACHE_ENVIRONMENT));
        if (configured != null && !configured.isBlank()) {
            return Path.of(configured).toAbsolutePath();
        }
        String user = System.getProperty("user.name", "").replaceAll("[^A-Za-z0-9._-]", "_");
        return Path.of(System.getProperty("java.io.tmpdir")).toAbsolutePath().resolve("loraflow-onnxruntime-" + user);
    }

    /** ONNX Runtime's name for this machine's directory of libraries in its jar, where it is one loraflow supports. */
    private static String platform() {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        String system = os.contains("linux") ? "linux" : os.contains("mac") ? "osx" : null;
        String processor = arch.equals("amd64") || arch.equals("x86_64") ? "x64" : arch.equals("aarch64") ? "aarch64" : null;
        return system == null || processor == null ? null : system + "-" + processor;
    }

    /** The jar file a class was loaded from, or null when it came from elsewhere (a directory, a nested jar). */
    private static Path jarOf(Class<?> type) {
        CodeSource source = type.getProtectionDomain().getCodeSource();
        if (source == null || source.getLocation() == null) {
            return null;
        }
        try {
            URI location = source.getLocation().toURI();
            String inner = location.getRawSchemeSpecificPart();
            if ("jar".equals(location.getScheme()) && inner.endsWith("!/")) {
                location = new URI(inner.substring(0, inner.length() - "!/".length()));
            }
            if (!"file".equals(location.getScheme())) {
                return null;
            }
            Path path = Path.of(location);
            return Files.isRegularFile(path) ? path : null;
        } catch (URISyntaxException | IllegalArgumentException e) {
            return null;
        }
    }
}
