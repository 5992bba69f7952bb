/* Small string helpers shared by the layers: error messages and addresses. */
#ifndef ISD_UTIL_STR_H
#define ISD_UTIL_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Formats an error message into err (err_len bytes); nothing if err is NULL or err_len 0. */
void isd_seterr(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * The numeric host and port of a socket address. len 0 takes the length from
 * the family (IPv4 or IPv6). An address that cannot be shown that way (an
 * InfiniBand AF_IB address, an unknown family) gives "?" and port 0.
 */
void isd_sockaddr_str(const struct sockaddr *sa, socklen_t len, char *host, size_t host_len,
		      uint16_t *port);

/* "host:port", or "[host]:port" when host holds a ':' (IPv6). */
void isd_fmt_hostport(char *out, size_t len, const char *host, uint16_t port);

/*
 * Whether two numeric addresses name the same address: "10.0.0.1" equals
 * "::ffff:10.0.0.1" (a dual-stack socket's view of it), "::1" equals
 * "0:0:0:0:0:0:0:1". Anything that is not a numeric address compares as text,
 * ignoring case.
 */
bool isd_addr_same(const char *a, const char *b);

#endif
