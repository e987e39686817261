/*
 * server-mtls for the gnutls image: the contract's mTLS server (images/CONTRACT.md)
 * on GnuTLS 3.7, written the way the GnuTLS manual's examples use the library
 * ("Echo server with X.509 authentication", doc/examples/ex-serv-x509.c, and the
 * certificate verification functions of "Verifying a certificate in the context of
 * a TLS session").
 *
 * Trust: --root-ca FILE -> gnutls_certificate_set_x509_trust_file (only that file);
 * without it the system trust (gnutls_certificate_set_x509_system_trust), as the
 * manual's echo server trusts /etc/ssl/certs/ca-certificates.crt.
 * --crl FILE -> gnutls_certificate_set_x509_crl_file.
 *
 * --ca-names none -> gnutls_certificate_send_x509_rdn_sequence(session, 1): "the server
 * will not advertise its trusted CAs" (lib/state.c): an empty certificate_authorities
 * list in TLS 1.2 (lib/auth/cert.c _gnutls_gen_cert_server_cert_req) and no
 * certificate_authorities extension in TLS 1.3 (lib/tls13/certificate_request.c
 * write_certificate_authorities). Trust and verification are unchanged, so it works in
 * both modes. --ca-names FILE exits 127: GnuTLS builds the list only from the CAs of the
 * credentials' trust list ("This list is constructed using the trusted certificate
 * authorities of the server", doc/cha-gtls-app.texi; lib/x509/verify-high.c
 * gnutls_x509_trust_list_add_cas, under the internal flag GNUTLS_TL_USE_IN_TLS), and has
 * no call that lists other names.
 *
 * Report mode (default): GNUTLS_CERT_REQUEST, no verification in the handshake; after
 * it, gnutls_certificate_verify_peers2() (what gnutls_session_set_verify_cert(s, NULL,
 * 0) runs, no host name for a client) and the body's reason is GnuTLS's own text:
 * gnutls_certificate_verification_status_print() for a failed verification, or
 * gnutls_strerror() of the call's error (GNUTLS_E_NO_CERTIFICATE_FOUND: "No
 * certificate was found.") when the client sent no certificate.
 *
 * --require: GNUTLS_CERT_REQUIRE + gnutls_session_set_verify_cert(session, NULL, 0);
 * a failed handshake is answered with gnutls_alert_send_appropriate(), as GnuTLS's
 * own gnutls-serv and gnutls-cli do (src/serv.c, src/cli.c), so the alert is the one
 * GnuTLS's gnutls_error_to_alert() picks.
 *
 * --auth-path PATH: the first handshake asks for no certificate (GnuTLS's default,
 * GNUTLS_CERT_IGNORE); the request head is read, and only a request for PATH asks for
 * it, as the manual's "TLS 1.2 re-authentication" and "TLS 1.3 re-authentication and
 * re-key" sections (doc/cha-gtls-app.texi) say, after
 * gnutls_certificate_server_set_request(GNUTLS_CERT_REQUEST, or GNUTLS_CERT_REQUIRE and
 * gnutls_session_set_verify_cert with --require):
 *   TLS 1.2: gnutls_rehandshake() (a HelloRequest), gnutls_record_recv() until
 *     GNUTLS_E_REHANDSHAKE (the client's new ClientHello), then gnutls_handshake(). The
 *     manual recommends it only with safe renegotiation, which is GnuTLS's default
 *     (%PARTIAL_RENEGOTIATION: a renegotiation needs RFC 5746). A client that refuses
 *     answers with a no_renegotiation warning: gnutls_record_recv() returns
 *     GNUTLS_E_WARNING_ALERT_RECEIVED and the connection stays as it was.
 *   TLS 1.3: gnutls_reauth(), post-handshake authentication; the session is made with
 *     gnutls_init(GNUTLS_POST_HANDSHAKE_AUTH), which it needs ("Both server and client
 *     have to explicitly enable support"). When the client did not offer
 *     post_handshake_auth, gnutls_reauth() "always fails with GNUTLS_E_INVALID_REQUEST"
 *     (lib/tls13/post_handshake.c) and the connection stays as it was.
 * The new certificate is then judged as in the first handshake. Where GnuTLS did not
 * ask (the client refused, or could not be asked), report mode answers with GnuTLS's
 * words for that as the reason, and --require closes the connection; a failed
 * re-handshake or re-authentication ends the connection with GnuTLS's alert
 * (gnutls_alert_send_appropriate). Other paths are answered without asking:
 * GNUTLS_E_NO_CERTIFICATE_FOUND, "No certificate was found.".
 *
 * One process; each connection is served by a forked child with a deadline.
 * SSLKEYLOGFILE is honoured by libgnutls itself (lib/kx.c, since 3.6.13).
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mtls-harness/mtls-http.h> /* the HTTP side the C servers share (images/base) */

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#define DEFAULT_PORT 9443
#define DEADLINE_S 10
#define HARD_DEADLINE_S 20
#define MAX_REQUEST 16384

