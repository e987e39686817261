// server-mtls: the mTLS server of the contract (images/CONTRACT.md) on Go's crypto/tls
// and net/http, standard library only.
//
// Report mode (the default) is tls.RequestClientCert: every handshake completes and the
// handler verifies the peer chain itself exactly as crypto/tls does for
// VerifyClientCertIfGiven / RequireAndVerifyClientCert (handshake_server.go,
// processCertsFromClient): leaf.Verify with Roots = the --root-ca pool (nil = the system
// roots), Intermediates = the rest of the peer chain, KeyUsages = clientAuth. The reason
// in the body is Go's own error text.
//
// --require is tls.RequireAndVerifyClientCert: Go's own verification, in the handshake,
// with Go's own alert. Nothing else is added.
//
// --auth-path exits 127 in TLS 1.2 and 1.3 (and without --tls-max): Go's crypto/tls server
// never renegotiates (renegotiation is client-side only, and only when the server asks) and
// has no post-handshake authentication (no post_handshake_auth extension; a TLS 1.3
// connection takes only NewSessionTicket and KeyUpdate after the handshake), and net/http
// runs the one handshake before the handler sees a request.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"
)

const (
	usage = "usage: server-mtls --cert FILE --key FILE [--root-ca FILE] [--require] [--tls-max 1.2|1.3] [--crl FILE] [--ca-names FILE|none] [--auth-path PATH] [--port N]"
	// Go's own words for a missing client certificate: crypto/tls returns this error
	// when a certificate is required and the client sent none (handshake_server.go,
	// processCertsFromClient).
	noCertReason = "tls: client didn't provide a certificate"
	// Why --crl cannot be honoured.
	crlUnsupported = "--crl is not supported: Go 1.19's crypto/x509 Certificate.Verify does no revocation checking " +
		"(\"WARNING: this function doesn't do any revocation checking\", src/crypto/x509/verify.go) " +
		"and crypto/tls has no CRL option"
	// RequireAndVerifyClientCert verifies against ClientCAs, and ClientCAs is also the list
	// the CertificateRequest names (handshake_server.go processCertsFromClient;
	// handshake_messages / handshake_server_tls13.go): the two cannot differ.
	caNamesWithRequire = "--ca-names is not supported with --require: Go 1.19's RequireAndVerifyClientCert " +
		"verifies the client against tls.Config.ClientCAs, which is also the list of names its CertificateRequest " +
		"sends (src/crypto/tls/handshake_server.go, handshake_server_tls13.go), so the names cannot differ from the trust"
	// Why --auth-path cannot be honoured, by TLS version (Go 1.19.8 sources as Debian ships them).
	noRenegotiationAuth = "--auth-path is not supported in TLS 1.2: Go 1.19's crypto/tls never initiates a renegotiation " +
		"(\"Initiating a renegotiation is not supported\", src/crypto/tls/common.go:484-510: Config.Renegotiation only lets " +
		"a client accept a server's HelloRequest) and a server Conn refuses any handshake message after the handshake " +
		"(conn.go:1189-1208: unexpected_message for a ClientHello); Conn.Handshake runs the handshake once (conn.go:1420-1442), so a certificate can be asked for only in the first handshake"
	noPostHandshakeAuth = "--auth-path is not supported in TLS 1.3: Go 1.19's crypto/tls has no post-handshake authentication: " +
		"it knows no post_handshake_auth extension (src/crypto/tls/common.go:84-102), sends its TLS 1.3 CertificateRequest only " +
		"inside the handshake (handshake_server_tls13.go:580-605), and after it a connection handles only NewSessionTicket and " +
		"KeyUpdate (conn.go:1234-1261)"
	deadline = 10 * time.Second
)

var stdout sync.Mutex

func logLine(line string) {
	stdout.Lock()
	defer stdout.Unlock()
	os.Stdout.WriteString(line + "\n")
}

func fail(code int, format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "server-mtls: "+format+"\n", args...)
	os.Exit(code)
}

func versionName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "TLSv1"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS13:
		return "TLSv1.3"
	}
	return fmt.Sprintf("0x%04x", v)
}

// handshakeErrors turns net/http's "http: TLS handshake error from ADDR: ERR" (Go 1.19
// server.go, conn.serve) into the contract's "handshake-failed ERR" line.
type handshakeErrors struct{}

func (handshakeErrors) Write(p []byte) (int, error) {
	text := strings.TrimRight(string(p), "\n")
	const prefix = "http: TLS handshake error from "
	if strings.HasPrefix(text, prefix) {
		rest := text[len(prefix):]
		if i := strings.Index(rest, ": "); i >= 0 {
			logLine("handshake-failed " + rest[i+2:])
			return len(p), nil
		}
	}
	logLine(text)
	return len(p), nil
}

type server struct {
	roots   *x509.CertPool // nil: the system roots
	require bool
}

// verify returns "" for a valid client, else Go's own reason.
func (s *server) verify(state *tls.ConnectionState) string {
	certs := state.PeerCertificates
	if len(certs) == 0 {
		return noCertReason
	}
	if s.require {
		// crypto/tls already verified the chain in the handshake.
		return ""
	}
	opts := x509.VerifyOptions{
		Roots:         s.roots,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, cert := range certs[1:] {
		opts.Intermediates.AddCert(cert)
	}
	if _, err := certs[0].Verify(opts); err != nil {
		return err.Error()
	}
	return ""
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil {
		http.Error(w, "TLS required", http.StatusBadRequest)
		return
	}
	reason := s.verify(r.TLS)
	subject := "none"
	if len(r.TLS.PeerCertificates) > 0 {
		subject = fmt.Sprintf("%q", r.TLS.PeerCertificates[0].Subject.CommonName)
	}
	var body string
	line := fmt.Sprintf("handshake %s subject=%s", versionName(r.TLS.Version), subject)
	if reason == "" {
		body = "{\"mTLSValid\": true}\n"
		line += " authorized=true"
	} else {
		quoted, _ := json.Marshal(reason)
		body = "{\"mTLSValid\": false, \"reason\": " + string(quoted) + "}\n"
		line += " authorized=false reason=" + reason
	}
	logLine(line)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, body)
}

