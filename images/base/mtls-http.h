/*
 * The HTTP side that the C servers of the matrix share (images/gnutls/server-mtls.c and
 * images/nss/nss-mtls-server.c), none of it TLS: whether a request is for a path, and
 * the contract's report body and response (images/CONTRACT.md). The base image installs
 * this file as /usr/local/include/mtls-harness/mtls-http.h, where gcc finds it by
 * default.
 */
#ifndef MTLS_HARNESS_MTLS_HTTP_H
#define MTLS_HARNESS_MTLS_HTTP_H

#include <stdio.h>
#include <string.h>

/* s as the inside of a JSON string: quotes and backslashes escaped, control characters
 * as \u00XX; cut short rather than overflow out. */
static void mtls_json_escape(const char *s, char *out, size_t size)
{
	size_t n = 0;

	for (; *s && n + 7 < size; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = c;
		} else if (c < 0x20) {
			n += snprintf(out + n, size - n, "\\u%04x", c);
		} else {
			out[n++] = c;
		}
	}
	out[n] = '\0';
}

/* Whether the request line's target, without its query, is path. */
static int mtls_path_matches(const char *request, const char *path)
{
	const char *target = strchr(request, ' ');
	size_t len;

	if (target == NULL)
		return 0;
	target++;
	len = strcspn(target, " ?#\r\n");
	return len == strlen(path) && strncmp(target, path, len) == 0;
}

/* The whole HTTP response of report mode: {"mTLSValid": true}, or false with the stack's
 * own reason. */
static void mtls_report_response(int valid, const char *reason, char *response, size_t size)
{
	char body[2600], escaped[2048];

	if (valid) {
		snprintf(body, sizeof(body), "{\"mTLSValid\": true}\n");
	} else {
		mtls_json_escape(reason, escaped, sizeof(escaped));
		snprintf(body, sizeof(body), "{\"mTLSValid\": false, \"reason\": \"%s\"}\n", escaped);
	}
	snprintf(response, size,
		 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
		 "Connection: close\r\n\r\n%s",
		 strlen(body), body);
}

#endif