static const char *USAGE =
    "usage: server-mtls --cert FILE --key FILE [--root-ca FILE] [--require] "
    "[--tls-max 1.2|1.3] [--crl FILE] [--ca-names FILE|none] [--auth-path PATH] [--port N]\n";

/* Why --ca-names FILE cannot be honoured (exit 127), as images/gnutls/impl.toml says. */
static const char *CA_NAMES_FILE_UNSUPPORTED =
    "--ca-names FILE is not supported: GnuTLS 3.7.9 names in its CertificateRequest exactly the CAs "
    "of the credentials' trust list (\"This list is constructed using the trusted certificate "
    "authorities of the server\", doc/cha-gtls-app.texi#L636-L637; lib/x509/verify-high.c#L416-L426 "
    "adds a CA's name only as the CA itself is added as trusted), and its one documented control, "
    "gnutls_certificate_send_x509_rdn_sequence(), can only drop all names (--ca-names none), so "
    "names other than the trusted CAs cannot be listed: "
    "https://github.com/gnutls/gnutls/blob/3.7.9/doc/cha-gtls-app.texi#L634-L640";

struct options {
	const char *cert, *key, *root_ca, *crl, *ca_names, *tls_max, *auth_path;
	int require;
	int port;
};

static gnutls_certificate_credentials_t cred;
static gnutls_priority_t priority;
static struct options opt;

/* One line on stdout, written at once and flushed (children share the stream). */
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
	fflush(stdout);
	if (write(STDOUT_FILENO, buf, n) < 0) {
		/* nothing to do */
	}
}

static void usage_exit(const char *msg, int code)
{
	if (msg)
		fprintf(stderr, "server-mtls: %s\n", msg);
	fputs(USAGE, stderr);
	exit(code);
}

static void check_readable(const char *path, const char *flag)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "server-mtls: cannot read --%s %s: %s\n", flag, path, strerror(errno));
		exit(2);
	}
	fclose(f);
}

