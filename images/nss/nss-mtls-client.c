/*
 * nss-mtls-client: the TLS part of the nss image's request-mtls (images/CONTRACT.md).
 * Mozilla NSS 3.87 as Debian bookworm ships it, used as NSS's own tstclnt uses it:
 *   SSL_ImportFD + SSL_SetURL(host): the default certificate hook, SSL_AuthCertificate,
 *     verifies the server (CERT_VerifyCert(now) with certUsageSSLServer, then
 *     CERT_VerifyCertName against the URL's host);
 *   SSL_GetClientAuthDataHook(NSS_GetClientAuthData, nickname): NSS's default client
 *     certificate selection, given the nickname of the imported certificate.
 * The request-mtls wrapper has already built the NSS database this program opens.
 *
 *   nss-mtls-client --db DIR [--nickname NAME] --url https://HOST[:PORT][/PATH]
 *
 * Prints the response body on stdout; on a failure prints
 *    Error Code: <PR_ErrorToName of NSS's error>
 * Error Message: <PR_ErrorToString of it>
 * on stderr and exits 1.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cert.h>
#include <nspr.h>
#include <nss.h>
#include <prerror.h>
#include <secerr.h>
#include <ssl.h>
#include <sslerr.h>

#define DEADLINE_S 10
#define MAX_RESPONSE 65536

static void fail(PRErrorCode err, const char *context)
{
	const char *name = PR_ErrorToName(err);
	const char *text = PR_ErrorToString(err, PR_LANGUAGE_I_DEFAULT);

	if (context)
		fprintf(stderr, "nss-mtls-client: %s\n", context);
	fprintf(stderr, "   Error Code: %s\n", name ? name : "UNKNOWN_ERROR");
	fprintf(stderr, "Error Message: %s\n", text && *text ? text : "(no message)");
	exit(1);
}

static void usage(void)
{
	fprintf(stderr, "usage: nss-mtls-client --db DIR [--nickname NAME] --url https://HOST[:PORT][/PATH]\n");
	exit(2);
}

/* Whether the response head (up to body) says "Transfer-Encoding: chunked". */
static int is_chunked(const char *head, const char *body)
{
	const char *line = strstr(head, "\r\n");

	while (line && line < body) {
		line += 2;
		if (strncasecmp(line, "transfer-encoding:", 18) == 0) {
			const char *end = strstr(line, "\r\n");
			const char *v;
			for (v = line + 18; v && end && v + 7 <= end; v++)
				if (strncasecmp(v, "chunked", 7) == 0)
					return 1;
		}
		line = strstr(line, "\r\n");
	}
	return 0;
}

/* The body of a chunked response (RFC 9112 section 7.1), as far as it was received. */
static void print_chunked(const char *p)
{
	for (;;) {
		char *end;
		unsigned long size = strtoul(p, &end, 16);
		const char *data;

		if (end == p || size == 0)
			return;
		data = strstr(end, "\r\n");
		if (data == NULL)
			return;
		data += 2;
		if (strlen(data) < size) {
			fputs(data, stdout);
			return;
		}
		fwrite(data, 1, size, stdout);
		p = data + size;
		if (strncmp(p, "\r\n", 2) == 0)
			p += 2;
	}
}

