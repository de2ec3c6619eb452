package dev.loraflow.platform.store;

import java.io.IOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider;
import software.amazon.awssdk.regions.Region;

/**
 * The artifact store at a location ({@code loraflow.store.uri} / {@code LORAFLOW_STORE_URI}, else the
 * services' {@code loraflow.store.root}):
 * <ul>
 *   <li>a path or a {@code file:} URI: a {@link LocalArtifactStore} in that directory;</li>
 *   <li>{@code s3://BUCKET[/PREFIX][?endpoint=URL&region=R&path-style=true|false]}: an {@link S3ArtifactStore}.</li>
 * </ul>
 * The S3 store's settings come from the URI's query, else the system property, else the environment variable
 * (the AWS SDK's standard names where there is one):
 * <ul>
 *   <li>endpoint: {@code aws.endpointUrlS3} / {@code AWS_ENDPOINT_URL_S3}, {@code aws.endpointUrl} /
 *       {@code AWS_ENDPOINT_URL}; none = AWS S3 itself;</li>
 *   <li>region: {@code aws.region} / {@code AWS_REGION}, {@code AWS_DEFAULT_REGION}; default {@code us-east-1};</li>
 *   <li>path-style requests: {@code loraflow.s3.path-style} / {@code LORAFLOW_S3_PATH_STYLE}; default true when
 *       an endpoint is set (MinIO, S3Proxy, GCS), false for AWS;</li>
 *   <li>credentials: the SDK's default chain — {@code AWS_ACCESS_KEY_ID}/{@code AWS_SECRET_ACCESS_KEY} or
 *       {@code aws.accessKeyId}/{@code aws.secretAccessKey}, a credentials file ({@code AWS_SHARED_CREDENTIALS_FILE},
 *       e.g. a mounted Secret; {@code AWS_PROFILE}), then container and instance roles;</li>
 *   <li>the local read cache: {@code loraflow.store.cache-dir} / {@code LORAFLOW_STORE_CACHE_DIR} (default
 *       {@code <java.io.tmpdir>/loraflow-store-cache/<bucket>/<prefix>}) and {@code loraflow.store.cache-max-bytes} /
 *       {@code LORAFLOW_STORE_CACHE_MAX_BYTES} (default 20g; k, m, g suffixes);</li>
 *   <li>transfers: {@code loraflow.store.s3-part-size} / {@code LORAFLOW_STORE_S3_PART_SIZE} (multipart part and
 *       download range, default 64m, at least 5m) and {@code loraflow.store.s3-threads} / {@code LORAFLOW_STORE_S3_THREADS}
 *       (parallel parts and files, default 4).</li>
 * </ul>
 */
public final class ArtifactStores {

    /** The environment variables a store reads (besides the location), for deployments to check against. */
    public static final List<String> ENVIRONMENT = List.of("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION",
            "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
            "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_PROFILE", "LORAFLOW_S3_PATH_STYLE",
            "LORAFLOW_STORE_CACHE_DIR", "LORAFLOW_STORE_CACHE_MAX_BYTES", "LORAFLOW_STORE_S3_PART_SIZE",
            "LORAFLOW_STORE_S3_THREADS");

    private static final Pattern SIZE = Pattern.compile("(\\d+)([kmg]?)i?b?");
    private static final long DEFAULT_CACHE_MAX_BYTES = 20L << 30;
    private static final long DEFAULT_PART_SIZE = 64L << 20;
    private static final int DEFAULT_THREADS = 4;

    private ArtifactStores() {}

    /** The store at {@code location}, configured from the system properties and the environment. */
    public static ArtifactStore open(String location) throws IOException {
        return open(location, ArtifactStores::systemSetting);
    }

    /**
     * The store at {@code location}, its settings looked up by their system-property name (and the environment
     * variable names listed in the class comment) through {@code settings}.
     */
    static ArtifactStore open(String location, Function<List<String>, Optional<String>> settings) throws IOException {
        if (location == null || location.isBlank()) {
            throw new IllegalArgumentException("the artifact store location is empty; give a directory, file:DIR or"
                    + " s3://BUCKET/PREFIX");
        }
        if (location.startsWith("s3://")) {
            return new S3ArtifactStore(s3Settings(location, settings));
        }
        if (location.startsWith("file:")) {
            try {
                return new LocalArtifactStore(Path.of(new URI(location)));
            } catch (URISyntaxException | IllegalArgumentException e) {
                throw new IllegalArgumentException("artifact store location \"" + location + "\" is not a file URI"
                        + " with an absolute path (file:/dir or file:///dir)", e);
            }
        }
        if (location.matches("[A-Za-z][A-Za-z0-9+.-]*://.*")) {
            throw new IllegalArgumentException("artifact store location \"" + location + "\": only s3:// and file: URIs"
                    + " or a directory are supported");
        }
        return new LocalArtifactStore(Path.of(location));
    }