static void parse_args(int argc, char **argv)
{
	int i;

	opt.port = DEFAULT_PORT;
	for (i = 1; i < argc; i++) {
		char *arg = argv[i];
		const char *value = NULL;
		char name[64];
		char *eq;

		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			fputs(USAGE, stdout);
			exit(0);
		}
		if (strcmp(arg, "--version") == 0) {
			printf("GnuTLS %s (libgnutls, C server)\n", gnutls_check_version(NULL));
			exit(0);
		}
		if (strncmp(arg, "--", 2) != 0 || strlen(arg) >= sizeof(name)) {
			fprintf(stderr, "server-mtls: unknown argument %s\n", arg);
			usage_exit(NULL, 2);
		}
		strcpy(name, arg);
		eq = strchr(name, '=');
		if (eq) {
			*eq = '\0';
			value = arg + (eq - name) + 1;
		}
		if (strcmp(name, "--require") == 0) {
			if (value) {
				fprintf(stderr, "server-mtls: --require takes no value\n");
				usage_exit(NULL, 2);
			}
			opt.require = 1;
			continue;
		}
		if (strcmp(name, "--cert") != 0 && strcmp(name, "--key") != 0 &&
		    strcmp(name, "--root-ca") != 0 && strcmp(name, "--crl") != 0 &&
		    strcmp(name, "--ca-names") != 0 && strcmp(name, "--tls-max") != 0 &&
		    strcmp(name, "--auth-path") != 0 && strcmp(name, "--port") != 0) {
			fprintf(stderr, "server-mtls: unknown option %s\n", name);
			usage_exit(NULL, 2);
		}
		if (value == NULL) {
			if (i + 1 >= argc) {
				fprintf(stderr, "server-mtls: option %s needs a value\n", name);
				usage_exit(NULL, 2);
			}
			value = argv[++i];
		}
		if (strcmp(name, "--cert") == 0)
			opt.cert = value;
		else if (strcmp(name, "--key") == 0)
			opt.key = value;
		else if (strcmp(name, "--root-ca") == 0)
			opt.root_ca = value;
		else if (strcmp(name, "--crl") == 0)
			opt.crl = value;
		else if (strcmp(name, "--ca-names") == 0)
			opt.ca_names = value;
		else if (strcmp(name, "--auth-path") == 0) {
			if (value[0] != '/' || value[strcspn(value, " \t\r\n?#")] != '\0') {
				fprintf(stderr, "server-mtls: --auth-path must be a URL path starting with / "
						"(no spaces, query or fragment), got '%s'\n", value);
				exit(2);
			}
			opt.auth_path = value;
		}
		else if (strcmp(name, "--tls-max") == 0) {
			if (strcmp(value, "1.2") != 0 && strcmp(value, "1.3") != 0) {
				fprintf(stderr, "server-mtls: --tls-max must be 1.2 or 1.3, got %s\n", value);
				usage_exit(NULL, 2);
			}
			opt.tls_max = value;
		} else {
			char *end;
			long p = strtol(value, &end, 10);
			if (*value == '\0' || *end != '\0' || p < 1 || p > 65535) {
				fprintf(stderr, "server-mtls: --port must be 1-65535, got %s\n", value);
				usage_exit(NULL, 2);
			}
			opt.port = (int)p;
		}
	}
	if (opt.cert == NULL) {
		fprintf(stderr, "server-mtls: missing required option --cert\n");
		exit(1);
	}
	if (opt.key == NULL) {
		fprintf(stderr, "server-mtls: missing required option --key\n");
		exit(1);
	}
	if (opt.ca_names && strcmp(opt.ca_names, "none") != 0) {
		fprintf(stderr, "server-mtls: %s\n", CA_NAMES_FILE_UNSUPPORTED);
		exit(127);
	}
}

