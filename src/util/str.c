#include "util/str.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void
isd_seterr(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || err_len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
}

void
isd_sockaddr_str(const struct sockaddr *sa, socklen_t len, char *host, size_t host_len,
		 uint16_t *port)
{
	char serv[16];

	if (len == 0) {
		if (sa->sa_family == AF_INET)
			len = sizeof(struct sockaddr_in);
		else if (sa->sa_family == AF_INET6)
			len = sizeof(struct sockaddr_in6);
	}
	if (len == 0 || getnameinfo(sa, len, host, (socklen_t)host_len, serv, sizeof(serv),
				    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(host, host_len, "?");
		*port = 0;
		return;
	}
	*port = (uint16_t)strtoul(serv, NULL, 10);
}

void
isd_fmt_hostport(char *out, size_t len, const char *host, uint16_t port)
{
	if (strchr(host, ':') != NULL)
		snprintf(out, len, "[%s]:%u", host, port);
	else
		snprintf(out, len, "%s:%u", host, port);
}

/* An address as 16 bytes, IPv4 as IPv4-mapped IPv6, so that "::ffff:10.0.0.1" on a
 * dual-stack socket and "10.0.0.1" compare equal. */
static bool
addr_bytes(const char *s, struct in6_addr *out)
{
	struct in_addr v4;

	if (inet_pton(AF_INET6, s, out) == 1)
		return true;
	if (inet_pton(AF_INET, s, &v4) != 1)
		return false;
	memset(out, 0, sizeof(*out));
	out->s6_addr[10] = 0xff;
	out->s6_addr[11] = 0xff;
	memcpy(&out->s6_addr[12], &v4, 4);
	return true;
}

bool
isd_addr_same(const char *a, const char *b)
{
	struct in6_addr x, y;

	if (addr_bytes(a, &x) && addr_bytes(b, &y))
		return memcmp(&x, &y, sizeof(x)) == 0;
	return strcasecmp(a, b) == 0;
}
