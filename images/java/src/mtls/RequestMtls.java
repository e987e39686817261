package mtls;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import javax.net.ssl.KeyManager;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

/**
 * request-mtls: the mTLS client of the contract (images/CONTRACT.md) on Java 17's JSSE,
 * JDK classes only, with JSSE's defaults.
 *
 * The KeyManagerFactory is the default (SunX509): it offers the chain only when the
 * CertificateRequest names no CA or names an issuer of one of its certificates
 * (SunX509KeyManagerImpl.getAliases), and sends an empty Certificate otherwise. The
 * TrustManagerFactory is the default (PKIX) over --root-ca, or over the JDK's cacerts
 * without it. The connection is an SSLSocket from that SSLContext's socket factory, layered
 * over a TCP socket connected with a timeout (autoClose), with the host and port and with
 * HTTPS endpoint identification (SSLParameters.setEndpointIdentificationAlgorithm("HTTPS"),
 * the check HttpsURLConnection and java.net.http.HttpClient enable); startHandshake, then
 * one HTTP/1.1 GET, read as far as the response says (Content-Length or chunked).
 *
 * SSLSocket writes each handshake message of a flight as soon as it is produced, so a
 * server that rejects the client's Certificate and closes at once can reset the
 * connection before JSSE reads its alert: the cell shows what a JSSE client gets.
 *
 * On failure: "   Error Code: <exception class/cause classes>" and "Error Message:
 * <getMessage()>" on stderr, exit 1.
 */
public final class RequestMtls {
    static final String USAGE = "usage: request-mtls [--cert FILE --key FILE] [--root-ca FILE] [--url URL]";
    static final int TIMEOUT_MS = 10_000;

    static void report(String code, String message) {
        System.err.println("   Error Code: " + code);
        System.err.println("Error Message: " + message);
        System.exit(1);
    }

    static void report(Throwable e) {
        report(Words.code(e), String.valueOf(e.getMessage()).replace('\n', ' '));
    }

    static byte[] readFile(String path) {
        try {
            return java.nio.file.Files.readAllBytes(java.nio.file.Path.of(path));
        } catch (IOException e) {
            report(e);
            return null;
        }
    }

    public static void main(String[] args) {
        Map<String, String> opts = new LinkedHashMap<>();
        opts.put("url", "https://localhost:9443");
        for (int i = 0; i < args.length; i++) {
            String arg = args[i];
            String value = null;
            int eq = arg.indexOf('=');
            if (arg.startsWith("--") && eq > 0) {
                value = arg.substring(eq + 1);
                arg = arg.substring(0, eq);
            }
            switch (arg) {
                case "--help":
                case "-h":
                    System.out.println(USAGE);
                    System.exit(0);
                    break;
                case "--version":
                    System.out.println(ServerMtls.version());
                    System.exit(0);
                    break;
                case "--cert":
                case "--key":
                case "--root-ca":
                case "--url":
                    if (value == null) {
                        if (i + 1 >= args.length) {
                            System.err.println("request-mtls: " + arg + " needs a value\n" + USAGE);
                            System.exit(2);
                        }
                        value = args[++i];
                    }
                    opts.put(arg.substring(2), value);
                    break;
                default:
                    System.err.println("request-mtls: unknown option " + args[i] + "\n" + USAGE);
                    System.exit(2);
            }
        }
        if (opts.containsKey("cert") != opts.containsKey("key")) {
            System.err.println("request-mtls: missing required option " + (opts.containsKey("cert") ? "--key" : "--cert"));
            System.exit(1);
        }
        URI url = null;
        try {
            url = new URI(opts.get("url"));
        } catch (URISyntaxException e) {
            System.err.println("request-mtls: bad --url: " + e.getMessage());
            System.exit(2);
        }
        if (!"https".equals(url.getScheme()) || url.getHost() == null) {
            System.err.println("request-mtls: --url must be https://HOST[:PORT][/PATH]");
            System.exit(2);
        }
        String host = url.getHost();
        int port = url.getPort() > 0 ? url.getPort() : 443;
        String path = url.getRawPath() == null || url.getRawPath().isEmpty() ? "/" : url.getRawPath();
        if (url.getRawQuery() != null) {
            path += "?" + url.getRawQuery();
        }

        SSLContext context;
        try {
            KeyManager[] keyManagers = null; // no --cert: JSSE's empty key manager, no certificate
            if (opts.containsKey("cert")) {
                byte[] certPem = readFile(opts.get("cert"));
                byte[] keyPem = readFile(opts.get("key"));
                KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
                kmf.init(Pem.keyStore(Pem.privateKey(keyPem), Pem.certificates(certPem)), Pem.PASSWORD);
                keyManagers = kmf.getKeyManagers();
            }
            TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            if (opts.containsKey("root-ca")) {
                tmf.init(Pem.trustStore(Pem.certificates(readFile(opts.get("root-ca")))));
            } else {
                tmf.init((java.security.KeyStore) null); // the JDK's cacerts
            }
            context = SSLContext.getInstance("TLS");
            context.init(keyManagers, tmf.getTrustManagers(), null);
        } catch (GeneralSecurityException e) {
            report(e);
            return;
        }

        String authority = url.getPort() > 0 ? host + ":" + port : host;
        byte[] request = ("GET " + path + " HTTP/1.1\r\nHost: " + authority + "\r\nUser-Agent: request-mtls (Java "
                + Runtime.version().feature() + " JSSE)\r\nAccept: */*\r\nConnection: close\r\n\r\n")
                .getBytes(StandardCharsets.US_ASCII);
        byte[] body;
        Socket plain = new Socket();
        try (SSLSocket socket = (SSLSocket) context.getSocketFactory().createSocket(connect(plain, host, port), host,
                port, true)) {
            SSLParameters params = socket.getSSLParameters();
            params.setEndpointIdentificationAlgorithm("HTTPS");
            socket.setSSLParameters(params);
            socket.startHandshake();
            OutputStream out = socket.getOutputStream();
            out.write(request);
            out.flush();
            body = readResponse(socket.getInputStream());
        } catch (IOException | RuntimeException e) {
            report(e);
            return;
        } finally {
            try {
                plain.close(); // already closed with the SSLSocket (autoClose), unless creating it failed
            } catch (IOException e) {
                // nothing to do
            }
        }
        System.out.write(body, 0, body.length);
        System.out.flush();
        System.exit(0);
    }