static void setup_credentials(void)
{
	int ret;
	const char *prio = "NORMAL";

	check_readable(opt.cert, "cert");
	check_readable(opt.key, "key");
	if (opt.root_ca)
		check_readable(opt.root_ca, "root-ca");
	if (opt.crl)
		check_readable(opt.crl, "crl");

	if ((ret = gnutls_global_init()) < 0) {
		fprintf(stderr, "server-mtls: gnutls_global_init: %s\n", gnutls_strerror(ret));
		exit(1);
	}
	gnutls_certificate_allocate_credentials(&cred);

	if (opt.root_ca) {
		ret = gnutls_certificate_set_x509_trust_file(cred, opt.root_ca, GNUTLS_X509_FMT_PEM);
		if (ret <= 0) {
			fprintf(stderr, "server-mtls: --root-ca %s: %s\n", opt.root_ca,
				ret == 0 ? "no certificate in the file" : gnutls_strerror(ret));
			exit(2);
		}
	} else {
		ret = gnutls_certificate_set_x509_system_trust(cred);
		if (ret < 0) {
			fprintf(stderr, "server-mtls: system trust: %s\n", gnutls_strerror(ret));
			exit(1);
		}
	}
	if (opt.crl) {
		ret = gnutls_certificate_set_x509_crl_file(cred, opt.crl, GNUTLS_X509_FMT_PEM);
		if (ret <= 0) {
			fprintf(stderr, "server-mtls: --crl %s: %s\n", opt.crl,
				ret == 0 ? "no CRL in the file" : gnutls_strerror(ret));
			exit(2);
		}
	}
	/* The certificate file holds the leaf first, then its intermediate. */
	ret = gnutls_certificate_set_x509_key_file2(cred, opt.cert, opt.key, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (ret < 0) {
		fprintf(stderr, "server-mtls: cannot use --cert %s / --key %s: %s\n", opt.cert, opt.key,
			gnutls_strerror(ret));
		exit(2);
	}

	if (opt.tls_max && strcmp(opt.tls_max, "1.2") == 0)
		prio = "NORMAL:-VERS-TLS1.3";
	ret = gnutls_priority_init(&priority, prio, NULL);
	if (ret < 0) {
		fprintf(stderr, "server-mtls: priority %s: %s\n", prio, gnutls_strerror(ret));
		exit(1);
	}
}

static int listen_socket(int port)
{
	int fd, on = 1, off = 0;
	struct sockaddr_in6 a6;
	struct sockaddr_in a4;

	/* Every address, IPv6 and IPv4 alike (as Node's and the Python server's listen). */
	fd = socket(AF_INET6, SOCK_STREAM, 0);
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
		memset(&a6, 0, sizeof(a6));
		a6.sin6_family = AF_INET6;
		a6.sin6_addr = in6addr_any;
		a6.sin6_port = htons(port);
		if (bind(fd, (struct sockaddr *)&a6, sizeof(a6)) == 0)
			return fd;
		close(fd);
	}
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	memset(&a4, 0, sizeof(a4));
	a4.sin_family = AF_INET;
	a4.sin_addr.s_addr = htonl(INADDR_ANY);
	a4.sin_port = htons(port);
	if (bind(fd, (struct sockaddr *)&a4, sizeof(a4)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Close at once, as GnuTLS's example server does. When the client still sends (the rest
 * of its TLS 1.2 flight, a TLS 1.3 client's request) the kernel answers with RST (RFC 1122
 * 4.2.2.13), which can reach the client before it reads the alert just sent: the matrix
 * shows what a user of GnuTLS gets.
 */
static void close_connection(int fd)
{
	close(fd);
}

/* GnuTLS's text for a verification status, without its trailing blank. */
static void status_text(unsigned status, char *out, size_t size)
{
	gnutls_datum_t txt = { NULL, 0 };
	size_t len;

	if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &txt, 0) < 0) {
		snprintf(out, size, "status 0x%x", status);
		return;
	}
	snprintf(out, size, "%s", (char *)txt.data);
	gnutls_free(txt.data);
	len = strlen(out);
	while (len > 0 && out[len - 1] == ' ')
		out[--len] = '\0';
}

static const char *tls_name(gnutls_session_t session)
{
	switch (gnutls_protocol_get_version(session)) {
	case GNUTLS_TLS1_3:
		return "TLSv1.3";
	case GNUTLS_TLS1_2:
		return "TLSv1.2";
	case GNUTLS_TLS1_1:
		return "TLSv1.1";
	case GNUTLS_TLS1_0:
		return "TLSv1";
	default:
		return gnutls_protocol_get_name(gnutls_protocol_get_version(session));
	}
}

/* The client's common name, or "" when it has none. */
static void peer_cn(gnutls_session_t session, char *out, size_t size)
{
	const gnutls_datum_t *peers;
	unsigned n = 0;
	gnutls_x509_crt_t crt;
	size_t len = size;

	out[0] = '\0';
	peers = gnutls_certificate_get_peers(session, &n);
	if (peers == NULL || n == 0)
		return;
	if (gnutls_x509_crt_init(&crt) < 0)
		return;
	if (gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER) >= 0) {
		if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, out, &len) < 0)
			out[0] = '\0';
	}
	gnutls_x509_crt_deinit(crt);
}

/*
 * A failed handshake (the first one, a re-handshake or a post-handshake authentication):
 * logged, and answered with the alert GnuTLS picks for the error, as gnutls-serv does.
 */
