package mtls;

import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.CRL;
import java.security.cert.CertStore;
import java.security.cert.CertificateException;
import java.security.cert.CollectionCertStoreParameters;
import java.security.cert.PKIXBuilderParameters;
import java.security.cert.X509CertSelector;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.WeakHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import javax.naming.InvalidNameException;
import javax.naming.ldap.LdapName;
import javax.naming.ldap.Rdn;
import javax.net.ssl.CertPathTrustManagerParameters;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLPeerUnverifiedException;
import javax.net.ssl.SSLSession;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509ExtendedTrustManager;

/**
 * server-mtls: the mTLS server of the contract (images/CONTRACT.md) on Java 17's JSSE
 * (SunJSSE), JDK classes only.
 *
 * Keys and trust come from PEM files into in-memory KeyStores (Pem); the KeyManagerFactory
 * and TrustManagerFactory are the defaults (SunX509 and PKIX); without --root-ca the
 * TrustManagerFactory is initialised with a null KeyStore, i.e. the JDK's cacerts. The
 * listener hands each accepted TCP socket to JSSE's server-mode SSLSocket (see serve()).
 *
 * Report mode (the default) is setWantClientAuth(true) with the default X509TrustManager
 * wrapped: its checkClientTrusted runs unchanged and a CertificateException it throws is
 * recorded for the connection instead of failing the handshake; the body's reason is that
 * exception (class, CertPathValidatorException reason, message, causes). No certificate:
 * SSLSession.getPeerCertificates' SSLPeerUnverifiedException.
 *
 * --require is setNeedClientAuth(true) with the default trust manager: JSSE's own
 * verification, in the handshake, with JSSE's own alert.
 *
 * --crl is the documented PKIX route: PKIXBuilderParameters over the trust store with
 * revocation enabled and a Collection CertStore of the CRLs, handed to the PKIX
 * TrustManagerFactory as CertPathTrustManagerParameters.
 *
 * --auth-path PATH (TLS 1.2 only): the first handshake asks for no certificate; a request
 * for PATH renegotiates the way SSLSocket.startHandshake()'s documentation says: the current
 * session invalidated ("to force complete reauthentication"), setWantClientAuth(true) (or
 * setNeedClientAuth(true) with --require), startHandshake() (a HelloRequest); the new
 * handshake is read as the socket reads, and its end is signalled by a
 * HandshakeCompletedEvent. The body then reports that handshake's certificate as report mode
 * does. Session tickets keep JSSE's default (jdk.tls.server.enableSessionTicketExtension
 * true), so a client that offers the first handshake's ticket resumes that session under
 * setWantClientAuth and is asked for no certificate (images/java/impl.toml, [[expect]]
 * per-path-client-auth). JSSE has no TLS 1.3 post-handshake authentication, so TLS 1.3
 * exits 127.
 *
 * SSLKEYLOGFILE: JSSE has no key log; it is ignored.
 */
public final class ServerMtls {
    static final String USAGE =
            "usage: server-mtls --cert FILE --key FILE [--root-ca FILE] [--require] [--tls-max 1.2|1.3] [--crl FILE] [--ca-names FILE|none] [--auth-path PATH] [--port N]";
    static final int DEADLINE_MS = 10_000;
    /** How often the reader looks whether a renegotiation has completed (--auth-path). */
    static final int POLL_MS = 50;
    /** Why --auth-path cannot be honoured in TLS 1.3 (exit 127). Sources: openjdk-17-source 17.0.21.1+2-1~deb12u1. */
    static final String PHA_UNSUPPORTED = "--auth-path in TLS 1.3 is not supported: JSSE (OpenJDK 17) does not implement TLS 1.3 "
            + "post-handshake authentication: sun/security/ssl/SSLExtension.java#L409 declares post_handshake_auth with no "
            + "producer or consumer, a server's PostHandshakeContext consumes only KeyUpdate "
            + "(sun/security/ssl/PostHandshakeContext.java#L57-L61), and SSLSocket.startHandshake() on an established "
            + "TLS 1.3 connection sends a KeyUpdate, never a CertificateRequest (sun/security/ssl/SSLHandshake.java#L538-L542); "
            + "JEP 332 (https://openjdk.org/jeps/332) lists no post-handshake authentication";
    static final PrintStream OUT = new PrintStream(System.out, true, StandardCharsets.UTF_8);

