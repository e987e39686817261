/*
 * nss-mtls-server: the TLS part of the nss image's server-mtls (images/CONTRACT.md).
 * Mozilla NSS 3.87 as Debian bookworm ships it; the server-mtls wrapper has already
 * built the NSS certificate database this program opens (trust anchors with certutil,
 * the server's key and chain with pk12util), as NSS servers such as selfserv expect.
 *
 *   nss-mtls-server --db DIR --nickname NAME [--require] [--tls-max 1.2|1.3]
 *                   [--crl FILE] [--ca-names FILE|none] [--auth-path PATH] --port N
 *   nss-mtls-server --version
 *
 * Client authentication is NSS's documented one (ssl.h):
 *   SSL_OptionSet(SSL_REQUEST_CERTIFICATE, PR_TRUE) and
 *   SSL_OptionSet(SSL_REQUIRE_CERTIFICATE, SSL_REQUIRE_ALWAYS | SSL_REQUIRE_NEVER).
 * --require: no certificate hook at all, so NSS runs its default SSL_AuthCertificate
 *   (CERT_VerifyCert(now) with certUsageSSLClient) and fails the handshake with the
 *   alert NSS picks (ssl3_SendAlertForCertError, ssl3_HandleNoCertificate).
 * Report mode: SSL_REQUIRE_NEVER and an SSL_AuthCertificateHook that calls that same
 *   SSL_AuthCertificate, records PR_ErrorToName(PORT_GetError()) when it fails, and
 *   returns SECSuccess, so the handshake completes and the body names NSS's error.
 *   A client that sends no certificate: SSL_PeerCertificateChain() fails with NSS's
 *   own SSL_ERROR_NO_CERTIFICATE.
 * --crl FILE: every PEM CRL of the file is handed to CERT_CacheCRL(), NSS's call for
 *   "a CRL the verification functions find and use" (cert.h); the CRL's signature is
 *   checked against its issuer when it is used (lib/certdb/crl.c CachedCrl_Verify).
 * --ca-names FILE|none: the names of the CertificateRequest, set on every connection's
 *   socket with SSL_SetTrustAnchors (ssl.h), "used to set the distinguished names that an
 *   NSS server includes in its TLS CertificateRequest message" (NSS 3.27.2 release
 *   notes); without it NSS names every CA the database trusts for client authentication
 *   ("T", CERT_GetSSLCACerts). The call replaces that list with the subjects of the given
 *   certificates (lib/ssl/sslsecur.c SSL_SetTrustAnchors, lib/ssl/sslcert.c
 *   ssl_GetCertificateRequestCAs) and nothing else: verification still uses the database
 *   (SSL_AuthCertificate), so it works in both modes. FILE: every certificate of the PEM
 *   file, decoded with CERT_NewTempCertificate (no trust given). none: an empty
 *   CERTCertList (as NSS's own tests do, gtests/ssl_gtest/tls_agent.cc), i.e. an empty
 *   certificate_authorities list in TLS 1.2 (ssl3con.c ssl3_SendCertificateRequest) and
 *   no certificate_authorities extension in TLS 1.3 (tls13exthandle.c
 *   tls13_SendCertAuthoritiesXtn). The list is per socket: SSL_ImportFD does not copy it
 *   from the model (sslsock.c ssl_DupSocket), so serve() sets it on each connection.
 * --auth-path PATH: the first handshake does not ask for a certificate
 *   (SSL_REQUEST_CERTIFICATE off); the request head is read, and only a request for PATH
 *   asks for it, on the connection's socket, with NSS's documented calls:
 *   TLS 1.2: SSL_OptionSet(SSL_REQUEST_CERTIFICATE, PR_TRUE) and SSL_ReHandshake(fd,
 *     PR_TRUE) ("For the server, request a new handshake", ssl.h). flushCache PR_TRUE is
 *     NSS's documented call for this: SSL_ReHandshake's reference says to call it, flushing
 *     the session cache entry so that a full handshake happens, "if you are going to request
 *     client authentication" (doc/rst/legacy/ssl_functions/sslfnc/index.rst, NSS 3.87), and
 *     NSS's own server, selfserv, asks for a certificate in a later handshake with exactly
 *     SSL_ReHandshake(ssl_sock, PR_TRUE) (cmd/selfserv/selfserv.c). A HelloRequest, then
 *     SSL_ForceHandshakeWithTimeout drives the client's new handshake to its end. NSS
 *     servers renegotiate by default only with a client that sent the renegotiation_info
 *     extension (sslsock.c ssl_defaults: SSL_RENEGOTIATE_REQUIRES_XTN; ssl3con.c
 *     ssl3_HandleClientHello answers another with a no_renegotiation warning). A client
 *     that declines with a no_renegotiation warning of its own is not noticed: NSS acts
 *     only on fatal alerts (ssl3con.c ssl3_HandleAlert) and waits for a ClientHello until
 *     the deadline, and the connection ends with PR_IO_TIMEOUT_ERROR, unanswered.
 *   TLS 1.3: the same option, then SSL_SendCertificateRequest(fd), NSS's post-handshake
 *     authentication (sslexp.h, an experimental API reached through the exported
 *     SSL_GetExperimentalAPI; "For a server, the SSL_SendCertificateRequest can be used to
 *     request post-handshake authentication", ssl.h SSL_ENABLE_POST_HANDSHAKE_AUTH), then
 *     SSL_ForceHandshakeWithTimeout reads the client's Certificate, CertificateVerify and
 *     Finished. It fails with SSL_ERROR_MISSING_POST_HANDSHAKE_AUTH_EXTENSION when the
 *     client did not offer post_handshake_auth (tls13con.c SSLExp_SendCertificateRequest).
 *   The certificate is then judged exactly as in the first handshake (the same hook, or
 *   NSS's default one and SSL_REQUIRE_ALWAYS with --require, whose failure ends the
 *   connection with NSS's alert). A call that NSS refuses before anything is sent (no
 *   post_handshake_auth) leaves the connection as it was: report mode answers with NSS's
 *   error name as the reason, --require closes the connection. Other paths are answered
 *   without asking: no certificate (SSL_ERROR_NO_CERTIFICATE).
 *
 * One process, one thread per connection (NSS is thread-safe; it must not be used
 * across fork()). Listens on [::] (IPv4 too, as mapped addresses), or on 0.0.0.0
 * where IPv6 is not available.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <unistd.h>

#include <mtls-harness/mtls-http.h> /* the HTTP side the C servers share (images/base) */

