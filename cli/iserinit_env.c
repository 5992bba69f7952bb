/*
 * iserinit: settings that come from outside the command line, as open-iscsi
 * and libiscsi users already have them:
 *   - the initiator name from /etc/iscsi/initiatorname.iscsi
 *     ("InitiatorName=iqn...", the file open-iscsi's iscsid reads);
 *   - CHAP credentials from LIBISCSI_CHAP_USERNAME/LIBISCSI_CHAP_PASSWORD and,
 *     for mutual CHAP, LIBISCSI_CHAP_TARGET_USERNAME/..._TARGET_PASSWORD.
 * An explicit option wins over both. Only libc here, so that a unit test can
 * link this file alone (tests/unit/cli).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iserinit.h"

static void
set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

const char *
ii_initiatorname_path(void)
{
	const char *p = getenv("ISERINIT_INITIATORNAME_FILE");

	/* the override is for tests, which cannot write /etc */
	return p != NULL && p[0] != '\0' ? p : "/etc/iscsi/initiatorname.iscsi";
}

/* Trims blanks (and a CR of a CRLF file) at both ends, in place. */
static char *
trim(char *s)
{
	size_t n;

	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n > 0 &&
	       (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

int
ii_read_initiatorname(const char *path, char *out, size_t cap, char *err, size_t errlen)
{
	char line[1024];
	FILE *f;
	int found = 0, lineno = 0;

	f = fopen(path, "re");
	if (f == NULL) {
		/* absent, or root's alone (Debian makes it 0600): no name from it */
		if (errno == ENOENT || errno == EACCES || errno == ENOTDIR)
			return 0;
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *s, *v;

		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			set_err(err, errlen, "%s:%d: line too long", path, lineno);
			found = -1;
			break;
		}
		s = trim(line);
		if (*s == '#' || *s == '\0')
			continue;
		v = strchr(s, '=');
		if (v == NULL)
			continue;
		*v++ = '\0';
		if (strcmp(trim(s), "InitiatorName") != 0)
			continue;
		v = trim(v);
		if (*v == '\0') {
			set_err(err, errlen, "%s:%d: empty InitiatorName", path, lineno);
			found = -1;
			break;
		}
		if (strlen(v) >= cap || strlen(v) > 223) {
			set_err(err, errlen, "%s:%d: InitiatorName longer than 223 bytes", path,
				lineno);
			found = -1;
			break;
		}
		/* the last one wins, as in iscsid */
		snprintf(out, cap, "%s", v);
		found = 1;
	}
	if (found >= 0 && ferror(f)) {
		/* a directory opens, then reads EISDIR */
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		found = -1;
	}
	fclose(f);
	return found;
}

int
ii_env_cred(const char *user_var, const char *secret_var, char *user, size_t ucap, char *secret,
	    size_t scap, char *err, size_t errlen)
{
	const char *u = getenv(user_var), *s = getenv(secret_var);

	if ((u == NULL || u[0] == '\0') && (s == NULL || s[0] == '\0'))
		return 0;
	if (u == NULL || u[0] == '\0' || s == NULL || s[0] == '\0') {
		set_err(err, errlen, "%s is set but %s is not",
			u != NULL && u[0] ? user_var : secret_var,
			u != NULL && u[0] ? secret_var : user_var);
		return -1;
	}
	if (strlen(u) >= ucap || strlen(s) >= scap) {
		set_err(err, errlen, "%s or %s longer than %zu bytes", user_var, secret_var,
			(ucap < scap ? ucap : scap) - 1);
		return -1;
	}
	snprintf(user, ucap, "%s", u);
	snprintf(secret, scap, "%s", s);
	return 1;
}
