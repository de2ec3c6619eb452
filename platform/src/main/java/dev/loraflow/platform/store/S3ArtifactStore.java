package dev.loraflow.platform.store;

import dev.loraflow.core.io.FileTrees;
import dev.loraflow.core.io.Sha256;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.URI;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import java.security.DigestOutputStream;
import java.security.MessageDigest;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import software.amazon.awssdk.auth.credentials.AwsCredentialsProvider;
import software.amazon.awssdk.core.ResponseInputStream;
import software.amazon.awssdk.core.exception.SdkException;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.core.sync.ResponseTransformer;
import software.amazon.awssdk.http.urlconnection.UrlConnectionHttpClient;
import software.amazon.awssdk.core.checksums.RequestChecksumCalculation;
import software.amazon.awssdk.core.checksums.ResponseChecksumValidation;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.S3ClientBuilder;
import software.amazon.awssdk.services.s3.model.AbortMultipartUploadRequest;
import software.amazon.awssdk.services.s3.model.CompletedMultipartUpload;
import software.amazon.awssdk.services.s3.model.CompletedPart;
import software.amazon.awssdk.services.s3.model.GetObjectResponse;
import software.amazon.awssdk.services.s3.model.HeadObjectResponse;
import software.amazon.awssdk.services.s3.model.ListMultipartUploadsResponse;
import software.amazon.awssdk.services.s3.model.MultipartUpload;
import software.amazon.awssdk.services.s3.model.NoSuchKeyException;
import software.amazon.awssdk.services.s3.model.S3Exception;
import software.amazon.awssdk.services.s3.model.S3Object;

/**
 * An artifact store in an S3-compatible bucket (AWS S3, MinIO, GCS's XML API, S3Proxy) under a key prefix:
 * <ul>
 *   <li>{@code <prefix>/sha256/<digest>/<file>}: an artifact's files;</li>
 *   <li>{@code <prefix>/manifests/<digest>}: its manifest — the same {@code sha256sum} lines whose SHA-256
 *       is the digest as in {@link LocalArtifactStore} — written <em>after</em> every file, so an artifact
 *       whose manifest can be read is complete, and deleted <em>before</em> them;</li>
 *   <li>{@code <prefix>/refs/<name>}: a reference; a PUT replaces an object whole, and
 *       {@link #compareAndSetReference} is a conditional PUT ({@code If-None-Match: *} / {@code If-Match}).</li>
 * </ul>
 * Files larger than the part size go up as multipart uploads (parts in parallel) and come down as ranged
 * GETs, each streamed to disk and hashed on the way, pinned to the object's ETag so that a replaced object
 * cannot mix into one download. {@link #open} downloads into a local cache directory — whole artifacts,
 * verified against the manifest, renamed into place, the least recently opened evicted beyond a size bound —
 * and checks a cached copy again on each open, as the local store does.
 */
public final class S3ArtifactStore implements ArtifactStore, AutoCloseable {

    /** Where the bucket is and how to talk to it; see {@link ArtifactStores} for where each value comes from. */
    public record Settings(String bucket, String prefix, Optional<URI> endpoint, Region region, boolean pathStyle,
                           AwsCredentialsProvider credentials, Path cacheDirectory, long cacheMaxBytes, long partSize,
                           int transferThreads) {

        /** S3's smallest part but the last. */
        public static final long MIN_PART_SIZE = 5L << 20;

        public Settings {
            if (!BUCKET.matcher(bucket).matches()) {
                throw new IllegalArgumentException("S3 bucket \"" + bucket + "\" is not a valid bucket name");
            }
            prefix = prefix.replaceAll("^/+|/+$", "");
            if (prefix.contains("//") || prefix.contains("..")) {
                throw new IllegalArgumentException("S3 key prefix \"" + prefix + "\" has an empty or '..' segment");
            }
            if (partSize < MIN_PART_SIZE) {
                throw new IllegalArgumentException("S3 part size must be at least 5 MiB, got " + partSize);
            }
            if (cacheMaxBytes < 0) {
                throw new IllegalArgumentException("the store cache bound must be >= 0, got " + cacheMaxBytes);
            }
            if (transferThreads < 1) {
                throw new IllegalArgumentException("S3 transfer threads must be >= 1, got " + transferThreads);
            }
        }
    }