#include <base64.h>
#include <cert.h>
#include <certt.h>
#include <nspr.h>
#include <nss.h>
#include <pk11pub.h>
#include <prerror.h>
#include <secerr.h>
#include <ssl.h>
#include <sslerr.h>
#include <sslexp.h> /* SSL_SendCertificateRequest */
#include <sslproto.h>

#define DEADLINE_S 10
#define MAX_REQUEST 16384

static struct {
	const char *db, *nickname, *crl, *ca_names, *tls_max, *auth_path;
	int require;
	int port;
} opt;

static PRFileDesc *model;
static PRLock *log_lock;
static CERTCertList *ca_names; /* --ca-names: the CertificateRequest's CAs, NULL for NSS's default */

struct conn {
	PRFileDesc *tcp;
	int verified;      /* the hook ran */
	PRErrorCode error; /* what SSL_AuthCertificate failed with, 0 if it passed */
	int sent_alert;    /* the last alert this side sent, -1 if none */
	int recv_alert;    /* the last alert this side received, -1 if none */
};

static void log_line(const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	PR_Lock(log_lock);
	if (write(STDOUT_FILENO, buf, n) < 0) {
		/* nothing to do */
	}
	PR_Unlock(log_lock);
}

static void die(const char *what)
{
	PRErrorCode err = PR_GetError();
	const char *name = PR_ErrorToName(err);

	fprintf(stderr, "nss-mtls-server: %s: %s: %s\n", what, name ? name : "unknown error",
		PR_ErrorToString(err, PR_LANGUAGE_I_DEFAULT));
	exit(1);
}

static const char *error_name(PRErrorCode err)
{
	const char *name = PR_ErrorToName(err);
	return name ? name : "UNKNOWN_ERROR";
}

