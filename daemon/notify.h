/*
 * The daemon's side of systemd's readiness protocol (sd_notify(3)), for
 * Type=notify in iserd.service. Every call is a no-op when NOTIFY_SOCKET is
 * not set (not started by systemd) or when iserd was built without libsystemd;
 * a failed notification is logged once at debug level and otherwise ignored,
 * since the daemon serves the same either way.
 */
#ifndef ISERD_DAEMON_NOTIFY_H
#define ISERD_DAEMON_NOTIFY_H

/* READY=1 with STATUS=status (NULL: none): every portal listens, every LUN is open. */
void isd_notify_ready(const char *status);
/* STOPPING=1: the shutdown has begun (systemd then waits, up to TimeoutStopSec). */
void isd_notify_stopping(void);
/*
 * RELOADING=1 with MONOTONIC_USEC=now, as systemd >= 253 wants it (older ones
 * ignore the timestamp). Call isd_notify_ready() when the reload is done,
 * whether it applied or not: systemd waits for that READY=1.
 */
void isd_notify_reloading(void);
/* STATUS=text, shown by systemctl status. printf-like. */
void isd_notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
