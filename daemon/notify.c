/*
 * sd_notify(3) messages for iserd.service (Type=notify). See notify.h.
 */
#include "notify.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#ifdef ISERD_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "util/log.h"

static void
send_state(const char *state)
{
#ifdef ISERD_HAVE_SYSTEMD
	static int warned;
	int rc;

	/* 0 keeps NOTIFY_SOCKET set: a reload later notifies again */
	rc = sd_notify(0, state);
	if (rc < 0 && !warned) {
		warned = 1;
		isd_log_dbg("daemon", "sd_notify: %s", strerror(-rc));
	}
#else
	(void)state;
#endif
}

/* A newline would start another assignment: STATUS= stays one line. */
static void
one_line(char *s)
{
	for (; *s != '\0'; s++)
		if (*s == '\n')
			*s = ' ';
}

void
isd_notify_ready(const char *status)
{
	char msg[512];

	if (status != NULL && status[0] != '\0') {
		int n = snprintf(msg, sizeof(msg), "READY=1\nSTATUS=");

		snprintf(msg + n, sizeof(msg) - (size_t)n, "%s", status);
		one_line(msg + n);
	} else {
		snprintf(msg, sizeof(msg), "READY=1");
	}
	send_state(msg);
}

void
isd_notify_stopping(void)
{
	send_state("STOPPING=1\nSTATUS=shutting down");
}

void
isd_notify_reloading(void)
{
	struct timespec ts;
	char msg[128];

	/* systemd >= 253 matches the reload to this timestamp (CLOCK_MONOTONIC, us) */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ull +
		     (unsigned long long)ts.tv_nsec / 1000ull);
	send_state(msg);
}

void
isd_notify_status(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	n = snprintf(msg, sizeof(msg), "STATUS=");
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	one_line(msg + n);
	send_state(msg);
}
