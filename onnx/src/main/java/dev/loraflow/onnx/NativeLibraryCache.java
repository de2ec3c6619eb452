package dev.loraflow.onnx;

import com.sun.security.auth.module.UnixSystem;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileAttribute;
import java.nio.file.attribute.PosixFileAttributes;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Set;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;

/**
 * One verified copy of the native libraries a jar carries for a platform, in a directory named after their
 * content: {@code <cache>/<platform>-<digest>/}, the digest a SHA-256 of the entries' names, sizes and CRC-32s.
 * Nothing found there is trusted as it is: the cache and that directory must be directories (not links) owned
 * by this user and writable by no one else, and each library must be this user's regular file, writable by no
 * one else, with its jar entry's size and CRC-32; a library that is not is replaced. The check reads the jar's
 * central directory and each file once, at every start: no decompression and no cryptographic hash, since only
 * this user can write there, so what the check has to catch is a truncated, corrupted or edited file, which
 * CRC-32 does at a small part of the cost of inflating and hashing 28 MB. JVMs starting at once take
 * turns (a lock on {@code .lock} in that directory), and each library is written to a temporary file beside its
 * final name and renamed onto it, so that a JVM killed while writing leaves no half library behind.
 */
final class NativeLibraryCache {

    /** Why the cache was not used: a directory someone else could have planted or could write into. */
    static final class UnsafeCacheException extends IOException {
        UnsafeCacheException(String message) {
            super(message);
        }
    }

    private record Library(ZipEntry entry, String fileName) {}

    private static final Set<PosixFilePermission> OWNER_ONLY = PosixFilePermissions.fromString("rwx------");
    private static final Set<PosixFilePermission> WRITING = PosixFilePermissions.fromString("rw-------");
    private static final Set<PosixFilePermission> LIBRARY = PosixFilePermissions.fromString("r-x------");
    private static final int DIGEST_CHARS = 16;
    private static final String LOCK_FILE = ".lock";

    private NativeLibraryCache() {}

    /**
     * The directory under {@code cache} holding the jar's libraries for {@code platform} (its entries
     * {@code <prefix><platform>/<file>}), made and filled as needed; null when the jar has none for it.
     *
     * @throws UnsafeCacheException when {@code cache} or the directory in it is not this user's alone
     */
    static Path prepare(Path jar, String prefix, String platform, Path cache) throws IOException {
        try (ZipFile zip = new ZipFile(jar.toFile())) {
            List<Library> libraries = libraries(zip, prefix + platform + "/");
            if (libraries.isEmpty()) {
                return null;
            }
            long uid = new UnixSystem().getUid();
            Files.createDirectories(cache.toAbsolutePath().getParent());
            privateDirectory(cache, uid);
            Path directory = privateDirectory(cache.resolve(platform + "-" + contentKey(libraries)), uid);
            // One JVM at a time checks and writes: the others then find whole libraries and rewrite none.
            try (FileChannel lockFile = FileChannel.open(directory.resolve(LOCK_FILE), Set.of(StandardOpenOption.CREATE,
                    StandardOpenOption.WRITE, LinkOption.NOFOLLOW_LINKS), PosixFilePermissions.asFileAttribute(WRITING));
                 FileLock lock = lockFile.lock()) {
                for (Library library : libraries) {
                    Path file = directory.resolve(library.fileName());
                    if (!intact(file, library, uid)) {
                        extract(zip, library, file);
                    }
                }
            }
            return directory;
        }
    }

    /** The files directly under {@code directory} in the jar. */
    private static List<Library> libraries(ZipFile zip, String directory) throws IOException {
        List<Library> libraries = new ArrayList<>();
        for (ZipEntry entry : zip.stream().toList()) {
            String name = entry.getName();
            if (!entry.isDirectory() && name.startsWith(directory) && name.indexOf('/', directory.length()) < 0) {
                if (entry.getSize() < 0 || entry.getCrc() < 0) {
                    throw new IOException(name + " in " + zip.getName() + " has no size or CRC-32 to check a copy against");
                }
                libraries.add(new Library(entry, name.substring(directory.length())));
            }
        }
        libraries.sort(Comparator.comparing(Library::fileName));
        return libraries;
    }