    static synchronized void log(String line) {
        OUT.println(line);
    }

    static void fail(int code, String message) {
        System.err.println("server-mtls: " + message);
        System.exit(code);
    }

    static byte[] readFile(String path, String flag) {
        byte[] data = Pem.read(path);
        if (data == null) {
            fail(2, "cannot read --" + flag + " " + path);
        }
        return data;
    }

    /**
     * The default X509ExtendedTrustManager, unchanged, except that a client chain it
     * refuses is remembered for its socket instead of failing the handshake (report mode).
     */
    static final class RecordingTrustManager extends X509ExtendedTrustManager {
        private final X509ExtendedTrustManager delegate;
        private final Map<Socket, CertificateException> failures = Collections.synchronizedMap(new WeakHashMap<>());

        RecordingTrustManager(X509ExtendedTrustManager delegate) {
            this.delegate = delegate;
        }

        CertificateException take(Socket socket) {
            return failures.remove(socket);
        }

        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket) {
            try {
                delegate.checkClientTrusted(chain, authType, socket);
            } catch (CertificateException e) {
                failures.put(socket, e);
            }
        }

        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
                throws CertificateException {
            delegate.checkClientTrusted(chain, authType, engine);
        }

        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType) throws CertificateException {
            delegate.checkClientTrusted(chain, authType);
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket)
                throws CertificateException {
            delegate.checkServerTrusted(chain, authType, socket);
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
                throws CertificateException {
            delegate.checkServerTrusted(chain, authType, engine);
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType) throws CertificateException {
            delegate.checkServerTrusted(chain, authType);
        }

        @Override
        public X509Certificate[] getAcceptedIssuers() {
            return delegate.getAcceptedIssuers();
        }
    }

    static String commonName(X509Certificate cert) {
        try {
            String cn = null;
            for (Rdn rdn : new LdapName(cert.getSubjectX500Principal().getName()).getRdns()) {
                if (rdn.getType().equalsIgnoreCase("CN")) {
                    cn = rdn.getValue().toString();
                }
            }
            return cn == null ? "" : cn;
        } catch (InvalidNameException e) {
            return "";
        }
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> opts = new LinkedHashMap<>();
        boolean require = false;
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
                    System.out.println(version());
                    System.exit(0);
                    break;
                case "--require":
                    require = true;
                    break;
                case "--cert":
                case "--key":
                case "--root-ca":
                case "--tls-max":
                case "--crl":
                case "--ca-names":
                case "--auth-path":
                case "--port":
                    if (value == null) {
                        if (i + 1 >= args.length) {
                            fail(2, arg + " needs a value\n" + USAGE);
                        }
                        value = args[++i];
                    }
                    opts.put(arg.substring(2), value);
                    break;
                default:
                    fail(2, "unknown option " + args[i] + "\n" + USAGE);
            }
        }
        if (opts.containsKey("ca-names")) {
            fail(127, "--ca-names is not supported: JSSE has no setting for the CertificateRequest's CA names; "
                    + "it lists the subjects of the X509TrustManager's getAcceptedIssuers(), i.e. the trusted CAs "
                    + "(sun/security/ssl/CertificateRequest.java, T12CertificateRequestProducer; "
                    + "CertificateAuthoritiesExtension.java for TLS 1.3)");
        }
        if (!opts.containsKey("cert")) {
            fail(1, "missing required option --cert");
        }
        if (!opts.containsKey("key")) {
            fail(1, "missing required option --key");
        }
        String tlsMax = opts.get("tls-max");
        if (tlsMax != null && !tlsMax.equals("1.2") && !tlsMax.equals("1.3")) {
            fail(2, "--tls-max must be 1.2 or 1.3, got " + tlsMax);
        }
        String authPath = opts.get("auth-path");
        if (authPath != null && !authPath.startsWith("/")) {
            fail(2, "--auth-path must be a path starting with /, got \"" + authPath + "\"");
        }
        if (authPath != null && !"1.2".equals(tlsMax)) {
            fail(127, PHA_UNSUPPORTED);
        }
        int port = 9443;
        if (opts.containsKey("port")) {
            try {
                port = Integer.parseInt(opts.get("port"));
            } catch (NumberFormatException e) {
                port = -1;
            }
            if (port <= 0 || port > 65535) {
                fail(2, "--port must be 1-65535, got " + opts.get("port"));
            }
        }

        byte[] certPem = readFile(opts.get("cert"), "cert");
        byte[] keyPem = readFile(opts.get("key"), "key");
        byte[] rootPem = opts.containsKey("root-ca") ? readFile(opts.get("root-ca"), "root-ca") : null;
        byte[] crlPem = opts.containsKey("crl") ? readFile(opts.get("crl"), "crl") : null;

        SSLContext context = SSLContext.getInstance("TLS");
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        try {
            kmf.init(Pem.keyStore(Pem.privateKey(keyPem), Pem.certificates(certPem)), Pem.PASSWORD);
        } catch (GeneralSecurityException e) {
            fail(2, "cannot use --cert " + opts.get("cert") + " / --key " + opts.get("key") + ": " + Words.describe(e));
        }

        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        KeyStore trust = null;
        if (rootPem != null) {
            try {
                trust = Pem.trustStore(Pem.certificates(rootPem));
            } catch (GeneralSecurityException e) {
                fail(2, "cannot use --root-ca " + opts.get("root-ca") + ": " + Words.describe(e));
            }
        }
        if (crlPem != null) {
            try {
                if (trust == null) {
                    // The trust a null KeyStore gives: the JDK's cacerts.
                    trust = KeyStore.getInstance(KeyStore.getDefaultType());
                    try (InputStream in = java.nio.file.Files.newInputStream(
                            Path.of(System.getProperty("java.home"), "lib", "security", "cacerts"))) {
                        trust.load(in, null);
                    }
                }
                Collection<? extends CRL> crls = Pem.crls(crlPem);
                PKIXBuilderParameters params = new PKIXBuilderParameters(trust, new X509CertSelector());
                params.setRevocationEnabled(true);
                params.addCertStore(CertStore.getInstance("Collection", new CollectionCertStoreParameters(crls)));
                tmf.init(new CertPathTrustManagerParameters(params));
            } catch (GeneralSecurityException | IOException e) {
                fail(2, "cannot use --crl " + opts.get("crl") + ": " + Words.describe(e));
            }
        } else {
            tmf.init(trust); // null: the JDK's default trust store (cacerts)
        }
        X509ExtendedTrustManager defaultTm = null;
        for (TrustManager tm : tmf.getTrustManagers()) {
            if (tm instanceof X509ExtendedTrustManager) {
                defaultTm = (X509ExtendedTrustManager) tm;
            }
        }
        RecordingTrustManager recorder = require ? null : new RecordingTrustManager(defaultTm);
        context.init(kmf.getKeyManagers(), new TrustManager[] {require ? defaultTm : recorder}, null);

        ServerSocket listener = new ServerSocket();
        try {
            listener.bind(new InetSocketAddress(port), 128);
        } catch (IOException e) {
            fail(1, "cannot listen on port " + port + ": " + Words.describe(e));
        }
        log("Example mTLS app listening at https://localhost:" + port);

        SSLSocketFactory factory = context.getSocketFactory();
        ExecutorService pool = Executors.newCachedThreadPool();
        boolean requireMode = require;
        boolean tls12 = "1.2".equals(tlsMax);
        while (true) {
            Socket raw = listener.accept();
            pool.execute(() -> serve(raw, factory, recorder, requireMode, tls12, authPath));
        }
    }

    /**
     * One connection. The TLS socket is JSSE's server-mode socket layered over the accepted
     * TCP socket with autoClose (SSLSocketFactory.createSocket(socket, null, true)): the same
     * SSLSocketImpl with the same defaults an SSLServerSocket hands out, and the same close
     * (see close()).
     */
    static void serve(Socket raw, SSLSocketFactory factory, RecordingTrustManager recorder, boolean require,
            boolean tls12, String authPath) {
        Socket open = raw;
        try {
            raw.setSoTimeout(DEADLINE_MS);
            SSLSocket socket = (SSLSocket) factory.createSocket(raw, null, true);
            open = socket;
            if (authPath != null) {
                // Neither want nor need (JSSE's default): no CertificateRequest in this handshake.
                socket.setWantClientAuth(false);
            } else if (require) {
                socket.setNeedClientAuth(true);
            } else {
                socket.setWantClientAuth(true);
            }
            if (tls12) {
                List<String> protocols = new ArrayList<>();
                for (String p : socket.getEnabledProtocols()) {
                    if (!p.equals("TLSv1.3")) {
                        protocols.add(p);
                    }
                }
                socket.setEnabledProtocols(protocols.toArray(new String[0]));
            }
            try {
                socket.startHandshake();
            } catch (IOException e) {
                // JSSE has sent its alert (TransportContext.fatal).
                log("handshake-failed " + Words.describe(e));
                return;
            }
            if (authPath != null) {
                serveAuthPath(socket, recorder, require, authPath);
                return;
            }
            SSLSession session = socket.getSession();
            String subject = "none";
            String reason = null;
            try {
                X509Certificate leaf = (X509Certificate) session.getPeerCertificates()[0];
                subject = "\"" + commonName(leaf) + "\"";
            } catch (SSLPeerUnverifiedException e) {
                // JSSE's own words for "no client certificate" (optional client auth).
                reason = Words.describe(e);
            }
            if (recorder != null) {
                CertificateException failure = recorder.take(socket);
                if (failure != null) {
                    reason = Words.describe(failure);
                }
            }
            String line = "handshake " + session.getProtocol() + " subject=" + subject;
            String body;
            if (reason == null) {
                line += " authorized=true";
                body = "{\"mTLSValid\": true}\n";
            } else {
                line += " authorized=false reason=" + reason;
                body = "{\"mTLSValid\": false, \"reason\": " + Words.json(reason) + "}\n";
            }
            log(line);
            readRequest(socket.getInputStream());
            respond(socket, body);
        } catch (IOException | RuntimeException e) {
            log("connection-error " + Words.describe(e));
        } finally {
            close(open);
        }
    }

    /** Writes the response and closes the TLS side (close_notify, as SSLSocket.close() sends it). */
    static void respond(SSLSocket socket, String body) throws IOException {
        byte[] content = body.getBytes(StandardCharsets.UTF_8);
        OutputStream out = socket.getOutputStream();
        out.write(("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + content.length
                + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        out.write(content);
        out.flush();
        socket.shutdownOutput();
    }

    /**
     * --auth-path: the request decides. Another path gets report mode's body for "no
     * certificate" (the SSLPeerUnverifiedException of a session without one); PATH
     * renegotiates for the certificate first (TLS 1.2).
     */
    static void serveAuthPath(SSLSocket socket, RecordingTrustManager recorder, boolean require, String authPath)
            throws IOException {
        SSLSession first = socket.getSession();
        String protocol = first.getProtocol();
        log("handshake " + protocol + " client-certificate=not-requested");
        String path = requestPath(readRequest(socket.getInputStream()));
        String body;
        if (!path.equals(authPath)) {
            String reason = "no certificate";
            try {
                first.getPeerCertificates();
            } catch (SSLPeerUnverifiedException e) {
                reason = Words.describe(e);
            }
            log("request " + Words.json(path) + " " + protocol + " subject=none authorized=false reason=" + reason
                    + " (certificate not asked for)");
            body = "{\"mTLSValid\": false, \"reason\": " + Words.json(reason) + "}\n";
        } else {
            log("request " + Words.json(path) + " renegotiate");
            CountDownLatch completed = new CountDownLatch(1);
            socket.addHandshakeCompletedListener(event -> completed.countDown());
            // SSLSocket.startHandshake()'s documentation: "To force complete reauthentication,
            // the current session could be invalidated before starting this handshake."
            // (https://docs.oracle.com/en/java/javase/17/docs/api/java.base/javax/net/ssl/SSLSocket.html#startHandshake())
            first.invalidate();
            if (require) {
                socket.setNeedClientAuth(true);
            } else {
                socket.setWantClientAuth(true);
            }
            try {
                socket.startHandshake(); // an established TLS 1.2 connection: a HelloRequest
                awaitHandshake(socket, completed);
            } catch (SSLException e) {
                // JSSE has sent its alert (--require: no or a refused certificate).
                log("renegotiation-failed " + Words.describe(e));
                return;
            }
            body = report(socket, recorder, "renegotiated");
        }
        respond(socket, body);
    }

    /**
     * Reads until the renegotiation's HandshakeCompletedEvent: JSSE handles the client's
     * handshake records inside SSLSocket reads, so the reader polls (a read timeout leaves
     * an SSLSocket usable: SSLSocketInputRecord keeps a partial record) until the listener
     * has run. Application data instead (a client that ignored the HelloRequest): stop and
     * answer with the session there is.
     */
    static void awaitHandshake(SSLSocket socket, CountDownLatch completed) throws IOException {
        InputStream in = socket.getInputStream();
        long end = System.nanoTime() + DEADLINE_MS * 1_000_000L;
        socket.setSoTimeout(POLL_MS);
        try {
            while (completed.getCount() > 0) {
                if (System.nanoTime() > end) {
                    throw new SocketTimeoutException("no renegotiation within " + DEADLINE_MS + " ms");
                }
                try {
                    if (in.read() < 0) {
                        throw new EOFException("the client closed the connection instead of renegotiating");
                    }
                    log("renegotiation-ignored application data arrived instead");
                    return;
                } catch (SocketTimeoutException e) {
                    // look again
                }
            }
        } finally {
            socket.setSoTimeout(DEADLINE_MS);
        }
    }

    /** Report mode's log line and body for the socket's current session. */
    static String report(SSLSocket socket, RecordingTrustManager recorder, String event) {
        SSLSession session = socket.getSession();
        String subject = "none";
        String reason = null;
        try {
            X509Certificate leaf = (X509Certificate) session.getPeerCertificates()[0];
            subject = "\"" + commonName(leaf) + "\"";
        } catch (SSLPeerUnverifiedException e) {
            reason = Words.describe(e);
        }
        if (recorder != null) {
            CertificateException failure = recorder.take(socket);
            if (failure != null) {
                reason = Words.describe(failure);
            }
        }
        String line = event + " " + session.getProtocol() + " subject=" + subject;
        if (reason == null) {
            log(line + " authorized=true");
            return "{\"mTLSValid\": true}\n";
        }
        log(line + " authorized=false reason=" + reason);
        return "{\"mTLSValid\": false, \"reason\": " + Words.json(reason) + "}\n";
    }

    /** The path of the request line "METHOD PATH HTTP/1.1", without its query. */
    static String requestPath(String head) {
        String line = head.split("\r\n", 2)[0];
        String[] parts = line.split(" ");
        String target = parts.length > 1 ? parts[1] : "";
        int query = target.indexOf('?');
        return query < 0 ? target : target.substring(0, query);
    }

    /**
     * Closes the connection as JSSE closes an SSLServerSocket's accepted socket (and, after
     * a fatal alert, has already closed it: TransportContext.fatal): SSLSocketImpl.closeSocket
     * discards what has already arrived and closes the TCP socket at once. Client data that
     * arrives after that (a TLS 1.3 client's request) is answered with RST (RFC 1122
     * 4.2.2.13), which can reach the client before JSSE's alert: the matrix shows what a
     * user of JSSE gets.
     */
    static void close(Socket socket) {
        try {
            socket.close();
        } catch (IOException e) {
            // nothing to do
        }
    }

    /** Reads the request head (up to the blank line); only --auth-path looks at it. */
    static String readRequest(InputStream in) throws IOException {
        ByteArrayOutputStream head = new ByteArrayOutputStream();
        int state = 0;
        while (head.size() < 65536) {
            int b = in.read();
            if (b < 0) {
                break;
            }
            head.write(b);
            if (b == '\r' && (state == 0 || state == 2)) {
                state++;
            } else if (b == '\n' && (state == 1 || state == 3)) {
                if (++state == 4) {
                    break;
                }
            } else {
                state = b == '\r' ? 1 : 0;
            }
        }
        return head.toString(StandardCharsets.ISO_8859_1);
    }

    static String version() {
        try {
            SSLContext context = SSLContext.getDefault();
            return "Java " + Runtime.version() + " " + context.getProvider().getName() + " "
                    + context.getProvider().getVersionStr();
        } catch (GeneralSecurityException e) {
            return "Java " + Runtime.version();
        }
    }
}