/* The RFC 8446 names of the alerts NSS can send (sslt.h SSL3AlertDescription). */
static const char *alert_name(int desc)
{
	switch (desc) {
	case 0: return "close_notify";
	case 10: return "unexpected_message";
	case 20: return "bad_record_mac";
	case 22: return "record_overflow";
	case 40: return "handshake_failure";
	case 42: return "bad_certificate";
	case 43: return "unsupported_certificate";
	case 44: return "certificate_revoked";
	case 45: return "certificate_expired";
	case 46: return "certificate_unknown";
	case 47: return "illegal_parameter";
	case 48: return "unknown_ca";
	case 49: return "access_denied";
	case 50: return "decode_error";
	case 51: return "decrypt_error";
	case 70: return "protocol_version";
	case 71: return "insufficient_security";
	case 80: return "internal_error";
	case 86: return "inappropriate_fallback";
	case 90: return "user_canceled";
	case 100: return "no_renegotiation";
	case 109: return "missing_extension";
	case 110: return "unsupported_extension";
	case 112: return "unrecognized_name";
	case 116: return "certificate_required";
	case 120: return "no_application_protocol";
	default: return "unknown";
	}
}

static void PR_CALLBACK on_alert_sent(const PRFileDesc *fd, void *arg, const SSLAlert *alert)
{
	(void)fd;
	((struct conn *)arg)->sent_alert = alert->description;
}

static void PR_CALLBACK on_alert_received(const PRFileDesc *fd, void *arg, const SSLAlert *alert)
{
	(void)fd;
	((struct conn *)arg)->recv_alert = alert->description;
}

/* Report mode: NSS's default verification, its verdict kept, the handshake let through. */
static SECStatus report_hook(void *arg, PRFileDesc *fd, PRBool checkSig, PRBool isServer)
{
	struct conn *c = arg;
	SECStatus rv = SSL_AuthCertificate(CERT_GetDefaultCertDB(), fd, checkSig, isServer);

	c->verified = 1;
	c->error = 0;
	if (rv != SECSuccess) {
		c->error = PORT_GetError();
		if (c->error == 0)
			c->error = SSL_ERROR_BAD_CERTIFICATE;
	}
	return SECSuccess;
}

static const char *tls_name(PRUint16 v)
{
	switch (v) {
	case SSL_LIBRARY_VERSION_TLS_1_3: return "TLSv1.3";
	case SSL_LIBRARY_VERSION_TLS_1_2: return "TLSv1.2";
	case SSL_LIBRARY_VERSION_TLS_1_1: return "TLSv1.1";
	case SSL_LIBRARY_VERSION_TLS_1_0: return "TLSv1";
	default: return "unknown";
	}
}

/*
 * End the connection at once, as selfserv does (PR_Close). When the client still sends
 * (the rest of its TLS 1.2 flight, the request a TLS 1.3 client sends right after its
 * Finished) the kernel answers with RST (RFC 1122 4.2.2.13), which can reach the client
 * before it reads the alert just sent: the matrix shows what a user of NSS gets.
 */
static void close_connection(PRFileDesc *ssl)
{
	PR_Close(ssl);
}

/*
 * What the server saw of the client's certificate so far: 1 when it is trusted, else 0
 * and NSS's name for the reason. Logs the connection's line.
 */
static int judge(PRFileDesc *ssl, struct conn *c, const char *proto, char *reason, size_t size)
{
	CERTCertificate *peer = SSL_PeerCertificate(ssl);
	char subject[512] = "";
	int valid;

	if (peer != NULL) {
		char *cn = CERT_GetCommonName(&peer->subject);
		mtls_json_escape(cn ? cn : "", subject, sizeof(subject));
		if (cn)
			PORT_Free(cn);
	}
	if (opt.require && peer != NULL) {
		valid = 1; /* the handshake verified the certificate already */
	} else if (peer == NULL) {
		/* NSS's own name for "the peer sent no certificate" (sslauth.c). */
		CERTCertList *chain = SSL_PeerCertificateChain(ssl);
		PRErrorCode err = PORT_GetError();
		if (chain)
			CERT_DestroyCertList(chain);
		snprintf(reason, size, "%s", error_name(chain ? SSL_ERROR_NO_CERTIFICATE : err));
		valid = 0;
	} else if (!c->verified) {
		snprintf(reason, size, "%s", error_name(SSL_ERROR_BAD_CERTIFICATE));
		valid = 0;
	} else if (c->error != 0) {
		snprintf(reason, size, "%s", error_name(c->error));
		valid = 0;
	} else {
		valid = 1;
	}
	if (valid)
		log_line("handshake %s subject=\"%s\" authorized=true", proto, subject);
	else if (peer == NULL)
		log_line("handshake %s subject=none authorized=false reason=%s", proto, reason);
	else
		log_line("handshake %s subject=\"%s\" authorized=false reason=%s", proto, subject, reason);
	if (peer)
		CERT_DestroyCertificate(peer);
	return valid;
}

