// pglocks_key computed in Java with the standard library only.
//
// Prints "key<TAB>pglocks_key" for each argument, or for the specification's
// vectors when given none. Run with `java PglocksKey.java [key...]` (Java 11+).

import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

public final class PglocksKey {
    // Escaped so that the source reads the same whatever encoding javac assumes.
    private static final String[] SPEC_VECTORS = {
        "", "some lock", "orders:42", "Gr\u00fc\u00dfe", "\u65e5\u672c\u8a9e"
    };

    /** The bigint lock that pglocks_acquire(key) takes. */
    public static long pglocksKey(String key) {
        try {
            byte[] digest = MessageDigest.getInstance("SHA-256")
                    .digest(key.getBytes(StandardCharsets.UTF_8));
            return ByteBuffer.wrap(digest, 0, 8).getLong(); // big-endian by default
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java platform has SHA-256", e);
        }
    }

    public static void main(String[] args) {
        // System.out encodes with the platform default, which is ASCII under a C locale.
        PrintStream out = new PrintStream(
                new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);
        String[] keys = args.length > 0 ? args : SPEC_VECTORS;
        for (String key : keys) {
            out.println(key + "\t" + pglocksKey(key));
        }
    }
}
