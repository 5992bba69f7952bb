/* "ADDR:PORT" and "[V6]:PORT" for listeners that are not portals (metrics_listen). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/target.h"

int
isd_target_listen_parse(const char *s, char *host, size_t hostlen, uint16_t *port, char *why,
			size_t whylen)
{
	const char *colon, *h;
	size_t hl;
	char buf[64], *end;
	unsigned char addr[16];
	unsigned long p;
	bool v6 = false;

	if (s == NULL || s[0] == '\0') {
		snprintf(why, whylen, "empty address (ADDR:PORT or [V6]:PORT)");
		return -EINVAL;
	}
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (rb == NULL || rb[1] != ':') {
			snprintf(why, whylen, "'%.100s': want [V6]:PORT", s);
			return -EINVAL;
		}
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
		v6 = true;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL) {
			snprintf(why, whylen, "'%.100s': want ADDR:PORT (IPv6 in brackets)", s);
			return -EINVAL;
		}
		h = s;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= sizeof(buf) || hl >= hostlen) {
		snprintf(why, whylen, "'%.100s': bad address", s);
		return -EINVAL;
	}
	memcpy(buf, h, hl);
	buf[hl] = '\0';
	if (inet_pton(v6 ? AF_INET6 : AF_INET, buf, addr) != 1) {
		snprintf(why, whylen, "'%.100s': not a numeric %s address", buf,
			 v6 ? "IPv6" : "IPv4");
		return -EINVAL;
	}
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || errno != 0 || p > 65535) {
		snprintf(why, whylen, "'%.100s': bad port (0..65535)", colon + 1);
		return -EINVAL;
	}
	memcpy(host, buf, hl + 1);
	*port = (uint16_t)p;
	return 0;
}