    /** The TCP connection under the SSLSocket, with the timeouts of TIMEOUT_MS. */
    static Socket connect(Socket plain, String host, int port) throws IOException {
        plain.connect(new InetSocketAddress(host, port), TIMEOUT_MS);
        plain.setSoTimeout(TIMEOUT_MS);
        return plain;
    }

    /** The body of an HTTP/1.1 response (Content-Length, chunked, or until the connection ends). */
    static byte[] readResponse(InputStream in) throws IOException {
        String status = line(in);
        if (status == null) {
            throw new java.io.EOFException("the server closed the connection without an HTTP response");
        }
        long length = -1;
        boolean chunked = false;
        for (String header = line(in); header != null && !header.isEmpty(); header = line(in)) {
            int colon = header.indexOf(':');
            if (colon < 0) {
                continue;
            }
            String name = header.substring(0, colon).trim().toLowerCase(Locale.ROOT);
            String value = header.substring(colon + 1).trim();
            if (name.equals("content-length")) {
                length = Long.parseLong(value);
            } else if (name.equals("transfer-encoding") && value.toLowerCase(Locale.ROOT).contains("chunked")) {
                chunked = true;
            }
        }
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        if (chunked) {
            while (true) {
                String size = line(in);
                if (size == null) {
                    break;
                }
                int semi = size.indexOf(';');
                long n = Long.parseLong((semi >= 0 ? size.substring(0, semi) : size).trim(), 16);
                if (n == 0) {
                    break;
                }
                copy(in, body, n);
                line(in);
            }
        } else if (length >= 0) {
            copy(in, body, length);
        } else {
            in.transferTo(body);
        }
        return body.toByteArray();
    }

    static void copy(InputStream in, ByteArrayOutputStream out, long n) throws IOException {
        byte[] buffer = new byte[8192];
        while (n > 0) {
            int got = in.read(buffer, 0, (int) Math.min(buffer.length, n));
            if (got < 0) {
                throw new java.io.EOFException("the response body ended early");
            }
            out.write(buffer, 0, got);
            n -= got;
        }
    }

    /** One CRLF- (or LF-) terminated line, or null at the end of the stream. */
    static String line(InputStream in) throws IOException {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        int b;
        while ((b = in.read()) >= 0) {
            if (b == '\n') {
                break;
            }
            buf.write(b);
        }
        if (b < 0 && buf.size() == 0) {
            return null;
        }
        String s = buf.toString(StandardCharsets.ISO_8859_1);
        return s.endsWith("\r") ? s.substring(0, s.length() - 1) : s;
    }
}
