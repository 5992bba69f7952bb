/* Spec parsing for backing stores: "ram:SIZE", "file:PATH[,size=SIZE][,ro]", "dev:PATH[,ro]". */
#include "bstore/bstore.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bstore/bstore_int.h"

int
isd_parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	unsigned shift = 0;
	const char *p = s;

	if (s == NULL || !isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	switch (toupper((unsigned char)*p)) {
	case '\0':
		break;
	case 'K':
		shift = 10;
		break;
	case 'M':
		shift = 20;
		break;
	case 'G':
		shift = 30;
		break;
	case 'T':
		shift = 40;
		break;
	default:
		return -EINVAL;
	}
	if (shift != 0) {
		p++;
		/* "1G", "1GB" and "1GiB" all mean 2^30: sizes here are always binary. */
		if (*p == 'i' || *p == 'I')
			p++;
		if (*p == 'b' || *p == 'B')
			p++;
	}
	if (*p != '\0')
		return -EINVAL;
	if (shift != 0 && v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = v << shift;
	return 0;
}

static void __attribute__((format(printf, 3, 4)))
set_err(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && err_len > 0) {
		va_start(ap, fmt);
		vsnprintf(err, err_len, fmt, ap);
		va_end(ap);
	}
}

/*
 * Splits "PATH,opt,opt" in place. Options: size=SIZE, ro. Commas cannot appear
 * in paths given this way; that is documented in the config reference.
 */
static int
parse_opts(char *rest, uint64_t *size, bool *ro, char *err, size_t err_len)
{
	char *opt = strchr(rest, ',');

	while (opt != NULL) {
		char *next;

		*opt++ = '\0';
		next = strchr(opt, ',');
		if (next != NULL)
			*next = '\0';
		if (strncmp(opt, "size=", 5) == 0) {
			if (size == NULL || isd_parse_size(opt + 5, size) < 0 || *size == 0) {
				set_err(err, err_len, "bad size option '%s'", opt);
				return -EINVAL;
			}
		} else if (strcmp(opt, "ro") == 0) {
			*ro = true;
		} else {
			set_err(err, err_len, "unknown backing store option '%s'", opt);
			return -EINVAL;
		}
		if (next != NULL)
			*next = ',';
		opt = next;
	}
	return 0;
}

int
isd_bstore_open(struct isd_reactor *r, const char *spec, struct isd_bstore **out, char *err,
		size_t err_len)
{
	char buf[PATH_MAX + 64];
	uint64_t size = 0;
	bool ro = false;
	int rc;

	if (err == NULL)
		err_len = 0;
	if (err_len > 0)
		err[0] = '\0';
	if (spec == NULL || strlen(spec) >= sizeof(buf)) {
		set_err(err, err_len, "%s", "backing store spec missing or too long");
		return -EINVAL;
	}
	if (r == NULL) {
		set_err(err, err_len, "%s", "backing store needs a reactor");
		return -EINVAL;
	}
	if (strncmp(spec, "ram:", 4) == 0) {
		if (isd_parse_size(spec + 4, &size) < 0 || size == 0) {
			set_err(err, err_len, "bad RAM size in '%s' (e.g. ram:1G)", spec);
			return -EINVAL;
		}
		rc = isd_bstore_ram_create(r, size, out);
		if (rc < 0)
			set_err(err, err_len, "cannot allocate '%s'", spec);
		return rc;
	}
	if (strncmp(spec, "file:", 5) == 0 || strncmp(spec, "dev:", 4) == 0) {
		bool is_dev = spec[0] == 'd';
		char *path;

		strcpy(buf, spec);
		path = strchr(buf, ':') + 1;
		rc = parse_opts(path, is_dev ? NULL : &size, &ro, err, err_len);
		if (rc < 0)
			return rc;
		if (*path == '\0') {
			set_err(err, err_len, "no path in '%s'", spec);
			return -EINVAL;
		}
		return isd_bstore_uring_open(r, path, is_dev, size, ro, out, err, err_len);
	}
	set_err(err, err_len, "unknown backing store '%s' (ram:, file:, dev:)", spec);
	return -EINVAL;
}

void
isd_bstore_close(struct isd_bstore *bs)
{
	if (bs != NULL)
		bs->ops->destroy(bs);
}