    static S3ArtifactStore.Settings s3Settings(String location, Function<List<String>, Optional<String>> settings) {
        URI uri;
        try {
            uri = new URI(location);
        } catch (URISyntaxException e) {
            throw new IllegalArgumentException("artifact store location \"" + location + "\" is not a URI: "
                    + e.getMessage(), e);
        }
        if (uri.getHost() == null) {
            throw new IllegalArgumentException("artifact store location \"" + location + "\" names no bucket"
                    + " (s3://BUCKET/PREFIX; a bucket name is 3-63 of [a-z0-9.-])");
        }
        Map<String, String> query = query(uri, location);
        Optional<URI> endpoint = Optional.ofNullable(query.get("endpoint"))
                .or(() -> settings.apply(List.of("aws.endpointUrlS3", "AWS_ENDPOINT_URL_S3")))
                .or(() -> settings.apply(List.of("aws.endpointUrl", "AWS_ENDPOINT_URL")))
                .map(URI::create);
        String region = Optional.ofNullable(query.get("region"))
                .or(() -> settings.apply(List.of("aws.region", "AWS_REGION", "AWS_DEFAULT_REGION")))
                .orElse("us-east-1");
        boolean pathStyle = Optional.ofNullable(query.get("path-style"))
                .or(() -> settings.apply(List.of("loraflow.s3.path-style", "LORAFLOW_S3_PATH_STYLE")))
                .map(value -> parseBoolean("path-style", value))
                .orElse(endpoint.isPresent());
        String bucket = uri.getHost();
        String prefix = Optional.ofNullable(uri.getPath()).orElse("");
        Path cache = settings.apply(List.of("loraflow.store.cache-dir", "LORAFLOW_STORE_CACHE_DIR")).map(Path::of)
                .orElse(Path.of(System.getProperty("java.io.tmpdir"), "loraflow-store-cache", bucket,
                        prefix.replaceAll("^/+|/+$", "").replace('/', '_')));
        long cacheMax = settings.apply(List.of("loraflow.store.cache-max-bytes", "LORAFLOW_STORE_CACHE_MAX_BYTES"))
                .map(value -> parseSize("LORAFLOW_STORE_CACHE_MAX_BYTES", value)).orElse(DEFAULT_CACHE_MAX_BYTES);
        long partSize = settings.apply(List.of("loraflow.store.s3-part-size", "LORAFLOW_STORE_S3_PART_SIZE"))
                .map(value -> parseSize("LORAFLOW_STORE_S3_PART_SIZE", value)).orElse(DEFAULT_PART_SIZE);
        int threads = settings.apply(List.of("loraflow.store.s3-threads", "LORAFLOW_STORE_S3_THREADS"))
                .map(value -> (int) parseSize("LORAFLOW_STORE_S3_THREADS", value)).orElse(DEFAULT_THREADS);
        return new S3ArtifactStore.Settings(bucket, prefix, endpoint, Region.of(region), pathStyle,
                DefaultCredentialsProvider.builder().build(), cache, cacheMax, partSize, threads);
    }

    private static Map<String, String> query(URI uri, String location) {
        Map<String, String> query = new HashMap<>();
        if (uri.getRawQuery() == null) {
            return query;
        }
        for (String pair : uri.getRawQuery().split("&")) {
            int equals = pair.indexOf('=');
            String key = equals < 0 ? pair : pair.substring(0, equals);
            if (!List.of("endpoint", "region", "path-style").contains(key)) {
                throw new IllegalArgumentException("artifact store location \"" + location + "\": unknown parameter '"
                        + key + "'; known: endpoint, region, path-style");
            }
            query.put(key, URLDecoder.decode(equals < 0 ? "" : pair.substring(equals + 1), StandardCharsets.UTF_8));
        }
        return query;
    }

    private static boolean parseBoolean(String name, String value) {
        return switch (value.toLowerCase(Locale.ROOT)) {
            case "true" -> true;
            case "false" -> false;
            default -> throw new IllegalArgumentException(name + " must be true or false, got '" + value + "'");
        };
    }

    /** {@code 123}, {@code 64m}, {@code 20g}, {@code 512KiB}: bytes. */
    public static long parseSize(String name, String value) {
        Matcher match = SIZE.matcher(value.strip().toLowerCase(Locale.ROOT));
        if (!match.matches()) {
            throw new IllegalArgumentException(name + " must be a number of bytes with an optional k, m or g, got '"
                    + value + "'");
        }
        int shift = switch (match.group(2)) {
            case "k" -> 10;
            case "m" -> 20;
            case "g" -> 30;
            default -> 0;
        };
        try {
            return Math.multiplyExact(Long.parseLong(match.group(1)), 1L << shift);
        } catch (ArithmeticException | NumberFormatException e) {
            throw new IllegalArgumentException(name + " is too large: '" + value + "'");
        }
    }

    /** The first of the names set as a system property (a dotted name) or environment variable (upper case). */
    private static Optional<String> systemSetting(List<String> names) {
        for (String name : names) {
            String value = name.equals(name.toUpperCase(Locale.ROOT)) ? System.getenv(name) : System.getProperty(name);
            if (value != null && !value.isBlank()) {
                return Optional.of(value.strip());
            }
        }
        return Optional.empty();
    }
}
