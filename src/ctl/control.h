/*
 * The control interface of a running iserd: JSON-RPC 2.0 over a Unix stream
 * socket, served on the daemon's reactor (never blocking it), and the methods
 * behind it. iserctl(8) is its client; docs/control.md lists every method.
 *
 * Framing: a request is one JSON value (an object, or an array of them as a
 * batch); requests follow each other on the stream (iserctl ends each with a
 * newline); each answer is one JSON text followed by a newline. A request
 * over ISD_CTL_MSG_MAX bytes, or bytes that are not JSON, get an error answer
 * and the connection is closed (the stream cannot be resynchronised).
 *
 * Access is the socket file's permission (0600 by default: root only); the
 * peer's uid and pid are logged with every change it makes.
 */
#ifndef ISD_CTL_CONTROL_H
#define ISD_CTL_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct isd_reactor;
struct isd_target_running;
struct isd_live_diff;
struct json_object;

#define ISD_CTL_MSG_MAX (1u << 20)      /* one request */
#define ISD_CTL_OUT_MAX (64u << 20)     /* answers queued to one client that does not read */
#define ISD_CTL_CLIENTS_MAX 16
#define ISD_CTL_JSON_DEPTH 32           /* nesting json-c's tokener accepts */
#define ISD_CTL_BATCH_MAX 256           /* requests in one batch */
#define ISD_CTL_LUNS_MAX 256            /* LUNs of a target a listing shows (ISD_SCSI_MAX_LUNS) */

/* JSON-RPC 2.0 error codes (§5.1) and ours (-32000..-32099: server errors). */
#define ISD_RPC_PARSE_ERROR -32700
#define ISD_RPC_INVALID_REQUEST -32600
#define ISD_RPC_METHOD_NOT_FOUND -32601
#define ISD_RPC_INVALID_PARAMS -32602
#define ISD_RPC_INTERNAL_ERROR -32603
#define ISD_RPC_FAILED -32000           /* the change was refused or failed: data.errno says why */
#define ISD_RPC_NOT_FOUND -32001        /* no such target, LUN, portal, session */
#define ISD_RPC_EXISTS -32002
#define ISD_RPC_BUSY -32003             /* sessions in the way (target.remove without force) */

/* What the methods act on; owned by the daemon, outlives the control socket. */
struct isd_ctl_env {
	struct isd_target_running *rt;
	const char *config_file;        /* -c, "" = none (config.save then needs a path) */
	uint64_t started_ns;            /* isd_now_ns() at start */
	/*
	 * Re-reads the configuration (what SIGHUP does) and applies the difference.
	 * 0 or -errno with one line in err; diff says what changed.
	 */
	int (*reload)(void *arg, struct isd_live_diff *diff, char *err, size_t errlen);
	void *reload_arg;
};

struct isd_ctl;

/*
 * Listens on path (a stale socket file left by a dead iserd is replaced; a
 * live one is an error: -EADDRINUSE), with permission bits mode. When
 * create_dir, a missing parent directory is created (0755). 0 or -errno + err.
 */
int isd_ctl_start(struct isd_reactor *r, const struct isd_ctl_env *env, const char *path,
		  unsigned mode, bool create_dir, struct isd_ctl **out, char *err, size_t errlen);
/* Closes every client and the socket, and unlinks the socket file. */
void isd_ctl_stop(struct isd_ctl *c);

/*
 * Handles one parsed request (not a batch) and returns the answer object, or
 * NULL for a notification (no id). peer names the client for log lines.
 * Exposed for the unit tests and the fuzzer.
 */
struct json_object *isd_ctl_handle(const struct isd_ctl_env *env, struct json_object *req,
				   const char *peer);
/* Handles a request or a batch (an array of requests): the answer, or NULL when
 * nothing is to be answered (notifications only). */
struct json_object *isd_ctl_handle_value(const struct isd_ctl_env *env, struct json_object *v,
					 const char *peer);
/*
 * Control clients turned away at ISD_CTL_CLIENTS_MAX since the process started,
 * by every control socket it ran ("control_clients_refused" of the process
 * stats, iserd_control_clients_refused_total). Reactor thread only.
 */
uint64_t isd_ctl_clients_refused(void);
/* The process counters (iSCSI core, each datamover, the control socket's refusals),
 * as today's stats line has them. */
struct json_object *isd_ctl_process_stats(struct isd_target_running *rt);
/* What a reload changed. */
struct json_object *isd_ctl_diff_json(const struct isd_live_diff *d);
/* Handles a whole request text (a value or a batch): the answer text ("" when only
 * notifications), malloc'd; NULL on ENOMEM. */
char *isd_ctl_handle_text(const struct isd_ctl_env *env, const char *text, size_t len,
			  const char *peer);

#endif