/* Read the request head into request (MAX_REQUEST + 1 bytes); 0, or -1 (logged). */
static int read_request(PRFileDesc *ssl, struct conn *c, char *request, int *have)
{
	int n = 0;

	while (*have < MAX_REQUEST) {
		n = PR_Recv(ssl, request + *have, MAX_REQUEST - *have, 0, PR_SecondsToInterval(DEADLINE_S));
		if (n <= 0)
			break;
		*have += n;
		request[*have] = '\0';
		if (strstr(request, "\r\n\r\n") || strstr(request, "\n\n"))
			break;
	}
	if (n < 0) {
		PRErrorCode err = PR_GetError();
		log_line("connection-error %s: %s%s%s", error_name(err), PR_ErrorToString(err, PR_LANGUAGE_I_DEFAULT),
			 c->recv_alert >= 0 ? " received-alert=" : "",
			 c->recv_alert >= 0 ? alert_name(c->recv_alert) : "");
		return -1;
	}
	if (*have == 0) {
		log_line("connection-closed before a request");
		return -1;
	}
	return 0;
}

/*
 * --auth-path: ask for the client certificate now, on an established connection.
 * 0: the client answered (with a certificate or without one) and the handshake ended;
 * 1: NSS refused to ask (*refused: its error), nothing was sent; -1: the connection
 * failed (logged).
 */
static int ask_certificate(PRFileDesc *ssl, struct conn *c, PRUint16 version, PRErrorCode *refused)
{
	SECStatus rv;
	const char *how;

	c->verified = 0;
	c->error = 0;
	c->sent_alert = -1;
	c->recv_alert = -1;
	if (SSL_OptionSet(ssl, SSL_REQUEST_CERTIFICATE, PR_TRUE) != SECSuccess) {
		log_line("connection-error SSL_OptionSet: %s", error_name(PR_GetError()));
		return -1;
	}
	if (version >= SSL_LIBRARY_VERSION_TLS_1_3) {
		how = "post-handshake-auth";
		rv = SSL_SendCertificateRequest(ssl);
	} else {
		how = "renegotiation";
		rv = SSL_ReHandshake(ssl, PR_TRUE);
	}
	if (rv != SECSuccess) {
		PRErrorCode err = PR_GetError();
		*refused = err ? err : SSL_ERROR_HANDSHAKE_FAILED;
		return 1;
	}
	if (SSL_ForceHandshakeWithTimeout(ssl, PR_SecondsToInterval(DEADLINE_S)) != SECSuccess) {
		PRErrorCode err = PR_GetError();
		char extra[256] = "";
		if (c->recv_alert >= 0)
			snprintf(extra, sizeof(extra), " received-alert=%s", alert_name(c->recv_alert));
		else if (c->sent_alert >= 0)
			snprintf(extra, sizeof(extra), " sent-alert=%s", alert_name(c->sent_alert));
		log_line("handshake-failed %s %s: %s%s", how, error_name(err),
			 PR_ErrorToString(err, PR_LANGUAGE_I_DEFAULT), extra);
		return -1;
	}
	return 0;
}