    /** What went over the wire since the store was made, e.g. for a benchmark or a test of the transfer paths. */
    public record Transfers(long multipartUploads, long partsUploaded, long rangedGets, long cacheHits, long cacheEvictions) {}

    private static final Pattern BUCKET = Pattern.compile("[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]");
    private static final Pattern REFERENCE = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,200}");
    private static final Pattern DIGEST = ArtifactManifest.DIGEST;
    private static final int PRECONDITION_FAILED = 412;
    private static final int NOT_FOUND = 404;

    private final Settings settings;
    private final S3Client s3;
    private final String keyPrefix;
    private final Path cache;
    private final ExecutorService transfers;
    private final AtomicLong multipartUploads = new AtomicLong();
    private final AtomicLong partsUploaded = new AtomicLong();
    private final AtomicLong rangedGets = new AtomicLong();
    private final AtomicLong cacheHits = new AtomicLong();
    private final AtomicLong cacheEvictions = new AtomicLong();

    public S3ArtifactStore(Settings settings) throws IOException {
        this.settings = settings;
        this.keyPrefix = settings.prefix().isEmpty() ? "" : settings.prefix() + "/";
        this.cache = settings.cacheDirectory().toAbsolutePath().normalize();
        Files.createDirectories(cache.resolve("tmp"));
        S3ClientBuilder builder = S3Client.builder()
                .httpClientBuilder(UrlConnectionHttpClient.builder()
                        .connectionTimeout(Duration.ofSeconds(10)).socketTimeout(Duration.ofMinutes(2)))
                .region(settings.region())
                .credentialsProvider(settings.credentials())
                .forcePathStyle(settings.pathStyle())
                // Checksums only where the API requires them: S3-compatible servers (MinIO, GCS, S3Proxy) differ on
                // the newer trailing ones, and every file is checked against its SHA-256 on the way back anyway.
                .requestChecksumCalculation(RequestChecksumCalculation.WHEN_REQUIRED)
                .responseChecksumValidation(ResponseChecksumValidation.WHEN_REQUIRED);
        settings.endpoint().ifPresent(builder::endpointOverride);
        this.s3 = builder.build();
        this.transfers = Executors.newFixedThreadPool(settings.transferThreads(),
                Thread.ofPlatform().name("loraflow-s3-transfer-", 0).daemon().factory());
    }

    public Settings settings() {
        return settings;
    }

    public Transfers transfers() {
        return new Transfers(multipartUploads.get(), partsUploaded.get(), rangedGets.get(), cacheHits.get(),
                cacheEvictions.get());
    }

    /** Stops the transfer threads and the HTTP client. */
    @Override
    public void close() {
        transfers.shutdownNow();
        s3.close();
    }

    @Override
    public String toString() {
        return "s3://" + settings.bucket() + "/" + settings.prefix()
                + settings.endpoint().map(endpoint -> " at " + endpoint).orElse("") + " (cache " + cache + ")";
    }

    // ---------------------------------------------------------------------------------------------- artifacts

    /** Uploads stream from their source: nothing is copied on this machine's disk. */
    @Override
    public Optional<Path> localRoot() {
        return Optional.empty();
    }

    @Override
    public Artifact putDirectory(Path source) throws IOException {
        List<Path> files = ArtifactManifest.files(source);
        String manifest = ArtifactManifest.of(source);
        String digest = Sha256.of(manifest.getBytes(StandardCharsets.UTF_8));
        Artifact artifact = new Artifact(artifactUri(digest), digest);
        if (head(manifestKey(digest)).isEmpty()) {
            for (Path file : files) {
                upload(file, artifactKey(digest) + file.getFileName());
            }
        }
        // Last: the manifest makes the artifact visible. Written again when it was there, so that it is young
        // again and retention does not delete it under the reference about to name it.
        call(() -> s3.putObject(request -> request.bucket(settings.bucket()).key(manifestKey(digest))
                .contentType("text/plain; charset=utf-8"), RequestBody.fromString(manifest, StandardCharsets.UTF_8)));
        return artifact;
    }

    @Override
    public Path open(URI uri, String sha256) throws IOException {
        if (!DIGEST.matcher(sha256).matches()) {
            throw new ArtifactIntegrityException("\"" + sha256 + "\" is not a SHA-256 digest");
        }
        if (!uri.equals(artifactUri(sha256))) {
            throw new IOException(uri + ": not the artifact " + sha256 + " of the store " + artifactUri(sha256).resolve(".."));
        }
        Path cached = cache.resolve(sha256);
        if (Files.isDirectory(cached)) {
            if (digestOf(cached).equals(sha256)) {
                cacheHits.incrementAndGet();
                Files.setLastModifiedTime(cached, FileTime.from(Instant.now()));
                return cached;
            }
            // Changed on this disk since it was checked: fetch it again rather than fail the reader.
            FileTrees.delete(cached);
        }
        download(uri, sha256, cached);
        evictBeyondBound(cached);
        return cached;
    }

    private void download(URI uri, String sha256, Path target) throws IOException {
        String manifest;
        try {
            manifest = call(() -> s3.getObjectAsBytes(request -> request.bucket(settings.bucket())
                    .key(manifestKey(sha256)))).asUtf8String();
        } catch (NoSuchKeyException absent) {
            throw new IOException(uri + ": no such artifact");
        }
        String manifestDigest = Sha256.of(manifest.getBytes(StandardCharsets.UTF_8));
        if (!manifestDigest.equals(sha256)) {
            throw new ArtifactIntegrityException(uri + ": manifest digest " + manifestDigest + " does not match " + sha256);
        }
        Map<String, String> files = ArtifactManifest.parse(manifest, uri.toString());
        Path staging = cache.resolve("tmp").resolve(sha256 + "-" + UUID.randomUUID());
        Files.createDirectories(staging);
        try {
            List<Future<String>> hashes = new ArrayList<>();
            for (String name : files.keySet()) {
                hashes.add(transfers.submit(() -> downloadFile(artifactKey(sha256) + name, staging.resolve(name))));
            }
            int index = 0;
            for (Map.Entry<String, String> file : files.entrySet()) {
                String actual = await(hashes.get(index++));
                if (!actual.equals(file.getValue())) {
                    throw new ArtifactIntegrityException(uri + ": file " + file.getKey() + " has SHA-256 " + actual
                            + ", its manifest says " + file.getValue());
                }
            }
            try {
                Files.move(staging, target, StandardCopyOption.ATOMIC_MOVE);
            } catch (FileAlreadyExistsException | DirectoryNotEmptyException raced) {
                // another reader cached the same artifact first: theirs was checked as ours was
            } catch (AtomicMoveNotSupportedException e) {
                throw new IOException(cache + ": the cache's file system cannot rename atomically", e);
            }
        } finally {
            if (Files.exists(staging)) {
                FileTrees.delete(staging);
            }
        }
    }

    /** Streams one object to {@code target} in ranges of the part size, hashing on the way; returns its SHA-256. */
    private String downloadFile(String key, Path target) throws IOException {
        HeadObjectResponse head = head(key).orElseThrow(() -> new ArtifactIntegrityException(
                "s3://" + settings.bucket() + "/" + key + ": missing, though its artifact's manifest names it"));
        long size = head.contentLength();
        MessageDigest digest = Sha256.newDigest();
        try (OutputStream out = new DigestOutputStream(Files.newOutputStream(target), digest)) {
            if (size <= settings.partSize()) {
                call(() -> s3.getObject(request -> request.bucket(settings.bucket()).key(key).ifMatch(head.eTag()),
                        ResponseTransformer.toOutputStream(out)));
            } else {
                for (long offset = 0; offset < size; offset += settings.partSize()) {
                    String range = "bytes=" + offset + "-" + (Math.min(size, offset + settings.partSize()) - 1);
                    // If-Match: every range comes from the object that was measured, or the download fails.
                    try (ResponseInputStream<GetObjectResponse> part = call(() -> s3.getObject(request -> request
                            .bucket(settings.bucket()).key(key).range(range).ifMatch(head.eTag())))) {
                        part.transferTo(out);
                    }
                    rangedGets.incrementAndGet();
                }
            }
        }
        return Sha256.hex(digest);
    }

    private void upload(Path file, String key) throws IOException {
        long size = Files.size(file);
        if (size <= settings.partSize()) {
            call(() -> s3.putObject(request -> request.bucket(settings.bucket()).key(key)
                    .contentType("application/octet-stream"), RequestBody.fromFile(file)));
            return;
        }
        String uploadId = call(() -> s3.createMultipartUpload(request -> request.bucket(settings.bucket()).key(key)
                .contentType("application/octet-stream"))).uploadId();
        try {
            List<Future<CompletedPart>> parts = new ArrayList<>();
            for (long offset = 0, number = 1; offset < size; offset += settings.partSize(), number++) {
                long start = offset;
                long length = Math.min(settings.partSize(), size - offset);
                int partNumber = (int) number;
                parts.add(transfers.submit(() -> {
                    String eTag = call(() -> s3.uploadPart(request -> request.bucket(settings.bucket()).key(key)
                                    .uploadId(uploadId).partNumber(partNumber).contentLength(length),
                            RequestBody.fromContentProvider(() -> slice(file, start, length), length,
                                    "application/octet-stream"))).eTag();
                    partsUploaded.incrementAndGet();
                    return CompletedPart.builder().partNumber(partNumber).eTag(eTag).build();
                }));
            }
            List<CompletedPart> completed = new ArrayList<>();
            for (Future<CompletedPart> part : parts) {
                completed.add(await(part));
            }
            call(() -> s3.completeMultipartUpload(request -> request.bucket(settings.bucket()).key(key)
                    .uploadId(uploadId).multipartUpload(CompletedMultipartUpload.builder().parts(completed).build())));
            multipartUploads.incrementAndGet();
        } catch (IOException | RuntimeException e) {
            try {
                s3.abortMultipartUpload(AbortMultipartUploadRequest.builder().bucket(settings.bucket()).key(key)
                        .uploadId(uploadId).build());
            } catch (SdkException leftover) {
                e.addSuppressed(leftover); // retention aborts uploads this old
            }
            throw e;
        }
    }

    /** A fresh stream over {@code length} bytes of the file from {@code start}: the SDK opens one per attempt. */
    private static InputStream slice(Path file, long start, long length) {
        try {
            FileChannel channel = FileChannel.open(file, StandardOpenOption.READ).position(start);
            InputStream whole = Channels.newInputStream(channel);
            return new InputStream() {
                private long left = length;

                @Override
                public int read() throws IOException {
                    if (left == 0) {
                        return -1;
                    }
                    int b = whole.read();
                    if (b >= 0) {
                        left--;
                    }
                    return b;
                }

                @Override
                public int read(byte[] buffer, int offset, int count) throws IOException {
                    if (left == 0) {
                        return -1;
                    }
                    int n = whole.read(buffer, offset, (int) Math.min(count, left));
                    if (n > 0) {
                        left -= n;
                    }
                    return n;
                }

                @Override
                public void close() throws IOException {
                    whole.close();
                }
            };
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    // --------------------------------------------------------------------------------------------- references

    @Override
    public Optional<byte[]> readReference(String name) throws IOException {
        try {
            return Optional.of(call(() -> s3.getObjectAsBytes(request -> request.bucket(settings.bucket())
                    .key(referenceKey(name)))).asByteArray());
        } catch (NoSuchKeyException absent) {
            return Optional.empty();
        }
    }

    @Override
    public void writeReference(String name, byte[] value) throws IOException {
        call(() -> s3.putObject(request -> request.bucket(settings.bucket()).key(referenceKey(name))
                .contentType("application/octet-stream"), RequestBody.fromBytes(value)));
    }

    /** A conditional PUT: {@code If-None-Match: *} when absent is expected, else {@code If-Match} the ETag read. */
    @Override
    public boolean compareAndSetReference(String name, Optional<byte[]> expected, byte[] value) throws IOException {
        String key = referenceKey(name);
        String eTag = null;
        if (expected.isPresent()) {
            try {
                var current = call(() -> s3.getObjectAsBytes(request -> request.bucket(settings.bucket()).key(key)));
                if (!java.util.Arrays.equals(current.asByteArray(), expected.get())) {
                    return false;
                }
                eTag = current.response().eTag();
            } catch (NoSuchKeyException absent) {
                return false;
            }
        }
        String match = eTag;
        try {
            call(() -> s3.putObject(request -> {
                request.bucket(settings.bucket()).key(key).contentType("application/octet-stream");
                if (match == null) {
                    request.ifNoneMatch("*");
                } else {
                    request.ifMatch(match);
                }
            }, RequestBody.fromBytes(value)));
            return true;
        } catch (IOException e) {
            if (e.getCause() instanceof S3Exception s3Error
                    && (s3Error.statusCode() == PRECONDITION_FAILED || s3Error.statusCode() == 409)) {
                return false; // 409: another conditional write to the key was in flight
            }
            throw e;
        }
    }

    @Override
    public List<String> referenceNames() throws IOException {
        String refs = keyPrefix + "refs/";
        return list(refs).stream().map(object -> object.key().substring(refs.length()))
                .filter(name -> REFERENCE.matcher(name).matches()).sorted().toList();
    }

    // ---------------------------------------------------------------------------------------------- retention

    /**
     * Lists the manifests; each unreferenced one older than the cutoff (its age read again just before) is
     * deleted first — the artifact is gone for readers from then on — then its files. Files without a
     * manifest (a writer that crashed) and multipart uploads begun before the cutoff go too.
     */
    @Override
    public Sweep deleteUnreferenced(Set<String> live, Duration retention, Instant now) throws IOException {
        Instant cutoff = now.minus(retention);
        String manifests = keyPrefix + "manifests/";
        Map<String, List<S3Object>> filesByDigest = new HashMap<>();
        String artifacts = keyPrefix + "sha256/";
        for (S3Object object : list(artifacts)) {
            String rest = object.key().substring(artifacts.length());
            int slash = rest.indexOf('/');
            if (slash > 0) {
                filesByDigest.computeIfAbsent(rest.substring(0, slash), digest -> new ArrayList<>()).add(object);
            }
        }
        int deleted = 0;
        int kept = 0;
        long freed = 0;
        for (S3Object manifest : list(manifests)) {
            String digest = manifest.key().substring(manifests.length());
            List<S3Object> files = filesByDigest.remove(digest);
            if (!DIGEST.matcher(digest).matches()) {
                continue;
            }
            if (live.contains(digest) || !manifest.lastModified().isBefore(cutoff)) {
                kept++;
                continue;
            }
            Optional<HeadObjectResponse> again = head(manifest.key());
            if (again.isEmpty() || !again.get().lastModified().isBefore(cutoff)) {
                kept += again.isPresent() ? 1 : 0; // stored again meanwhile, or another sweep took it
                continue;
            }
            delete(manifest.key());
            freed += manifest.size();
            for (S3Object file : files == null ? List.<S3Object>of() : files) {
                delete(file.key());
                freed += file.size();
            }
            deleted++;
        }
        // Files whose manifest never came: a writer crashed (or is still writing, if they are young).
        for (List<S3Object> orphans : filesByDigest.values()) {
            if (orphans.stream().allMatch(object -> object.lastModified().isBefore(cutoff))) {
                for (S3Object orphan : orphans) {
                    delete(orphan.key());
                    freed += orphan.size();
                }
            }
        }
        abortUploadsBegunBefore(cutoff);
        return new Sweep(deleted, freed, kept, diskUsage());
    }

    private void abortUploadsBegunBefore(Instant cutoff) throws IOException {
        ListMultipartUploadsResponse uploads;
        try {
            uploads = call(() -> s3.listMultipartUploads(request -> request.bucket(settings.bucket()).prefix(keyPrefix)));
        } catch (IOException e) {
            if (e.getCause() instanceof S3Exception s3Error && s3Error.statusCode() == 501) {
                return; // a server that cannot list uploads (S3Proxy's filesystem backend) keeps none to abort
            }
            throw e;
        }
        for (MultipartUpload upload : uploads.uploads()) {
            if (upload.initiated() != null && upload.initiated().isBefore(cutoff)) {
                call(() -> s3.abortMultipartUpload(request -> request.bucket(settings.bucket()).key(upload.key())
                        .uploadId(upload.uploadId())));
            }
        }
    }

    @Override
    public long diskUsage() throws IOException {
        return list(keyPrefix).stream().mapToLong(S3Object::size).sum();
    }

    // ---------------------------------------------------------------------------------------------- the cache

    /** Deletes the least recently opened cached artifacts, never {@code keep}, until the cache fits its bound. */
    private synchronized void evictBeyondBound(Path keep) throws IOException {
        record Entry(Path path, FileTime used, long bytes) {}
        List<Entry> entries = new ArrayList<>();
        long total = 0;
        try (Stream<Path> paths = Files.list(cache)) {
            for (Path path : paths.filter(path -> DIGEST.matcher(path.getFileName().toString()).matches()).toList()) {
                try {
                    Entry entry = new Entry(path, Files.getLastModifiedTime(path), FileTrees.size(path));
                    entries.add(entry);
                    total += entry.bytes();
                } catch (java.nio.file.NoSuchFileException evicted) {
                    // another store on this cache evicted it meanwhile
                }
            }
        }
        entries.sort(Comparator.comparing(Entry::used));
        for (Entry entry : entries) {
            if (total <= settings.cacheMaxBytes()) {
                break;
            }
            if (entry.path().equals(keep)) {
                continue;
            }
            // Renamed away first, so that an opener sees it whole or not at all; a process that loaded its files
            // keeps what it mapped or read.
            Path doomed = cache.resolve("tmp").resolve("evicted-" + entry.path().getFileName() + "-" + UUID.randomUUID());
            try {
                Files.move(entry.path(), doomed, StandardCopyOption.ATOMIC_MOVE);
            } catch (java.nio.file.NoSuchFileException gone) {
                continue;
            }
            FileTrees.delete(doomed);
            total -= entry.bytes();
            cacheEvictions.incrementAndGet();
        }
    }

    /** The bytes of the artifacts in the local cache. */
    public long cacheBytes() throws IOException {
        long total = 0;
        try (Stream<Path> paths = Files.list(cache)) {
            for (Path path : paths.filter(path -> DIGEST.matcher(path.getFileName().toString()).matches()).toList()) {
                total += FileTrees.size(path);
            }
        }
        return total;
    }

    private static String digestOf(Path directory) throws IOException {
        return Sha256.of(ArtifactManifest.of(directory).getBytes(StandardCharsets.UTF_8));
    }

    // ---------------------------------------------------------------------------------------------- keys, calls

    private URI artifactUri(String digest) {
        return URI.create("s3://" + settings.bucket() + "/" + artifactKey(digest));
    }

    private String artifactKey(String digest) {
        return keyPrefix + "sha256/" + digest + "/";
    }

    private String manifestKey(String digest) {
        return keyPrefix + "manifests/" + digest;
    }

    private String referenceKey(String name) {
        if (!REFERENCE.matcher(name).matches()) {
            throw new IllegalArgumentException("reference name \"" + name + "\" must be 1–201 of [A-Za-z0-9._-]");
        }
        return keyPrefix + "refs/" + name;
    }

    private Optional<HeadObjectResponse> head(String key) throws IOException {
        try {
            return Optional.of(call(() -> s3.headObject(request -> request.bucket(settings.bucket()).key(key))));
        } catch (NoSuchKeyException absent) {
            return Optional.empty();
        } catch (IOException e) {
            if (e.getCause() instanceof S3Exception s3Error && s3Error.statusCode() == NOT_FOUND) {
                return Optional.empty(); // HEAD has no body to say NoSuchKey in
            }
            throw e;
        }
    }

    private void delete(String key) throws IOException {
        call(() -> s3.deleteObject(request -> request.bucket(settings.bucket()).key(key)));
    }

    private List<S3Object> list(String prefix) throws IOException {
        return call(() -> s3.listObjectsV2Paginator(request -> request.bucket(settings.bucket()).prefix(prefix))
                .contents().stream().toList());
    }

    private interface S3Call<T> {
        T run() throws IOException;
    }

    /**
     * Runs an SDK call; its failures become IOExceptions that name the bucket (the SDK's exception is the cause),
     * except NoSuchKey, which callers handle as absence.
     */
    private <T> T call(S3Call<T> call) throws IOException {
        try {
            return call.run();
        } catch (NoSuchKeyException absent) {
            throw absent;
        } catch (S3Exception e) {
            throw new IOException("S3 bucket " + settings.bucket() + settings.endpoint().map(at -> " at " + at).orElse("")
                    + ": " + e.getMessage(), e);
        } catch (SdkException e) {
            throw new IOException("S3 bucket " + settings.bucket() + settings.endpoint().map(at -> " at " + at).orElse("")
                    + " unreachable: " + e.getMessage(), e);
        } catch (UncheckedIOException e) {
            throw e.getCause();
        }
    }

    private static <T> T await(Future<T> future) throws IOException {
        try {
            return future.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted during an S3 transfer", e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof IOException io) {
                throw io;
            }
            if (e.getCause() instanceof RuntimeException runtime) {
                throw runtime;
            }
            throw new IOException(e.getCause());
        }
    }
}
