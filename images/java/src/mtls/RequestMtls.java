package mtls;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import javax.net.ssl.KeyManager;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLEngineResult;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSession;
import javax.net.ssl.TrustManagerFactory;

/**
 * request-mtls: the mTLS client of the contract (images/CONTRACT.md) on Java 17's JSSE,
 * JDK classes only, with JSSE's defaults.
 *
 * The KeyManagerFactory is the default (SunX509): it offers the chain only when the
 * CertificateRequest names no CA or names an issuer of one of its certificates
 * (SunX509KeyManagerImpl.getAliases), and sends an empty Certificate otherwise. The
 * TrustManagerFactory is the default (PKIX) over --root-ca, or over the JDK's cacerts
 * without it. The connection is JSSE's SSLEngine from that SSLContext, created with the
 * host and port, with HTTPS endpoint identification
 * (SSLParameters.setEndpointIdentificationAlgorithm("HTTPS"), the check HttpsURLConnection
 * and java.net.http.HttpClient enable), driven over a TCP socket (see Connection for why
 * not an SSLSocket), then one HTTP/1.1 GET.
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
        for (Throwable earlier : e.getSuppressed()) {
            // e.g. the write that failed before the server's alert was read
            System.err.println("      Earlier: " + Words.describe(earlier));
        }
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
        try (Socket socket = new Socket()) {
            socket.connect(new InetSocketAddress(host, port), TIMEOUT_MS);
            socket.setSoTimeout(TIMEOUT_MS);
            SSLEngine engine = context.createSSLEngine(host, port);
            engine.setUseClientMode(true);
            SSLParameters params = engine.getSSLParameters();
            params.setEndpointIdentificationAlgorithm("HTTPS");
            engine.setSSLParameters(params);
            byte[] response = new Connection(socket, engine).exchange(request);
            System.out.write(readResponse(new java.io.ByteArrayInputStream(response)));
            System.out.flush();
            System.exit(0);
        } catch (IOException | RuntimeException e) {
            report(e);
        }
    }

    /**
     * One TLS connection driven through JSSE's SSLEngine over a blocking socket, the loop
     * of the JSSE Reference Guide's SSLEngine section: wrap until the engine needs the
     * peer, send what it produced, read and unwrap until it needs to send again.
     *
     * Why SSLEngine and not SSLSocket: SSLSocket writes each handshake message of a flight
     * with its own write() as soon as it is produced (handshakeOutput.flush() after
     * Certificate, ClientKeyExchange, CertificateVerify, Finished), with the key exchange
     * and the signature computed in between. A server that rejects the Certificate at
     * once and closes with the rest unread resets the connection, and SSLSocket's next
     * write fails with "Broken pipe" or "Connection reset" before it ever reads the alert
     * the server sent: the verdict would depend on the race. Here the flight leaves in
     * one write, and when a write fails the loop still reads what the server sent, so
     * JSSE itself decodes the server's alert. Certificate choice, verification and
     * alerts are JSSE's own either way (SSLEngineImpl and SSLSocketImpl share the
     * handshake code).
     */
    static final class Connection {
        private final SSLEngine engine;
        private final InputStream in;
        private final OutputStream out;
        private ByteBuffer netIn;
        private ByteBuffer netOut;
        private ByteBuffer appIn;
        private IOException writeFailure;
        private boolean eof;

        Connection(Socket socket, SSLEngine engine) throws IOException {
            this.engine = engine;
            this.in = socket.getInputStream();
            this.out = socket.getOutputStream();
            SSLSession session = engine.getSession();
            netIn = ByteBuffer.allocate(session.getPacketBufferSize());
            netOut = ByteBuffer.allocate(session.getPacketBufferSize());
            appIn = ByteBuffer.allocate(session.getApplicationBufferSize());
        }

        /** The handshake, the request, and every byte of the response until the server ends it. */
        byte[] exchange(byte[] request) throws IOException {
            try {
                return run(request);
            } catch (SSLException e) {
                // Send the alert JSSE queued for the server (an SSLSocket sends it too).
                try {
                    for (int i = 0; i < 4; i++) {
                        SSLEngineResult r = engine.wrap(ByteBuffer.allocate(0), grow());
                        send();
                        if (r.bytesProduced() == 0) {
                            break;
                        }
                    }
                } catch (IOException | RuntimeException ignored) {
                    // nothing more to say to the server
                }
                throw e;
            }
        }

        private byte[] run(byte[] request) throws IOException {
            engine.beginHandshake();
            drive();
            ByteBuffer app = ByteBuffer.wrap(request);
            while (app.hasRemaining()) {
                SSLEngineResult r = engine.wrap(app, grow());
                runTasks(r);
            }
            send();
            ByteArrayOutputStream response = new ByteArrayOutputStream();
            while (!engine.isInboundDone()) {
                if (!unwrapOnce()) {
                    if (response.size() > 0) {
                        break; // the server ended the response by closing (readResponse checks it is whole)
                    }
                    throw endOfStream();
                }
                appIn.flip();
                response.write(appIn.array(), appIn.position(), appIn.remaining());
                appIn.clear();
                drive(); // a post-handshake message (KeyUpdate) may need an answer
                if (complete(response.toByteArray())) {
                    break;
                }
            }
            return response.toByteArray();
        }

        /** Runs the engine until it is not handshaking: the whole of the initial handshake. */
        private void drive() throws IOException {
            while (true) {
                switch (engine.getHandshakeStatus()) {
                    case NEED_WRAP: {
                        SSLEngineResult r = engine.wrap(ByteBuffer.allocate(0), grow());
                        runTasks(r);
                        if (engine.getHandshakeStatus() != SSLEngineResult.HandshakeStatus.NEED_WRAP
                                || r.getStatus() == SSLEngineResult.Status.CLOSED) {
                            send();
                        }
                        if (r.getStatus() == SSLEngineResult.Status.CLOSED) {
                            return;
                        }
                        break;
                    }
                    case NEED_UNWRAP:
                    case NEED_UNWRAP_AGAIN:
                        send();
                        if (!unwrapOnce()) {
                            throw endOfStream();
                        }
                        break;
                    case NEED_TASK:
                        runTasks(null);
                        break;
                    default: // FINISHED, NOT_HANDSHAKING
                        send();
                        return;
                }
            }
        }

        /** Unwraps one record (reading as needed); false at the end of the stream. */
        private boolean unwrapOnce() throws IOException {
            while (true) {
                netIn.flip();
                SSLEngineResult r;
                try {
                    r = engine.unwrap(netIn, appIn);
                } finally {
                    netIn.compact();
                }
                runTasks(r);
                switch (r.getStatus()) {
                    case OK:
                    case CLOSED:
                        if (r.bytesConsumed() > 0 || r.getStatus() == SSLEngineResult.Status.CLOSED) {
                            return true;
                        }
                        break;
                    case BUFFER_OVERFLOW: {
                        ByteBuffer bigger = ByteBuffer.allocate(appIn.capacity() * 2);
                        appIn.flip();
                        bigger.put(appIn);
                        appIn = bigger;
                        continue;
                    }
                    case BUFFER_UNDERFLOW:
                        if (netIn.remaining() == 0) {
                            ByteBuffer bigger = ByteBuffer.allocate(netIn.capacity() * 2);
                            netIn.flip();
                            bigger.put(netIn);
                            netIn = bigger;
                        }
                        break;
                    default:
                        break;
                }
                if (!fill()) {
                    return false;
                }
            }
        }

        /** Reads what the socket has into netIn; false at the end of the stream. */
        private boolean fill() throws IOException {
            if (eof) {
                return false;
            }
            int n;
            try {
                n = in.read(netIn.array(), netIn.arrayOffset() + netIn.position(), netIn.remaining());
            } catch (IOException e) {
                if (writeFailure != null) {
                    e.addSuppressed(writeFailure);
                }
                throw e;
            }
            if (n < 0) {
                eof = true;
                return false;
            }
            netIn.position(netIn.position() + n);
            return true;
        }

        /** Writes what the engine produced. A failed write is remembered; reading goes on. */
        private void send() {
            netOut.flip();
            try {
                if (netOut.hasRemaining() && writeFailure == null) {
                    out.write(netOut.array(), netOut.arrayOffset() + netOut.position(), netOut.remaining());
                    out.flush();
                }
            } catch (IOException e) {
                writeFailure = e;
            } finally {
                netOut.clear();
            }
        }

        /** netOut with room for one more record. */
        private ByteBuffer grow() {
            int packet = engine.getSession().getPacketBufferSize();
            if (netOut.remaining() < packet) {
                ByteBuffer bigger = ByteBuffer.allocate(netOut.capacity() + packet);
                netOut.flip();
                bigger.put(netOut);
                netOut = bigger;
            }
            return netOut;
        }

        private void runTasks(SSLEngineResult r) {
            if (r != null && r.getHandshakeStatus() != SSLEngineResult.HandshakeStatus.NEED_TASK) {
                return;
            }
            Runnable task;
            while ((task = engine.getDelegatedTask()) != null) {
                task.run();
            }
        }

        /**
         * The server ended the stream. JSSE's own words for it: SSLEngine.closeInbound()'s
         * SSLException when the connection was not closed with close_notify; a write that
         * failed before (the server had already gone) is kept as its suppressed exception.
         */
        private IOException endOfStream() {
            try {
                engine.closeInbound();
            } catch (SSLException e) {
                e.initCause(new java.io.EOFException("the server closed the connection"));
                if (writeFailure != null) {
                    e.addSuppressed(writeFailure);
                }
                return e;
            }
            if (writeFailure != null) {
                return writeFailure;
            }
            return new java.io.EOFException("the server closed the connection without an HTTP response");
        }
    }

    /** Whether bytes hold a whole HTTP/1.1 response (by Content-Length or chunked end). */
    static boolean complete(byte[] bytes) {
        String text = new String(bytes, StandardCharsets.ISO_8859_1);
        int head = text.indexOf("\r\n\r\n");
        if (head < 0) {
            return false;
        }
        String lower = text.substring(0, head).toLowerCase(Locale.ROOT);
        int cl = lower.indexOf("\r\ncontent-length:");
        if (cl >= 0) {
            int eol = lower.indexOf("\r\n", cl + 2);
            String value = lower.substring(cl + 17, eol < 0 ? lower.length() : eol).trim();
            try {
                return bytes.length - (head + 4) >= Long.parseLong(value);
            } catch (NumberFormatException e) {
                return false;
            }
        }
        if (lower.contains("\r\ntransfer-encoding:") && lower.contains("chunked")) {
            return text.endsWith("\r\n0\r\n\r\n");
        }
        return false;
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
