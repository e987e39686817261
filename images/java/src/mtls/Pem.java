package mtls;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.CRL;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Keys and certificates from PEM files, the way a JSSE user loads them in Java 17 (no
 * external library): CertificateFactory reads PEM certificates and CRLs itself; a PKCS#8
 * "PRIVATE KEY" is base64-decoded and handed to a KeyFactory; the chain and key become
 * an in-memory KeyStore for the default KeyManagerFactory, and the trusted certificates a
 * KeyStore of trusted entries for the default TrustManagerFactory.
 *
 * The in-memory KeyStores are JKS: a PKCS12 KeyStore encrypts the key on setKeyEntry and
 * decrypts it again for the KeyManagerFactory with PBKDF2 (10,000 iterations each way),
 * which costs a one-shot JVM a few hundred milliseconds of CPU; JKS protects it with a
 * cheap scheme. The KeyManager gets the same key and chain either way.
 */
final class Pem {
    /** A password for the in-memory KeyStore only (KeyManagerFactory.init needs one). */
    static final char[] PASSWORD = "changeit".toCharArray();

    private static final Pattern PKCS8 = Pattern.compile(
            "-----BEGIN PRIVATE KEY-----([A-Za-z0-9+/=\\s]+)-----END PRIVATE KEY-----");
    private static final String[] KEY_ALGORITHMS = {"EC", "RSA", "RSASSA-PSS", "EdDSA", "DSA"};

    private Pem() {}

    /** A file the user named, or null when it cannot be read. */
    static byte[] read(String path) {
        try {
            return Files.readAllBytes(Path.of(path));
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }

    static List<X509Certificate> certificates(byte[] pem) throws GeneralSecurityException {
        Collection<? extends Certificate> found =
                CertificateFactory.getInstance("X.509").generateCertificates(new ByteArrayInputStream(pem));
        List<X509Certificate> certs = new ArrayList<>();
        for (Certificate c : found) {
            certs.add((X509Certificate) c);
        }
        if (certs.isEmpty()) {
            throw new GeneralSecurityException("no PEM certificate found");
        }
        return certs;
    }

    static Collection<? extends CRL> crls(byte[] pem) throws GeneralSecurityException {
        Collection<? extends CRL> found =
                CertificateFactory.getInstance("X.509").generateCRLs(new ByteArrayInputStream(pem));
        if (found.isEmpty()) {
            throw new GeneralSecurityException("no PEM CRL found");
        }
        return found;
    }

    /** A PKCS#8 PEM key: the only PEM key form Java 17 reads without another library. */
    static PrivateKey privateKey(byte[] pem) throws GeneralSecurityException {
        Matcher m = PKCS8.matcher(new String(pem, StandardCharsets.US_ASCII));
        if (!m.find()) {
            throw new GeneralSecurityException(
                    "no \"BEGIN PRIVATE KEY\" (PKCS#8) block: Java 17 reads PKCS#8 PEM keys only");
        }
        byte[] der = Base64.getMimeDecoder().decode(m.group(1));
        GeneralSecurityException last = null;
        for (String algorithm : KEY_ALGORITHMS) {
            try {
                return KeyFactory.getInstance(algorithm).generatePrivate(new PKCS8EncodedKeySpec(der));
            } catch (GeneralSecurityException e) {
                last = e;
            }
        }
        throw new GeneralSecurityException("no KeyFactory accepts the key", last);
    }

    /** An in-memory KeyStore holding the chain and its key under one alias. */
    static KeyStore keyStore(PrivateKey key, List<X509Certificate> chain) throws GeneralSecurityException {
        try {
            KeyStore ks = KeyStore.getInstance("JKS");
            ks.load(null, null);
            ks.setKeyEntry("mtls", key, PASSWORD, chain.toArray(new X509Certificate[0]));
            return ks;
        } catch (IOException e) {
            throw new GeneralSecurityException(e);
        }
    }

    /** An in-memory KeyStore of trusted certificate entries (the --root-ca file). */
    static KeyStore trustStore(List<X509Certificate> roots) throws GeneralSecurityException {
        try {
            KeyStore ks = KeyStore.getInstance("JKS");
            ks.load(null, null);
            int i = 0;
            for (X509Certificate root : roots) {
                ks.setCertificateEntry("ca-" + i++, root);
            }
            return ks;
        } catch (IOException e) {
            throw new GeneralSecurityException(e);
        }
    }
}
