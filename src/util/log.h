/* Logging: isd_log_err/warn/info always print (subject to the level), isd_log_dbg
 * prints only for components enabled with isd_log_enable("iscsi,tcp") or -d. */
#ifndef ISD_UTIL_LOG_H
#define ISD_UTIL_LOG_H

#include <stdbool.h>

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