    /** The start of the SHA-256 of the libraries' names, sizes and CRC-32s: a new ONNX Runtime build gets a new directory. */
    private static String contentKey(List<Library> libraries) {
        MessageDigest digest;
        try {
            digest = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every JDK has SHA-256", e);
        }
        for (Library library : libraries) {
            digest.update((library.fileName() + " " + library.entry().getSize() + " " + library.entry().getCrc() + "\n")
                    .getBytes(StandardCharsets.UTF_8));
        }
        return HexFormat.of().formatHex(digest.digest()).substring(0, DIGEST_CHARS);
    }

    /** Makes {@code directory} owner-only, or checks that the one already there is this user's alone. */
    private static Path privateDirectory(Path directory, long uid) throws IOException {
        try {
            Files.createDirectory(directory, PosixFilePermissions.asFileAttribute(OWNER_ONLY));
        } catch (FileAlreadyExistsException existing) {
            PosixFileAttributes attributes = Files.readAttributes(directory, PosixFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
            if (!attributes.isDirectory()) {
                throw new UnsafeCacheException(directory + " is not a directory" + (attributes.isSymbolicLink() ? " but a link" : ""));
            }
            long owner = owner(directory);
            if (owner != uid) {
                throw new UnsafeCacheException(directory + " belongs to uid " + owner + ", not to this user (uid " + uid + ")");
            }
            if (writableByOthers(attributes)) {
                throw new UnsafeCacheException(directory + " is writable by others (" + PosixFilePermissions.toString(attributes.permissions()) + ")");
            }
        }
        return directory;
    }

    private static long owner(Path path) throws IOException {
        return Integer.toUnsignedLong((Integer) Files.getAttribute(path, "unix:uid", LinkOption.NOFOLLOW_LINKS));
    }

    private static boolean writableByOthers(PosixFileAttributes attributes) {
        return attributes.permissions().contains(PosixFilePermission.GROUP_WRITE)
                || attributes.permissions().contains(PosixFilePermission.OTHERS_WRITE);
    }

    /** Whether {@code file} is this user's regular file, writable by no one else, with the library's size and CRC-32. */
    private static boolean intact(Path file, Library library, long uid) throws IOException {
        PosixFileAttributes attributes;
        try {
            attributes = Files.readAttributes(file, PosixFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
        } catch (NoSuchFileException absent) {
            return false;
        }
        boolean intact = attributes.isRegularFile()
                && owner(file) == uid
                && !writableByOthers(attributes)
                && attributes.size() == library.entry().getSize();
        if (intact) {
            try (InputStream in = Files.newInputStream(file, LinkOption.NOFOLLOW_LINKS)) {
                intact = crc32(in, OutputStream.nullOutputStream()) == library.entry().getCrc();
            }
        }
        if (!intact) {
            System.getLogger(NativeLibraryCache.class.getName()).log(System.Logger.Level.WARNING,
                    "replacing " + file + ": it is not the library the ONNX Runtime jar holds");
        }
        return intact;
    }

    /** Copies the library next to {@code file}, checks what was written, and renames it onto {@code file}. */
    private static void extract(ZipFile zip, Library library, Path file) throws IOException {
        FileAttribute<Set<PosixFilePermission>> writing = PosixFilePermissions.asFileAttribute(WRITING);
        Path part = Files.createTempFile(file.getParent(), "." + library.fileName() + ".", ".part", writing);
        try {
            long written;
            try (InputStream in = zip.getInputStream(library.entry()); OutputStream out = Files.newOutputStream(part)) {
                written = crc32(in, out);
            }
            if (written != library.entry().getCrc() || Files.size(part) != library.entry().getSize()) {
                throw new IOException(library.entry().getName() + " in " + zip.getName() + " does not match its CRC-32 or size");
            }
            Files.setPosixFilePermissions(part, LIBRARY);
            Files.move(part, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } finally {
            Files.deleteIfExists(part);
        }
    }

    /** Streams {@code in} to {@code out} and returns the CRC-32 of what passed. */
    private static long crc32(InputStream in, OutputStream out) throws IOException {
        CRC32 crc = new CRC32();
        byte[] buffer = new byte[1 << 16];
        for (int n; (n = in.read(buffer)) > 0; ) {
            crc.update(buffer, 0, n);
            out.write(buffer, 0, n);
        }
        return crc.getValue();
    }
}
