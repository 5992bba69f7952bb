#include "util/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum isd_log_level g_level = ISD_LOG_INFO;
static char g_components[256];
static bool g_all;

void
isd_log_set_level(enum isd_log_level level)
{
	g_level = level;
}

int
isd_log_enable(const char *components)
{
	if (components == NULL || strlen(components) >= sizeof(g_components) - 2)
		return -EINVAL;
	g_all = strcmp(components, "all") == 0;
	/* stored as ",a,b," so a lookup is one strstr */
	snprintf(g_components, sizeof(g_components), ",%s,", components);
	if (g_level < ISD_LOG_DEBUG)
		g_level = ISD_LOG_DEBUG;
	return 0;
}

bool
isd_log_component_enabled(const char *component)
{
	char key[64];

	if (g_level < ISD_LOG_DEBUG)
		return false;
	if (g_all)
		return true;
	snprintf(key, sizeof(key), ",%s,", component);
	return strstr(g_components, key) != NULL;
}

void
isd_log_write(enum isd_log_level level, const char *component, const char *fmt, ...)
{
	static const char *names[] = {"error", "warn", "info", "debug"};
	struct timespec ts;
	struct tm tm;
	char buf[1024];
	va_list ap;

	if (level > g_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%02d:%02d:%02d.%03ld %s%s%s: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
		ts.tv_nsec / 1000000, names[level], component ? " " : "", component ? component : "",
		buf);
}
