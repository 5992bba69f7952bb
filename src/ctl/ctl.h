/*
 * The control layer (src/ctl): what a running iserd tells and takes from the
 * outside, above the target layer. Everything here runs on the daemon's
 * reactor thread.
 */
#ifndef ISD_CTL_H
#define ISD_CTL_H

#include <stddef.h>
#include <stdint.h>

struct isd_reactor;
struct isd_target_running;

/* ---- statistics as Prometheus text, and the metrics HTTP listener ---- */

/*
 * The whole exposition (Prometheus text format 0.0.4, docs/iserd.md
 * "Statistics and metrics"): process counters, each datamover's counters, and
 * per target, per LUN and per session the commands, bytes, errors by class,
 * commands in flight and a latency histogram. *out is malloc'd (the caller
 * frees it), NUL-terminated, *len bytes without the NUL. 0 or -ENOMEM.
 */
int isd_ctl_prometheus(struct isd_target_running *rt, char **out, size_t *len);
/*
 * A label value as the exposition format writes it (\\, \", \n escaped), with
 * every other control byte and every byte that is not part of valid UTF-8
 * written as the text \xNN: a peer's bytes (an initiator name) never break
 * the format. Always NUL-terminates dst (cap > 0); cut on a character boundary.
 */
void isd_ctl_prom_label_escape(char *dst, size_t cap, const char *src);

struct isd_metrics_http;

/*
 * Serves GET /metrics (isd_ctl_prometheus) over HTTP/1.0 and 1.1 on listen,
 * "ADDR:PORT" or "[V6]:PORT" (port 0: any; isd_metrics_http_port says which).
 * Bounded: ISD_METRICS_MAX_CLIENTS at once (more are closed at accept), a
 * request head of at most ISD_METRICS_MAX_HEAD bytes (else 431), a client idle
 * for ISD_METRICS_IDLE_MS is closed. 404 for other paths, 405 for other
 * methods, 400 for anything that is not a request. 0, or -errno with one line
 * in err.
 */
#define ISD_METRICS_MAX_CLIENTS 8
#define ISD_METRICS_MAX_HEAD 8192
#define ISD_METRICS_IDLE_MS 10000
int isd_metrics_http_start(struct isd_reactor *r, struct isd_target_running *rt,
			   const char *listen, struct isd_metrics_http **out, char *err,
			   size_t errlen);
uint16_t isd_metrics_http_port(const struct isd_metrics_http *m);
/* Closes the listener and every client. NULL is allowed. */
void isd_metrics_http_stop(struct isd_metrics_http *m);

/* ---- end of statistics and metrics ---- */

#endif
