#include "util/str.h"

#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
