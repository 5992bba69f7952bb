#include "util/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static enum isd_log_level g_level = ISD_LOG_INFO;
static char g_components[256];
static bool g_all;
static FILE *g_stream;
/* -1: not yet looked at; 0: plain lines; 1: the stream is journald's */
static int g_journal = -1;

/*
 * systemd sets JOURNAL_STREAM=DEV:INO when it connects stderr to journald.
 * It is inherited by children whose stderr may point elsewhere (a shell
 * started from a unit, a redirect), so it counts only when the device and
 * inode are those of the stream we write to.
 */
bool
isd_log_stream_is_journal(FILE *f)
{
	const char *v = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char *end;
	int fd;

	if (v == NULL || f == NULL)
		return false;
	errno = 0;
	dev = strtoull(v, &end, 10);
	if (errno != 0 || end == v || *end != ':')
		return false;
	v = end + 1;
	ino = strtoull(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0')
		return false;
	fd = fileno(f);
	if (fd < 0 || fstat(fd, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void
isd_log_set_stream(FILE *f)
{
	g_stream = f;
	g_journal = -1; /* looked at again at the next line */
}

/* True for the bytes a log line shows as they are. */
static bool
plain(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '\\';
}

const char *
isd_log_escape(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, total = 0, reserve;

	if (dst == NULL || dstlen < 4)
		return "";
	for (size_t i = 0; i < srclen && total < dstlen; i++)
		total += plain((unsigned char)src[i]) ? 1 : 4;
	/* when it does not all fit, keep room for the "..." that says so */
	reserve = total > dstlen - 1 ? 3 : 0;
	for (size_t i = 0; i < srclen; i++) {
		unsigned char c = (unsigned char)src[i];
		size_t need = plain(c) ? 1 : 4;

		if (o + need + reserve > dstlen - 1) {
			memcpy(dst + o, "...", 3);
			o += 3;
			break;
		}
		if (need == 1) {
			dst[o++] = (char)c;
		} else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	dst[o] = '\0';
	return dst;
}

const char *
isd_log_escape_str(char *dst, size_t dstlen, const char *src)
{
	if (src == NULL)
		src = "(null)";
	return isd_log_escape(dst, dstlen, src, strlen(src));
}

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

enum isd_log_level
isd_log_get_level(void)
{
	return g_level;
}

void
isd_log_get_components(char *buf, size_t len)
{
	size_t n = strlen(g_components);

	/* stored as ",a,b,": show "a,b" */
	if (n >= 2)
		snprintf(buf, len, "%.*s", (int)(n - 2), g_components + 1);
	else if (len > 0)
		buf[0] = '\0';
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

static __thread isd_log_sink_fn t_sink;
static __thread void *t_sink_arg;

void
isd_log_set_sink(isd_log_sink_fn fn, void *arg)
{
	t_sink = fn;
	t_sink_arg = arg;
}

void
isd_log_write(enum isd_log_level level, const char *component, const char *fmt, ...)
{
	static const char *names[] = {"error", "warn", "info", "debug"};
	/* LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG of syslog(3) */
	static const int prio[] = {3, 4, 6, 7};
	struct timespec ts;
	FILE *out;
	struct tm tm;
	char buf[1024], line[1024];
	size_t o = 0;
	va_list ap;

	if (level > g_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/*
	 * The backstop: a control byte that reached here unescaped (a newline in
	 * a peer's name would forge a line of its own) is shown as \xNN. Bytes
	 * from 0x80 up stay, so that UTF-8 in paths and aliases reads as written.
	 */
	for (const char *p = buf; *p != '\0' && o + 5 < sizeof(line); p++) {
		unsigned char c = (unsigned char)*p;

		if (c < 0x20 || c == 0x7f)
			o += (size_t)snprintf(line + o, sizeof(line) - o, "\\x%02x", c);
		else
			line[o++] = (char)c;
	}
	line[o] = '\0';
	if (t_sink != NULL) {
		t_sink(t_sink_arg, (int)level, line);
		return;
	}
#ifdef ISD_LOG_LIBRARY
	return;
#endif
	out = g_stream ? g_stream : stderr;
	if (g_journal < 0)
		g_journal = isd_log_stream_is_journal(out);
	if (g_journal) {
		/* sd-daemon(3) priority prefix; journald stamps the time itself */
		fprintf(out, "<%d>%s%s%s: %s\n", prio[level], names[level], component ? " " : "",
			component ? component : "", line);
		return;
	}
	fprintf(out, "%02d:%02d:%02d.%03ld %s%s%s: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
		ts.tv_nsec / 1000000, names[level], component ? " " : "",
		component ? component : "", line);
}
