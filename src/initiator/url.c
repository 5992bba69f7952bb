/*
 * URL parsing, in the form libiscsi and QEMU use:
 *
 *   iscsi://[user[%password]@]host[:port][/target-iqn[/lun]][?key=value[&…]]
 *   iser://…  (same shape)
 *
 * The password is everything between the first '%' of the user part and the
 * last '@' before the host, so it may contain '%', '@', ':' and '/'.
 * IPv6 addresses go in brackets ([::1]:3260). Query keys: header_digest,
 * data_digest (none, crc32c, crc32c,none, none,crc32c), target_user and
 * target_password (mutual CHAP).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "initiator/init_int.h"

static int url_err(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
url_err(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && err_len > 0) {
		va_start(ap, fmt);
		vsnprintf(err, err_len, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int
copy_part(char *dst, size_t cap, const char *src, size_t len)
{
	if (len >= cap)
		return -1;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return 0;
}

static int
parse_digest(const char *v)
{
	if (strcasecmp(v, "none") == 0)
		return ISERD_DIGEST_NONE;
	if (strcasecmp(v, "crc32c") == 0)
		return ISERD_DIGEST_CRC32C;
	if (strcasecmp(v, "crc32c,none") == 0 || strcasecmp(v, "crc32c-none") == 0)
		return ISERD_DIGEST_CRC32C_NONE;
	if (strcasecmp(v, "none,crc32c") == 0 || strcasecmp(v, "none-crc32c") == 0)
		return ISERD_DIGEST_NONE_CRC32C;
	return -1;
}

static int
parse_query(char *q, struct iserd_url *u, char *err, size_t err_len)
{
	char *save = NULL, *kv;

	for (kv = strtok_r(q, "&", &save); kv != NULL; kv = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(kv, '=');
		const char *k = kv, *v;

		if (eq == NULL)
			return url_err(err, err_len, "URL argument '%s' has no '='", kv);
		*eq = '\0';
		v = eq + 1;
		if (strcmp(k, "header_digest") == 0 || strcmp(k, "data_digest") == 0) {
			int d = parse_digest(v);

			if (d < 0)
				return url_err(err, err_len, "bad %s '%s' (none or crc32c)", k, v);
			if (k[0] == 'h')
				u->header_digest = d;
			else
				u->data_digest = d;
		} else if (strcmp(k, "target_user") == 0) {
			if (copy_part(u->target_user, sizeof(u->target_user), v, strlen(v)) < 0)
				return url_err(err, err_len, "target_user too long");
		} else if (strcmp(k, "target_password") == 0) {
			if (copy_part(u->target_password, sizeof(u->target_password), v,
				      strlen(v)) < 0)
				return url_err(err, err_len, "target_password too long");
		} else {
			return url_err(err, err_len, "unknown URL argument '%s'", k);
		}
	}
	return 0;
}

static int
parse_url(const char *str, struct iserd_url *u, bool full, char *err, size_t err_len)
{
	const char *p, *auth_end, *at, *host, *host_end, *path;
	char buf[2048];
	char *q;
	size_t n;

	memset(u, 0, sizeof(*u));
	u->header_digest = -1;
	u->data_digest = -1;
	u->port = 3260;
	if (str == NULL)
		return url_err(err, err_len, "no URL");
	if (strlen(str) >= sizeof(buf))
		return url_err(err, err_len, "URL too long");
	if (strncmp(str, "iscsi://", 8) == 0) {
		u->transport = ISERD_TRANSPORT_TCP;
		p = str + 8;
	} else if (strncmp(str, "iser://", 7) == 0) {
		u->transport = ISERD_TRANSPORT_ISER;
		p = str + 7;
	} else {
		return url_err(err, err_len,
			       "URL '%s' must start with iscsi:// or iser:// "
			       "(iscsi://[user[%%password]@]host[:port]/target-iqn/lun)",
			       str);
	}

	/* Split off the query first: '?' cannot appear in an IQN or a host. */
	snprintf(buf, sizeof(buf), "%s", p);
	q = strchr(buf, '?');
	if (q != NULL) {
		*q++ = '\0';
		if (parse_query(q, u, err, err_len) < 0)
			return -EINVAL;
	}
	p = buf;

	/* user[%password]@ : the last '@' ends the user part (IQNs have none). */
	at = strrchr(p, '@');
	if (at != NULL) {
		const char *pct = memchr(p, '%', (size_t)(at - p));

		if (pct != NULL) {
			if (copy_part(u->user, sizeof(u->user), p, (size_t)(pct - p)) < 0 ||
			    copy_part(u->password, sizeof(u->password), pct + 1,
				      (size_t)(at - pct - 1)) < 0)
				return url_err(err, err_len, "CHAP user or password too long");
		} else if (copy_part(u->user, sizeof(u->user), p, (size_t)(at - p)) < 0) {
			return url_err(err, err_len, "CHAP user too long");
		}
		if (u->user[0] == '\0')
			return url_err(err, err_len, "empty CHAP user before '@'");
		p = at + 1;
	}

	/* host[:port] */
	host = p;
	if (*host == '[') {
		const char *rb = strchr(host, ']');

		if (rb == NULL)
			return url_err(err, err_len, "IPv6 address without closing ']'");
		if (copy_part(u->host, sizeof(u->host), host + 1, (size_t)(rb - host - 1)) < 0)
			return url_err(err, err_len, "host name too long");
		if (u->host[0] == '\0' ||
		    strspn(u->host, "0123456789abcdefABCDEF:.%") != strlen(u->host))
			return url_err(err, err_len, "bad IPv6 address '[%s]'", u->host);
		host_end = rb + 1;
	} else {
		host_end = host + strcspn(host, ":/");
		if (copy_part(u->host, sizeof(u->host), host, (size_t)(host_end - host)) < 0)
			return url_err(err, err_len, "host name too long");
	}
	if (u->host[0] == '\0')
		return url_err(err, err_len, "URL has no host");
	auth_end = host_end;
	if (*auth_end == ':') {
		char *end;
		unsigned long port;

		auth_end++;
		if (*auth_end < '0' || *auth_end > '9')
			return url_err(err, err_len, "bad port in URL");
		port = strtoul(auth_end, &end, 10);
		if (port == 0 || port > 65535 || (*end != '\0' && *end != '/'))
			return url_err(err, err_len, "bad port in URL (1..65535)");
		u->port = (uint16_t)port;
		auth_end = end;
	} else if (*auth_end != '\0' && *auth_end != '/') {
		return url_err(err, err_len, "unexpected '%c' after host", *auth_end);
	}

	/* /target[/lun] */
	path = auth_end;
	if (*path == '/')
		path++;
	if (*path != '\0') {
		const char *sl = strchr(path, '/');

		n = sl != NULL ? (size_t)(sl - path) : strlen(path);
		if (n == 0)
			return url_err(err, err_len, "empty target name");
		if (copy_part(u->target, sizeof(u->target), path, n) < 0)
			return url_err(err, err_len, "target name too long (223 bytes at most)");
		if (sl != NULL && sl[1] != '\0') {
			char *end;
			unsigned long long lun;

			if (sl[1] < '0' || sl[1] > '9')
				return url_err(err, err_len, "bad LUN '%s'", sl + 1);
			errno = 0;
			lun = strtoull(sl + 1, &end, 10);
			if (errno != 0 || (*end != '\0' && strcmp(end, "/") != 0) || lun > 16383)
				return url_err(err, err_len, "bad LUN '%s' (0..16383)", sl + 1);
			u->lun = lun;
			u->has_lun = true;
		}
	}
	if (full) {
		if (u->target[0] == '\0')
			return url_err(err, err_len,
				       "URL names no target: iscsi://host[:port]/target-iqn/lun");
		if (!u->has_lun)
			return url_err(err, err_len,
				       "URL names no LUN: iscsi://host[:port]/%s/<lun>", u->target);
	}
	return 0;
}

int
iserd_url_parse_full(const char *str, struct iserd_url *out, char *err, size_t err_len)
{
	return parse_url(str, out, true, err, err_len);
}

int
iserd_url_parse_portal(const char *str, struct iserd_url *out, char *err, size_t err_len)
{
	return parse_url(str, out, false, err, err_len);
}
