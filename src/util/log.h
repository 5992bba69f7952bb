/* Logging: isd_log_err/warn/info always print (subject to the level), isd_log_dbg
 * prints only for components enabled with isd_log_enable("iscsi,tcp") or -d.
 *
 * A value that came from a peer (a name, a key, a value) is passed through
 * isd_log_escape() at the call site. As a backstop, isd_log_write() itself
 * renders every control byte of the finished line as \xNN, so that no message
 * can ever span two lines or carry terminal escapes, escaped or not. */
#ifndef ISD_UTIL_LOG_H
#define ISD_UTIL_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum isd_log_level {
	ISD_LOG_ERR = 0,
	ISD_LOG_WARN,
	ISD_LOG_INFO,
	ISD_LOG_DEBUG,
};

void isd_log_set_level(enum isd_log_level level);
/* Comma-separated component names, or "all". Returns 0 or -EINVAL. */
int isd_log_enable(const char *components);
bool isd_log_component_enabled(const char *component);
enum isd_log_level isd_log_get_level(void);
/* The components given to isd_log_enable() ("all", "iscsi,tcp"), "" for none. */
void isd_log_get_components(char *buf, size_t len);
/*
 * Where lines go (default stderr; NULL restores it). For tests.
 *
 * When the stream is journald's (JOURNAL_STREAM names its device and inode,
 * as systemd sets it for a unit whose stderr goes to the journal), each line
 * starts with its syslog priority as "<N>" (error 3, warn 4, info 6, debug 7)
 * and carries no timestamp; otherwise it starts with the local time.
 */
void isd_log_set_stream(FILE *f);
/* True when JOURNAL_STREAM names f's device and inode. */
bool isd_log_stream_is_journal(FILE *f);
/*
 * This thread's lines go to fn instead (NULL: back to the stream), level and
 * the finished, escaped line. The initiator library sets it around its event
 * loop so that the datamover's lines reach the context's log function. Built
 * with ISD_LOG_LIBRARY (the library's copy), lines without a sink are dropped.
 */
typedef void (*isd_log_sink_fn)(void *arg, int level, const char *line);
void isd_log_set_sink(isd_log_sink_fn fn, void *arg);
/*
 * Renders src[0..srclen) for a log line: printable ASCII stays, every other
 * byte and the backslash become \xNN. When the result does not fit dstlen, it
 * is cut at a whole character and ends in "..." Always NUL-terminates (dstlen
 * >= 4). Returns dst, so that it can stand as a printf argument.
 */
const char *isd_log_escape(char *dst, size_t dstlen, const char *src, size_t srclen);
/* The same for a NUL-terminated string; NULL renders as "(null)". */
const char *isd_log_escape_str(char *dst, size_t dstlen, const char *src);
/* A buffer size that holds a 223-byte iSCSI name escaped throughout, or cut. */
#define ISD_LOG_ESC_MAX 256

void isd_log_write(enum isd_log_level level, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define isd_log_err(...) isd_log_write(ISD_LOG_ERR, NULL, __VA_ARGS__)
#define isd_log_warn(...) isd_log_write(ISD_LOG_WARN, NULL, __VA_ARGS__)
#define isd_log_info(...) isd_log_write(ISD_LOG_INFO, NULL, __VA_ARGS__)
#define isd_log_dbg(comp, ...)                                                                     \
	do {                                                                                       \
		if (isd_log_component_enabled(comp))                                               \
			isd_log_write(ISD_LOG_DEBUG, comp, __VA_ARGS__);                           \
	} while (0)

#endif