static void serve(void *arg)
{
	struct conn *c = arg;
	PRFileDesc *ssl;
	SSLChannelInfo info;
	char request[MAX_REQUEST + 1];
	int have = 0, n, valid;
	char reason[256] = "";
	char response[3000];
	const char *proto;

	ssl = SSL_ImportFD(model, c->tcp);
	if (ssl == NULL) {
		log_line("connection-error SSL_ImportFD: %s", error_name(PR_GetError()));
		PR_Close(c->tcp);
		free(c);
		return;
	}
	if (ca_names && SSL_SetTrustAnchors(ssl, ca_names) != SECSuccess) {
		log_line("connection-error SSL_SetTrustAnchors: %s", error_name(PR_GetError()));
		PR_Close(ssl);
		free(c);
		return;
	}
	SSL_AlertSentCallback(ssl, on_alert_sent, c);
	SSL_AlertReceivedCallback(ssl, on_alert_received, c);
	if (!opt.require)
		SSL_AuthCertificateHook(ssl, report_hook, c);
	SSL_ResetHandshake(ssl, PR_TRUE);

	if (SSL_ForceHandshakeWithTimeout(ssl, PR_SecondsToInterval(DEADLINE_S)) != SECSuccess) {
		PRErrorCode err = PR_GetError();
		char extra[256] = "";
		if (c->recv_alert >= 0)
			snprintf(extra, sizeof(extra), " received-alert=%s", alert_name(c->recv_alert));
		else if (c->sent_alert >= 0)
			snprintf(extra, sizeof(extra), " sent-alert=%s", alert_name(c->sent_alert));
		log_line("handshake-failed %s: %s%s", error_name(err), PR_ErrorToString(err, PR_LANGUAGE_I_DEFAULT),
			 extra);
		close_connection(ssl);
		free(c);
		return;
	}

	memset(&info, 0, sizeof(info));
	SSL_GetChannelInfo(ssl, &info, sizeof(info));
	proto = tls_name(info.protocolVersion);

	if (!opt.auth_path) {
		valid = judge(ssl, c, proto, reason, sizeof(reason));
		if (read_request(ssl, c, request, &have) != 0) {
			close_connection(ssl);
			free(c);
			return;
		}
	} else {
		/* --auth-path: the request first, then the certificate if it is for PATH. */
		if (read_request(ssl, c, request, &have) != 0) {
			close_connection(ssl);
			free(c);
			return;
		}
		if (!mtls_path_matches(request, opt.auth_path)) {
			valid = judge(ssl, c, proto, reason, sizeof(reason));
		} else {
			PRErrorCode err = 0;
			int asked = ask_certificate(ssl, c, info.protocolVersion, &err);
			if (asked < 0) {
				/* NSS ended the connection (its alert, if any, is sent). */
				close_connection(ssl);
				free(c);
				return;
			}
			if (asked > 0) {
				/* NSS refused to ask; the connection is as it was. */
				if (opt.require) {
					log_line("client-auth-failed %s %s: %s (closing: --require)", proto, error_name(err),
						 PR_ErrorToString(err, PR_LANGUAGE_I_DEFAULT));
					PR_Shutdown(ssl, PR_SHUTDOWN_SEND);
					close_connection(ssl);
					free(c);
					return;
				}
				snprintf(reason, sizeof(reason), "%s", error_name(err));
				log_line("handshake %s subject=none authorized=false reason=%s", proto, reason);
				valid = 0;
			} else {
				valid = judge(ssl, c, proto, reason, sizeof(reason));
			}
		}
	}

	mtls_report_response(valid, reason, response, sizeof(response));
	{
		int off = 0, len = (int)strlen(response);
		while (off < len) {
			n = PR_Send(ssl, response + off, len - off, 0, PR_SecondsToInterval(DEADLINE_S));
			if (n <= 0) {
				log_line("connection-error %s", error_name(PR_GetError()));
				break;
			}
			off += n;
		}
	}
	/* close_notify, then the TCP half-close (ssl_SecureShutdown). */
	PR_Shutdown(ssl, PR_SHUTDOWN_SEND);
	close_connection(ssl);
	free(c);
}

static void usage(void)
{
	fprintf(stderr, "usage: nss-mtls-server --db DIR --nickname NAME [--require] [--tls-max 1.2|1.3] "
			"[--crl FILE] [--ca-names FILE|none] [--auth-path PATH] --port N\n");
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--version") == 0) {
			printf("NSS %s (libnss3, C server)\n", NSS_GetVersion());
			exit(0);
		}
		if (strcmp(a, "--require") == 0) {
			opt.require = 1;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		if (strcmp(a, "--db") == 0)
			opt.db = argv[++i];
		else if (strcmp(a, "--nickname") == 0)
			opt.nickname = argv[++i];
		else if (strcmp(a, "--crl") == 0)
			opt.crl = argv[++i];
		else if (strcmp(a, "--ca-names") == 0)
			opt.ca_names = argv[++i];
		else if (strcmp(a, "--tls-max") == 0)
			opt.tls_max = argv[++i];
		else if (strcmp(a, "--auth-path") == 0)
			opt.auth_path = argv[++i];
		else if (strcmp(a, "--port") == 0)
			opt.port = atoi(argv[++i]);
		else
			usage();
	}
	if (!opt.db || !opt.nickname || opt.port <= 0 || opt.port > 65535)
		usage();
	if (opt.auth_path && opt.auth_path[0] != '/') {
		fprintf(stderr, "nss-mtls-server: --auth-path must start with /, got '%s'\n", opt.auth_path);
		exit(2);
	}
}