static void handshake_failed(gnutls_session_t session, int ret, const char *what)
{
	char extra[1200] = "", reason[1024] = "";
	int level = 0, sent;
	int alert = -1;

	if (ret == GNUTLS_E_FATAL_ALERT_RECEIVED) {
		snprintf(extra, sizeof(extra), " received-alert=%s",
			 gnutls_alert_get_strname(gnutls_alert_get(session)));
	} else {
		if (ret == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
			status_text(gnutls_session_get_verify_cert_status(session), reason, sizeof(reason));
			snprintf(extra, sizeof(extra), " status=\"%s\"", reason);
		}
		/* gnutls_alert_send_appropriate() sends gnutls_error_to_alert(ret) for
		 * every fatal error but a received alert (lib/alert.c). */
		if (gnutls_error_is_fatal(ret))
			alert = gnutls_error_to_alert(ret, &level);
		do {
			sent = gnutls_alert_send_appropriate(session, ret);
		} while (sent == GNUTLS_E_AGAIN || sent == GNUTLS_E_INTERRUPTED);
	}
	log_line("handshake-failed %s%s%s: %s%s%s%s", what ? what : "", what ? " " : "", gnutls_strerror_name(ret),
		 gnutls_strerror(ret), extra, alert >= 0 ? " sent-alert=" : "",
		 alert >= 0 ? gnutls_alert_get_strname((gnutls_alert_description_t)alert) : "");
}

/*
 * What the server saw of the client's certificate so far: 1 when it is trusted, else 0
 * and GnuTLS's words for the reason. Logs the connection's line.
 */
static int judge(gnutls_session_t session, char *reason, size_t size)
{
	const gnutls_datum_t *peers;
	unsigned n = 0, status = 0;
	char subject[512], esc_subject[1024];
	int ret, valid;

	peer_cn(session, subject, sizeof(subject));
	peers = gnutls_certificate_get_peers(session, &n);
	if (opt.require && peers != NULL && n > 0) {
		/* The handshake verified the certificate already. */
		valid = 1;
	} else {
		ret = gnutls_certificate_verify_peers2(session, &status);
		if (ret < 0) {
			valid = 0;
			snprintf(reason, size, "%s", gnutls_strerror(ret));
		} else if (status != 0) {
			valid = 0;
			status_text(status, reason, size);
		} else {
			valid = 1;
		}
	}
	mtls_json_escape(subject, esc_subject, sizeof(esc_subject));
	if (valid)
		log_line("handshake %s subject=\"%s\" authorized=true", tls_name(session), esc_subject);
	else if (peers == NULL || n == 0)
		log_line("handshake %s subject=none authorized=false reason=%s", tls_name(session), reason);
	else
		log_line("handshake %s subject=\"%s\" authorized=false reason=%s", tls_name(session), esc_subject,
			 reason);
	return valid;
}

/* Read the request head into request (MAX_REQUEST + 1 bytes); 0, or -1 (logged). */
static int read_request(gnutls_session_t session, char *request, size_t *have)
{
	int ret = 0;

	while (*have < MAX_REQUEST) {
		ret = gnutls_record_recv(session, request + *have, MAX_REQUEST - *have);
		if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED)
			continue;
		if (ret <= 0)
			break;
		*have += ret;
		request[*have] = '\0';
		if (strstr(request, "\r\n\r\n") || strstr(request, "\n\n"))
			break;
	}
	if (ret < 0) {
		if (ret == GNUTLS_E_FATAL_ALERT_RECEIVED)
			log_line("connection-error %s: %s received-alert=%s", gnutls_strerror_name(ret),
				 gnutls_strerror(ret), gnutls_alert_get_strname(gnutls_alert_get(session)));
		else
			log_line("connection-error %s: %s", gnutls_strerror_name(ret), gnutls_strerror(ret));
		return -1;
	}
	if (*have == 0) {
		log_line("connection-closed before a request");
		return -1;
	}
	return 0;
}

/*
 * --auth-path: ask for the client certificate now, on the established connection.
 * 0: the client answered (with a certificate or without one); 1: GnuTLS did not get to
 * ask, or the client declined, and the connection is as it was (refused: GnuTLS's words);
 * -1: the connection failed (logged, alert sent).
 */