int main(int argc, char **argv)
{
	const char *db = NULL, *nickname = NULL, *url = NULL;
	char host[512], path[2048], authority[600], dbspec[4096];
	char request[4096];
	static char response[MAX_RESPONSE + 1];
	int port = 443, i, have = 0, n;
	PRAddrInfo *ai;
	PRNetAddr addr;
	void *iter = NULL;
	PRFileDesc *ssl = NULL;
	PRErrorCode connect_error = 0;
	const char *rest, *slash, *colon, *body;

	signal(SIGPIPE, SIG_IGN);
	for (i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			usage();
		if (strcmp(argv[i], "--db") == 0)
			db = argv[++i];
		else if (strcmp(argv[i], "--nickname") == 0)
			nickname = argv[++i];
		else if (strcmp(argv[i], "--url") == 0)
			url = argv[++i];
		else
			usage();
	}
	if (!db || !url || strncmp(url, "https://", 8) != 0)
		usage();

	/* https://HOST[:PORT][/PATH] (the wrapper checked its shape) */
	rest = url + 8;
	slash = strchr(rest, '/');
	snprintf(authority, sizeof(authority), "%.*s", (int)(slash ? slash - rest : (long)strlen(rest)), rest);
	snprintf(path, sizeof(path), "%s", slash ? slash : "/");
	if (authority[0] == '[') {
		char *close = strchr(authority, ']');
		if (!close)
			usage();
		snprintf(host, sizeof(host), "%.*s", (int)(close - authority - 1), authority + 1);
		if (close[1] == ':')
			port = atoi(close + 2);
	} else {
		colon = strrchr(authority, ':');
		snprintf(host, sizeof(host), "%.*s", (int)(colon ? colon - authority : (long)strlen(authority)),
			 authority);
		if (colon)
			port = atoi(colon + 1);
	}

	snprintf(dbspec, sizeof(dbspec), "sql:%s", db);
	if (NSS_Init(dbspec) != SECSuccess)
		fail(PR_GetError(), "NSS_Init");
	if (NSS_SetDomesticPolicy() != SECSuccess)
		fail(PR_GetError(), "NSS_SetDomesticPolicy");

	ai = PR_GetAddrInfoByName(host, PR_AF_UNSPEC, PR_AI_ADDRCONFIG);
	if (ai == NULL)
		fail(PR_GetError(), "cannot resolve the host");
	/* Every address of the host in turn, as a browser does. */
	while ((iter = PR_EnumerateAddrInfo(iter, ai, (PRUint16)port, &addr)) != NULL) {
		PRFileDesc *tcp = PR_OpenTCPSocket(PR_NetAddrFamily(&addr));
		if (tcp == NULL) {
			connect_error = PR_GetError();
			continue;
		}
		if (PR_Connect(tcp, &addr, PR_SecondsToInterval(DEADLINE_S)) != PR_SUCCESS) {
			/* Keep the most telling error: an address this host cannot use at all
			 * (::1 where IPv6 is off) says less than a refused connection. */
			PRErrorCode err = PR_GetError();
			if (connect_error == 0 || connect_error == PR_ADDRESS_NOT_AVAILABLE_ERROR)
				connect_error = err;
			PR_Close(tcp);
			continue;
		}
		ssl = SSL_ImportFD(NULL, tcp);
		if (ssl == NULL)
			fail(PR_GetError(), "SSL_ImportFD");
		break;
	}
	PR_FreeAddrInfo(ai);
	if (ssl == NULL)
		fail(connect_error ? connect_error : PR_ADDRESS_NOT_AVAILABLE_ERROR, "cannot connect to the server");

	SSL_OptionSet(ssl, SSL_SECURITY, PR_TRUE);
	SSL_OptionSet(ssl, SSL_HANDSHAKE_AS_CLIENT, PR_TRUE);
	/* The name the server's certificate must carry (SSL_AuthCertificate) and the SNI. */
	if (SSL_SetURL(ssl, host) != SECSuccess)
		fail(PR_GetError(), "SSL_SetURL");
	if (nickname && SSL_GetClientAuthDataHook(ssl, NSS_GetClientAuthData, (void *)nickname) != SECSuccess)
		fail(PR_GetError(), "SSL_GetClientAuthDataHook");
	if (SSL_ResetHandshake(ssl, PR_FALSE) != SECSuccess)
		fail(PR_GetError(), "SSL_ResetHandshake");
	if (SSL_ForceHandshakeWithTimeout(ssl, PR_SecondsToInterval(DEADLINE_S)) != SECSuccess)
		fail(PR_GetError(), NULL);

	snprintf(request, sizeof(request), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path,
		 authority);
	{
		int off = 0, len = (int)strlen(request);
		while (off < len) {
			n = PR_Send(ssl, request + off, len - off, 0, PR_SecondsToInterval(DEADLINE_S));
			if (n <= 0)
				fail(PR_GetError(), NULL);
			off += n;
		}
	}
	for (;;) {
		n = PR_Recv(ssl, response + have, MAX_RESPONSE - have, 0, PR_SecondsToInterval(DEADLINE_S));
		if (n < 0)
			/* Any receive error fails the request, as tstclnt's does. */
			fail(PR_GetError(), NULL);
		if (n == 0)
			break;
		have += n;
		response[have] = '\0';
		if (have >= MAX_RESPONSE)
			break;
	}
	response[have] = '\0';
	if (have == 0)
		/* The server closed the connection without a response (NSPR's name for it). */
		fail(PR_END_OF_FILE_ERROR, NULL);
	body = strstr(response, "\r\n\r\n");
	if (body == NULL || strncmp(response, "HTTP/", 5) != 0) {
		fprintf(stderr, "nss-mtls-client: not an HTTP response\n");
		fprintf(stderr, "   Error Code: BAD_HTTP_RESPONSE\n");
		fprintf(stderr, "Error Message: %.200s\n", response);
		return 1;
	}
	body += 4;
	if (is_chunked(response, body))
		print_chunked(body);
	else
		fputs(body, stdout);
	PR_Close(ssl);
	NSS_Shutdown();
	return 0;
}