/* The whole file named by --FLAG, NUL-terminated, or a one-line error and exit 2. */
static char *read_text(const char *path, const char *flag)
{
	FILE *f = fopen(path, "rb");
	char *text;
	long size;

	if (f == NULL) {
		fprintf(stderr, "nss-mtls-server: cannot read --%s %s: %s\n", flag, path, strerror(errno));
		exit(2);
	}
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, 0, SEEK_SET);
	text = malloc(size + 1);
	if (text == NULL || fread(text, 1, size, f) != (size_t)size) {
		fprintf(stderr, "nss-mtls-server: cannot read --%s %s\n", flag, path);
		exit(2);
	}
	text[size] = '\0';
	fclose(f);
	return text;
}

/* Every "X509 CRL" block of a PEM file, into NSS's CRL cache. */
static void cache_crls(const char *path)
{
	char *text = read_text(path, "crl"), *p;
	int count = 0;

	for (p = text; (p = strstr(p, "-----BEGIN X509 CRL-----")) != NULL;) {
		char *start = p + strlen("-----BEGIN X509 CRL-----");
		char *end = strstr(start, "-----END X509 CRL-----");
		SECItem *der;
		unsigned int len = 0;

		if (end == NULL)
			break;
		*end = '\0';
		der = PORT_ZNew(SECItem); /* the cache keeps referring to it: never freed */
		der->type = siBuffer;
		der->data = ATOB_AsciiToData(start, &len);
		der->len = len;
		if (der->data == NULL || CERT_CacheCRL(CERT_GetDefaultCertDB(), der) != SECSuccess) {
			fprintf(stderr, "nss-mtls-server: --crl %s: CRL %d: %s\n", path, count + 1,
				error_name(PR_GetError()));
			exit(2);
		}
		count++;
		p = end + 1;
	}
	if (count == 0) {
		fprintf(stderr, "nss-mtls-server: --crl %s: no CRL in the file\n", path);
		exit(2);
	}
}

/* --ca-names: an empty list for "none", else every "CERTIFICATE" block of the PEM file. */
static CERTCertList *load_ca_names(const char *path)
{
	CERTCertList *list = CERT_NewCertList();
	char *text, *p;
	int count = 0;

	if (list == NULL)
		die("CERT_NewCertList");
	if (strcmp(path, "none") == 0)
		return list;
	text = read_text(path, "ca-names");

	for (p = text; (p = strstr(p, "-----BEGIN CERTIFICATE-----")) != NULL;) {
		char *start = p + strlen("-----BEGIN CERTIFICATE-----");
		char *end = strstr(start, "-----END CERTIFICATE-----");
		CERTCertificate *cert = NULL;
		SECItem der = { siBuffer, NULL, 0 };
		unsigned int len = 0;

		if (end == NULL)
			break;
		*end = '\0';
		der.data = ATOB_AsciiToData(start, &len);
		der.len = len;
		if (der.data != NULL)
			cert = CERT_NewTempCertificate(CERT_GetDefaultCertDB(), &der, NULL, PR_FALSE, PR_TRUE);
		if (cert == NULL || CERT_AddCertToListTail(list, cert) != SECSuccess) {
			fprintf(stderr, "nss-mtls-server: --ca-names %s: certificate %d: %s\n", path, count + 1,
				error_name(PR_GetError()));
			exit(2);
		}
		PORT_Free(der.data);
		count++;
		p = end + 1;
	}
	free(text);
	if (count == 0) {
		fprintf(stderr, "nss-mtls-server: --ca-names %s: no certificate in the file\n", path);
		exit(2);
	}
	return list;
}