static int ask_certificate(gnutls_session_t session, char *refused, size_t size)
{
	char scratch[4096];
	int ret;

	gnutls_certificate_server_set_request(session, opt.require ? GNUTLS_CERT_REQUIRE : GNUTLS_CERT_REQUEST);
	if (opt.require)
		gnutls_session_set_verify_cert(session, NULL, 0);

	if (gnutls_protocol_get_version(session) == GNUTLS_TLS1_3) {
		/* Post-handshake authentication. */
		for (;;) {
			ret = gnutls_reauth(session, 0);
			if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED)
				continue;
			if (ret == GNUTLS_E_GOT_APPLICATION_DATA) {
				/* Data sent before the client saw the request: read as unauthenticated. */
				int got = gnutls_record_recv(session, scratch, sizeof(scratch));
				if (got < 0 && got != GNUTLS_E_AGAIN && got != GNUTLS_E_INTERRUPTED) {
					ret = got;
					break;
				}
				continue;
			}
			break;
		}
		if (ret == GNUTLS_E_INVALID_REQUEST) {
			/* The client did not offer post_handshake_auth: nothing was sent. */
			snprintf(refused, size, "%s", gnutls_strerror(ret));
			log_line("reauth-refused %s: %s post_handshake_auth=%s", gnutls_strerror_name(ret),
				 gnutls_strerror(ret),
				 (gnutls_session_get_flags(session) & GNUTLS_SFLAGS_POST_HANDSHAKE_AUTH) ? "offered"
													: "not-offered");
			return 1;
		}
		if (ret < 0) {
			handshake_failed(session, ret, "post-handshake-auth");
			return -1;
		}
		return 0;
	}

	/* TLS 1.2: renegotiation. */
	do {
		ret = gnutls_rehandshake(session);
	} while (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED);
	if (ret < 0) {
		handshake_failed(session, ret, "renegotiation");
		return -1;
	}
	/* "call gnutls_record_recv() until GNUTLS_E_REHANDSHAKE is returned to clear any
	 * pending data" (gnutls_rehandshake). */
	for (;;) {
		ret = gnutls_record_recv(session, scratch, sizeof(scratch));
		if (ret > 0 || ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED)
			continue;
		break;
	}
	if (ret == GNUTLS_E_WARNING_ALERT_RECEIVED) {
		/* The client declined (no_renegotiation); the connection goes on. */
		snprintf(refused, size, "%s (%s)", gnutls_strerror(ret), gnutls_alert_get_name(gnutls_alert_get(session)));
		log_line("renegotiation-refused %s: %s received-alert=%s", gnutls_strerror_name(ret), gnutls_strerror(ret),
			 gnutls_alert_get_strname(gnutls_alert_get(session)));
		return 1;
	}
	if (ret == 0) {
		log_line("connection-closed during renegotiation");
		return -1;
	}
	if (ret != GNUTLS_E_REHANDSHAKE) {
		handshake_failed(session, ret, "renegotiation");
		return -1;
	}
	do {
		ret = gnutls_handshake(session);
	} while (ret < 0 && gnutls_error_is_fatal(ret) == 0);
	if (ret < 0) {
		handshake_failed(session, ret, "renegotiation");
		return -1;
	}
	return 0;
}