func readFile(path, flagName string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		fail(2, "cannot read --%s %s: %v", flagName, path, err)
	}
	return data
}

func main() {
	fs := flag.NewFlagSet("server-mtls", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	certFile := fs.String("cert", "", "certificate chain, leaf first (PEM)")
	keyFile := fs.String("key", "", "private key (PEM)")
	rootCA := fs.String("root-ca", "", "CA(s) client certificates must chain to; replaces the system roots")
	require := fs.Bool("require", false, "reject a missing or bad client certificate in the handshake")
	tlsMax := fs.String("tls-max", "", "highest TLS version: 1.2 or 1.3")
	crl := fs.String("crl", "", "PEM CRLs (unsupported: exit 127)")
	caNames := fs.String("ca-names", "", "CAs the CertificateRequest names instead of --root-ca's (report mode), or none")
	authPath := fs.String("auth-path", "", "ask for the client certificate only on requests for this path (unsupported: exit 127)")
	port := fs.Int("port", 9443, "port to listen on")
	version := fs.Bool("version", false, "print the stack and its version")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Println(usage)
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "server-mtls: %v\n%s\n", err, usage)
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "server-mtls: unexpected argument %q\n%s\n", fs.Arg(0), usage)
		os.Exit(2)
	}
	if *version {
		fmt.Println(runtime.Version() + " crypto/tls")
		return
	}
	if *certFile == "" {
		fail(1, "missing required option --cert")
	}
	if *keyFile == "" {
		fail(1, "missing required option --key")
	}
	var maxVersion uint16
	switch *tlsMax {
	case "":
	case "1.2":
		maxVersion = tls.VersionTLS12
	case "1.3":
		maxVersion = tls.VersionTLS13
	default:
		fail(2, "--tls-max must be 1.2 or 1.3, got %q", *tlsMax)
	}
	if *port <= 0 || *port > 65535 {
		fail(2, "--port must be 1-65535, got %d", *port)
	}
	authPathGiven := false
	fs.Visit(func(f *flag.Flag) { authPathGiven = authPathGiven || f.Name == "auth-path" })
	if authPathGiven && !strings.HasPrefix(*authPath, "/") {
		fail(2, "--auth-path must be a path starting with /, got %q", *authPath)
	}
	if *crl != "" {
		fail(127, "%s", crlUnsupported)
	}
	if *caNames != "" && *require {
		fail(127, "%s", caNamesWithRequire)
	}
	if authPathGiven {
		switch maxVersion {
		case tls.VersionTLS12:
			fail(127, "%s", noRenegotiationAuth)
		case tls.VersionTLS13:
			fail(127, "%s", noPostHandshakeAuth)
		default:
			fail(127, "%s; %s", noRenegotiationAuth, noPostHandshakeAuth)
		}
	}

	pair, err := tls.X509KeyPair(readFile(*certFile, "cert"), readFile(*keyFile, "key"))
	if err != nil {
		fail(2, "cannot use --cert %s / --key %s: %v", *certFile, *keyFile, err)
	}
	s := &server{require: *require}
	config := &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequestClientCert,
		MaxVersion:   maxVersion,
	}
	if *require {
		config.ClientAuth = tls.RequireAndVerifyClientCert
	}
	if *rootCA != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(readFile(*rootCA, "root-ca")) {
			fail(2, "--root-ca %s holds no PEM certificate", *rootCA)
		}
		s.roots = pool
		// ClientCAs is both the trust for RequireAndVerifyClientCert and the list of
		// names in the CertificateRequest (handshake_server.go, handshake_server_tls13.go).
		config.ClientCAs = pool
	}
	// Report mode verifies in the handler against s.roots, so ClientCAs only names CAs.
	switch *caNames {
	case "":
	case "none":
		config.ClientCAs = nil // an empty certificate_authorities list (TLS 1.2), no extension (TLS 1.3)
	default:
		names := x509.NewCertPool()
		if !names.AppendCertsFromPEM(readFile(*caNames, "ca-names")) {
			fail(2, "--ca-names %s holds no PEM certificate", *caNames)
		}
		config.ClientCAs = names
	}
	if path := os.Getenv("SSLKEYLOGFILE"); path != "" {
		keylog, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			fail(2, "cannot open SSLKEYLOGFILE %s: %v", path, err)
		}
		config.KeyLogWriter = keylog
	}

	listener, err := net.Listen("tcp", fmt.Sprintf(":%d", *port))
	if err != nil {
		fail(1, "cannot listen on port %d: %v", *port, err)
	}
	srv := &http.Server{
		Handler:           s,
		TLSConfig:         config,
		ReadHeaderTimeout: deadline,
		ReadTimeout:       deadline, // also the TLS handshake deadline (server.go, conn.serve)
		WriteTimeout:      deadline,
		ErrorLog:          log.New(handshakeErrors{}, "", 0),
		// A non-nil empty map keeps net/http from offering HTTP/2: HTTP/1.1 only.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	srv.SetKeepAlivesEnabled(false)
	logLine(fmt.Sprintf("Example mTLS app listening at https://localhost:%d", *port))
	if err := srv.ServeTLS(listener, "", ""); err != nil {
		fail(1, "%v", err)
	}
}