static PRFileDesc *listen_socket(int port)
{
	PRNetAddr addr;
	PRSocketOptionData so;
	PRFileDesc *fd;
	PRIntn families[2] = { PR_AF_INET6, PR_AF_INET };
	int i;

	for (i = 0; i < 2; i++) {
		fd = PR_OpenTCPSocket(families[i]);
		if (fd == NULL)
			continue;
		so.option = PR_SockOpt_Reuseaddr;
		so.value.reuse_addr = PR_TRUE;
		PR_SetSocketOption(fd, &so);
		PR_SetNetAddr(PR_IpAddrAny, families[i], (PRUint16)port, &addr);
		if (PR_Bind(fd, &addr) == PR_SUCCESS && PR_Listen(fd, 128) == PR_SUCCESS)
			return fd;
		PR_Close(fd);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	CERTCertificate *cert;
	SECKEYPrivateKey *key;
	PRFileDesc *lfd;
	SSLVersionRange range;
	char dbspec[4096];

	signal(SIGPIPE, SIG_IGN);
	parse_args(argc, argv);
	log_lock = PR_NewLock();

	snprintf(dbspec, sizeof(dbspec), "sql:%s", opt.db);
	if (NSS_Init(dbspec) != SECSuccess)
		die("NSS_Init");
	if (NSS_SetDomesticPolicy() != SECSuccess)
		die("NSS_SetDomesticPolicy");
	if (SSL_ConfigServerSessionIDCache(0, 0, 0, NULL) != SECSuccess)
		die("SSL_ConfigServerSessionIDCache");

	cert = PK11_FindCertFromNickname(opt.nickname, NULL);
	if (cert == NULL)
		die("the server certificate");
	key = PK11_FindKeyByAnyCert(cert, NULL);
	if (key == NULL)
		die("the server key");
	if (opt.crl)
		cache_crls(opt.crl);
	if (opt.ca_names)
		ca_names = load_ca_names(opt.ca_names);

	model = SSL_ImportFD(NULL, PR_NewTCPSocket());
	if (model == NULL)
		die("SSL_ImportFD");
	SSL_OptionSet(model, SSL_SECURITY, PR_TRUE);
	SSL_OptionSet(model, SSL_HANDSHAKE_AS_SERVER, PR_TRUE);
	SSL_OptionSet(model, SSL_HANDSHAKE_AS_CLIENT, PR_FALSE);
	/* --auth-path: no CertificateRequest in the first handshake (ask_certificate asks). */
	SSL_OptionSet(model, SSL_REQUEST_CERTIFICATE, opt.auth_path ? PR_FALSE : PR_TRUE);
	SSL_OptionSet(model, SSL_REQUIRE_CERTIFICATE, opt.require ? SSL_REQUIRE_ALWAYS : SSL_REQUIRE_NEVER);
	if (SSL_ConfigServerCert(model, cert, key, NULL, 0) != SECSuccess)
		die("SSL_ConfigServerCert");
	if (SSL_VersionRangeGetDefault(ssl_variant_stream, &range) != SECSuccess)
		die("SSL_VersionRangeGetDefault");
	if (opt.tls_max && strcmp(opt.tls_max, "1.2") == 0)
		range.max = SSL_LIBRARY_VERSION_TLS_1_2;
	else
		range.max = SSL_LIBRARY_VERSION_TLS_1_3;
	if (SSL_VersionRangeSet(model, &range) != SECSuccess)
		die("SSL_VersionRangeSet");

	lfd = listen_socket(opt.port);
	if (lfd == NULL) {
		fprintf(stderr, "nss-mtls-server: cannot listen on port %d: %s\n", opt.port,
			error_name(PR_GetError()));
		return 1;
	}
	log_line("Example mTLS app listening at https://localhost:%d", opt.port);

	for (;;) {
		PRNetAddr peer;
		PRFileDesc *tcp = PR_Accept(lfd, &peer, PR_INTERVAL_NO_TIMEOUT);
		struct conn *c;

		if (tcp == NULL) {
			PRErrorCode err = PR_GetError();
			if (err == PR_PENDING_INTERRUPT_ERROR || err == PR_CONNECT_ABORTED_ERROR ||
			    err == PR_PROC_DESC_TABLE_FULL_ERROR || err == PR_SYS_DESC_TABLE_FULL_ERROR) {
				PR_Sleep(PR_MillisecondsToInterval(10));
				continue;
			}
			fprintf(stderr, "nss-mtls-server: accept: %s\n", error_name(err));
			return 1;
		}
		c = calloc(1, sizeof(*c));
		c->tcp = tcp;
		c->sent_alert = -1;
		c->recv_alert = -1;
		if (PR_CreateThread(PR_USER_THREAD, serve, c, PR_PRIORITY_NORMAL, PR_GLOBAL_THREAD,
				    PR_UNJOINABLE_THREAD, 0) == NULL) {
			log_line("connection-error PR_CreateThread: %s", error_name(PR_GetError()));
			PR_Close(tcp);
			free(c);
		}
	}
}