static void serve(int fd)
{
	gnutls_session_t session;
	int ret;
	int valid;
	char reason[1024] = "";
	char request[MAX_REQUEST + 1];
	size_t have = 0;
	char response[3000];
	struct timeval tv = { DEADLINE_S, 0 };
	unsigned flags = GNUTLS_SERVER | GNUTLS_NO_SIGNAL;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

	/* --auth-path: TLS 1.3 post-handshake authentication must be enabled at gnutls_init. */
	if (opt.auth_path)
		flags |= GNUTLS_POST_HANDSHAKE_AUTH;
	gnutls_init(&session, flags);
	gnutls_priority_set(session, priority);
	gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, cred);
	/* --ca-names none (parse_args refused a FILE): a CertificateRequest that names no CA. */
	if (opt.ca_names)
		gnutls_certificate_send_x509_rdn_sequence(session, 1);
	if (opt.auth_path) {
		/* No certificate asked in the first handshake (GNUTLS_CERT_IGNORE, the default):
		 * ask_certificate() asks on a request for PATH. */
	} else if (opt.require) {
		gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUIRE);
		/* Verify in the handshake; no host name for a client (documented as NULL). */
		gnutls_session_set_verify_cert(session, NULL, 0);
	} else {
		gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUEST);
	}
	gnutls_handshake_set_timeout(session, DEADLINE_S * 1000);
	gnutls_record_set_timeout(session, DEADLINE_S * 1000);
	gnutls_transport_set_int(session, fd);

	do {
		ret = gnutls_handshake(session);
	} while (ret < 0 && gnutls_error_is_fatal(ret) == 0);

	if (ret < 0) {
		handshake_failed(session, ret, NULL);
		gnutls_deinit(session);
		close_connection(fd);
		return;
	}

	if (!opt.auth_path) {
		valid = judge(session, reason, sizeof(reason));
		if (read_request(session, request, &have) != 0) {
			gnutls_deinit(session);
			close_connection(fd);
			return;
		}
	} else {
		/* --auth-path: the request first, then the certificate if it is for PATH. */
		if (read_request(session, request, &have) != 0) {
			gnutls_deinit(session);
			close_connection(fd);
			return;
		}
		if (!mtls_path_matches(request, opt.auth_path)) {
			valid = judge(session, reason, sizeof(reason));
		} else {
			int asked = ask_certificate(session, reason, sizeof(reason));
			if (asked < 0) {
				gnutls_deinit(session);
				close_connection(fd);
				return;
			}
			if (asked > 0 && opt.require) {
				log_line("client-auth-failed %s (closing: --require)", tls_name(session));
				do {
					ret = gnutls_bye(session, GNUTLS_SHUT_WR);
				} while (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED);
				gnutls_deinit(session);
				close_connection(fd);
				return;
			}
			if (asked > 0) {
				log_line("handshake %s subject=none authorized=false reason=%s", tls_name(session), reason);
				valid = 0;
			} else {
				valid = judge(session, reason, sizeof(reason));
			}
		}
	}

	mtls_report_response(valid, reason, response, sizeof(response));
	{
		size_t off = 0, len = strlen(response);
		while (off < len) {
			ret = gnutls_record_send(session, response + off, len - off);
			if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED)
				continue;
			if (ret < 0) {
				log_line("connection-error %s: %s", gnutls_strerror_name(ret), gnutls_strerror(ret));
				break;
			}
			off += ret;
		}
	}
	do {
		ret = gnutls_bye(session, GNUTLS_SHUT_WR);
	} while (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED);
	gnutls_deinit(session);
	close_connection(fd);
}

static void on_term(int sig)
{
	(void)sig;
	_exit(0);
}

int main(int argc, char **argv)
{
	int lfd;
	struct sigaction sa;

	parse_args(argc, argv);
	setup_credentials();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	/* As PID 1 of a container the default action of SIGTERM would be ignored. */
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* Children are reaped by the kernel. */
	sa.sa_handler = SIG_IGN;
	sa.sa_flags = SA_NOCLDWAIT;
	sigaction(SIGCHLD, &sa, NULL);

	lfd = listen_socket(opt.port);
	if (lfd < 0 || listen(lfd, 128) < 0) {
		fprintf(stderr, "server-mtls: cannot listen on port %d: %s\n", opt.port, strerror(errno));
		return 1;
	}
	log_line("Example mTLS app listening at https://localhost:%d", opt.port);

	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		pid_t pid;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE)
				continue;
			fprintf(stderr, "server-mtls: accept: %s\n", strerror(errno));
			return 1;
		}
		pid = fork();
		if (pid == 0) {
			close(lfd);
			alarm(HARD_DEADLINE_S); /* the default action ends a stuck child */
			serve(fd);
			_exit(0);
		}
		if (pid < 0)
			log_line("connection-error fork: %s", strerror(errno));
		close(fd);
	}
}
