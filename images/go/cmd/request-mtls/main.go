// request-mtls: the mTLS client of the contract (images/CONTRACT.md) on Go's net/http
// and crypto/tls, standard library only, with Go's default verification.
//
// On failure it prints "   Error Code: <code>" and "Error Message: <message>" on stderr
// and exits 1. The code is the Go type of the most specific error in the chain
// (x509.UnknownAuthorityError, x509.HostnameError, tls.alert, ...), with the reason
// constant for x509.CertificateInvalidError and the constant name for sentinel errors
// (io.EOF, syscall.ECONNRESET); the message is Go's own error text with url.Error's
// "Get \"URL\": " prefix removed.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"syscall"
	"time"
)

const (
	usage   = "usage: request-mtls [--cert FILE --key FILE] [--root-ca FILE] [--url URL]"
	timeout = 10 * time.Second
)

// The names of x509.InvalidReason's constants (src/crypto/x509/verify.go).
var invalidReasons = map[x509.InvalidReason]string{
	x509.NotAuthorizedToSign:           "NotAuthorizedToSign",
	x509.Expired:                       "Expired",
	x509.CANotAuthorizedForThisName:    "CANotAuthorizedForThisName",
	x509.TooManyIntermediates:          "TooManyIntermediates",
	x509.IncompatibleUsage:             "IncompatibleUsage",
	x509.NameMismatch:                  "NameMismatch",
	x509.NameConstraintsWithoutSANs:    "NameConstraintsWithoutSANs",
	x509.UnconstrainedName:             "UnconstrainedName",
	x509.TooManyConstraints:            "TooManyConstraints",
	x509.CANotAuthorizedForExtKeyUsage: "CANotAuthorizedForExtKeyUsage",
}

// Sentinel errors whose type says nothing, by their Go names.
var sentinels = []struct {
	err  error
	name string
}{
	{io.EOF, "io.EOF"},
	{io.ErrUnexpectedEOF, "io.ErrUnexpectedEOF"},
	{context.DeadlineExceeded, "context.DeadlineExceeded"},
	{os.ErrDeadlineExceeded, "os.ErrDeadlineExceeded"},
	{syscall.ECONNRESET, "syscall.ECONNRESET"},
	{syscall.ECONNREFUSED, "syscall.ECONNREFUSED"},
	{syscall.ECONNABORTED, "syscall.ECONNABORTED"},
	{syscall.EPIPE, "syscall.EPIPE"},
	{syscall.ETIMEDOUT, "syscall.ETIMEDOUT"},
	{syscall.EHOSTUNREACH, "syscall.EHOSTUNREACH"},
	{syscall.ENETUNREACH, "syscall.ENETUNREACH"},
}

// generic reports whether an error's type carries no meaning of its own: a wrapper (Go
// 1.20+ wraps a failed verification in *tls.CertificateVerificationError) or a plain value.
func generic(err error) bool {
	switch fmt.Sprintf("%T", err) {
	case "*errors.errorString", "*fmt.wrapError", "*url.Error", "*net.OpError",
		"*tls.permanentError", "http.transportReadFromServerError", "http.nothingWrittenError",
		"*os.SyscallError", "*tls.CertificateVerificationError":
		return true
	}
	return false
}

// code names the most specific error in err's chain.
func code(err error) string {
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return s.name
		}
	}
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) {
		name, ok := invalidReasons[invalid.Reason]
		if !ok {
			name = fmt.Sprint(int(invalid.Reason))
		}
		return "x509.CertificateInvalidError(x509." + name + ")"
	}
	best := "error"
	for e := err; e != nil; e = errors.Unwrap(e) {
		if !generic(e) {
			best = fmt.Sprintf("%T", e)
			break
		}
	}
	if best[0] == '*' {
		best = best[1:]
	}
	return best
}

func report(code, message string) {
	fmt.Fprintf(os.Stderr, "   Error Code: %s\nError Message: %s\n", code, message)
	os.Exit(1)
}

func main() {
	fs := flag.NewFlagSet("request-mtls", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	certFile := fs.String("cert", "", "client certificate chain, leaf first (PEM)")
	keyFile := fs.String("key", "", "client private key (PEM)")
	rootCA := fs.String("root-ca", "", "CA(s) the server must chain to; replaces the system roots")
	target := fs.String("url", "https://localhost:9443", "URL")
	version := fs.Bool("version", false, "print the stack and its version")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Println(usage)
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "request-mtls: %v\n%s\n", err, usage)
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "request-mtls: unexpected argument %q\n%s\n", fs.Arg(0), usage)
		os.Exit(2)
	}
	if *version {
		fmt.Println(runtime.Version() + " crypto/tls")
		return
	}
	if (*certFile == "") != (*keyFile == "") {
		missing := "--key"
		if *certFile == "" {
			missing = "--cert"
		}
		fmt.Fprintf(os.Stderr, "request-mtls: missing required option %s\n", missing)
		os.Exit(1)
	}

	config := &tls.Config{}
	if *certFile != "" {
		pair, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			c := code(err)
			if c == "error" {
				c = "tls.LoadX509KeyPair"
			}
			report(c, err.Error())
		}
		config.Certificates = []tls.Certificate{pair}
	}
	if *rootCA != "" {
		pem, err := os.ReadFile(*rootCA)
		if err != nil {
			report(code(err), err.Error())
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			report("x509.CertPool.AppendCertsFromPEM", "no PEM certificate in "+*rootCA)
		}
		config.RootCAs = pool
	}
	if path := os.Getenv("SSLKEYLOGFILE"); path != "" {
		if keylog, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
			config.KeyLogWriter = keylog
		}
	}

	client := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			TLSClientConfig:     config,
			DisableKeepAlives:   true,
			TLSHandshakeTimeout: timeout,
		},
	}
	response, err := client.Get(*target)
	if err != nil {
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			report(code(urlErr.Err), urlErr.Err.Error())
		}
		report(code(err), err.Error())
	}
	defer response.Body.Close()
	body, err := io.ReadAll(response.Body)
	if err != nil {
		report(code(err), err.Error())
	}
	os.Stdout.Write(body)
}
