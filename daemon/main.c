/*
 * iserd: the target daemon. Reads flags and an optional config file, builds
 * the target on one reactor, runs in the foreground until SIGINT/SIGTERM and
 * then shuts down in order: stop listening, close every connection (bounded
 * by shutdown_timeout), free everything in reverse order.
 *
 * Signals arrive through a signalfd on the reactor, so every reaction to them
 * runs as an ordinary reactor callback and needs no async-signal-safety.
 */
#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "ctl/ctl.h"
#include "reactor/reactor.h"
#include "dm/dm_kind.h"
#include "server/target.h"
#include "util/log.h"

#define ISERD_SHUTDOWN_MS 5000

struct daemon {
	struct isd_reactor *r;
	struct isd_target_running *rt;
	struct isd_metrics_http *metrics;      /* NULL when metrics_listen is off */
	int sfd;
	bool stopping;
	bool drained; /* every connection closed: safe to free all */
	uint64_t shutdown_ms;
	struct isd_timer shutdown_timer;
};

static void
log_stats(struct daemon *d, const char *why)
{
	struct isd_iscsi_stats st;
	struct json_object *o;

	isd_target_get_stats(d->rt, &st);
	o = json_object_new_object();
	if (o == NULL)
		return;
	json_object_object_add(o, "sessions", json_object_new_int64((int64_t)st.sessions));
	json_object_object_add(o, "connections", json_object_new_int64((int64_t)st.connections));
	json_object_object_add(o, "tasks", json_object_new_int64((int64_t)st.tasks));
	json_object_object_add(o, "logins_ok", json_object_new_int64((int64_t)st.logins_ok));
	json_object_object_add(o, "logins_failed",
			       json_object_new_int64((int64_t)st.logins_failed));
	json_object_object_add(o, "rejects_sent", json_object_new_int64((int64_t)st.rejects_sent));
	json_object_object_add(o, "bytes_copied", json_object_new_int64((int64_t)st.bytes_copied));
	json_object_object_add(o, "bytes_placed", json_object_new_int64((int64_t)st.bytes_placed));
	json_object_object_add(o, "login_connections",
			       json_object_new_int64((int64_t)st.login_connections));
	json_object_object_add(o, "cmdsn_dropped",
			       json_object_new_int64((int64_t)st.cmdsn_dropped));
	{
		/* refusals by limit, named after the limit (docs/iserd.md) */
		const struct {
			const char *name;
			uint64_t v;
		} refused[] = {
		    {"connections", st.refused.connections},
		    {"per_address", st.refused.per_address},
		    {"login_connections", st.refused.login_connections},
		    {"sessions", st.refused.sessions},
		    {"sessions_per_target", st.refused.sessions_per_target},
		    {"discovery_sessions", st.refused.discovery_sessions},
		    {"held_pdus", st.refused.held_pdus},
		    {"buffers", st.refused.buffers},
		};
		struct json_object *ro = json_object_new_object();

		for (size_t i = 0; ro != NULL && i < sizeof(refused) / sizeof(refused[0]); i++)
			json_object_object_add(ro, refused[i].name,
					       json_object_new_int64((int64_t)refused[i].v));
		if (ro != NULL)
			json_object_object_add(o, "refused", ro);
	}
	{
		/* each datamover's own counters, under its scheme */
		struct isd_stat sv[64];

		for (unsigned k = 0; k < isd_dm_kind_count; k++) {
			struct json_object *po;
			int n;

			if (isd_dm_kinds[k]->stats == NULL)
				continue;
			po = json_object_new_object();
			if (po == NULL)
				continue;
			n = isd_dm_kinds[k]->stats(sv, (int)(sizeof(sv) / sizeof(sv[0])));
			for (int i = 0; i < n && i < (int)(sizeof(sv) / sizeof(sv[0])); i++)
				json_object_object_add(po, sv[i].name,
						       json_object_new_int64((int64_t)sv[i].value));
			json_object_object_add(o, isd_dm_kinds[k]->scheme, po);
		}
	}
	isd_log_info("%s stats %s", why, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

static void
on_drained(void *arg)
{
	struct daemon *d = arg;

	d->drained = true;
	isd_reactor_timer_stop(d->r, &d->shutdown_timer);
	isd_log_info("all connections closed");
	isd_reactor_stop(d->r);
}

static void
on_shutdown_timeout(void *arg)
{
	struct daemon *d = arg;

	isd_log_warn("connections still open after %llu ms; exiting anyway",
		     (unsigned long long)d->shutdown_ms);
	isd_reactor_stop(d->r);
}

static const char *
signame(uint32_t signo)
{
	return signo == SIGINT ? "SIGINT" : signo == SIGTERM ? "SIGTERM" : "signal";
}

static void
on_signal(void *arg, uint32_t events)
{
	struct daemon *d = arg;
	struct signalfd_siginfo si;
	ssize_t n;

	for (;;) {
		n = read(d->sfd, &si, sizeof(si));
		if (n != (ssize_t)sizeof(si))
			return; /* EAGAIN: drained */
		switch (si.ssi_signo) {
		case SIGINT:
		case SIGTERM:
			if (d->stopping) {
				isd_log_warn("%s again: stopping now", signame(si.ssi_signo));
				isd_reactor_stop(d->r);
				break;
			}
			d->stopping = true;
			isd_log_info("%s: shutting down", signame(si.ssi_signo));
			isd_reactor_timer_start(d->r, &d->shutdown_timer, d->shutdown_ms);
			isd_target_shutdown(d->rt, on_drained, d);
			break;
		case SIGHUP:
			isd_log_warn("SIGHUP ignored: configuration reload is not supported; "
				     "restart iserd to apply changes");
			break;
		case SIGUSR1:
			log_stats(d, "current");
			break;
		default:
			break;
		}
	}
}

static int
setup_signals(struct daemon *d, sigset_t *mask)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	/* a peer closing mid-send must be an EPIPE, not the end of the daemon */
	sigaction(SIGPIPE, &sa, NULL);

	sigemptyset(mask);
	sigaddset(mask, SIGINT);
	sigaddset(mask, SIGTERM);
	sigaddset(mask, SIGHUP);
	sigaddset(mask, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, mask, NULL) < 0)
		return -errno;
	d->sfd = signalfd(-1, mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (d->sfd < 0)
		return -errno;
	return 0;
}

static int
apply_logging(const struct isd_target_cfg *cfg)
{
	if (cfg->log_level != -1)
		isd_log_set_level((enum isd_log_level)cfg->log_level);
	/* debug level without a component list means every component */
	if (cfg->log_level == ISD_LOG_DEBUG && cfg->debug[0] == '\0')
		isd_log_enable("all");
	if (cfg->debug[0] != '\0' && isd_log_enable(cfg->debug) < 0) {
		fprintf(stderr, "iserd: --debug %s: bad component list\n", cfg->debug);
		return -EINVAL;
	}
	return 0;
}

static int
count_luns(const struct isd_target_cfg *cfg)
{
	int n = 0;

	for (int i = 0; i < cfg->node_count; i++)
		n += cfg->nodes[i].lun_count;
	return n;
}

int
main(int argc, char **argv)
{
	struct isd_target_cfg cfg;
	struct daemon d = {.sfd = -1};
	sigset_t mask;
	char err[1024] = "";
	int rc, status = ISD_EXIT_RUNTIME, scrubbed;

	isd_target_cfg_init(&cfg);
	rc = isd_target_cfg_parse_args(argc, argv, &cfg, err, sizeof(err));
	/* the parser took its copies: no literal secret stays in /proc/PID/cmdline */
	scrubbed = isd_target_args_scrub(argc, argv);
	if (scrubbed > 0 && rc == 0)
		isd_target_cfg_warn(&cfg,
				    "%d CHAP secret%s given on the command line, readable by "
				    "every local user until overwritten now; use USER:@FILE or "
				    "USER:env:VAR",
				    scrubbed, scrubbed == 1 ? "" : "s");
	if (rc < 0) {
		fprintf(stderr, "iserd: %s\n", err);
		status = rc == -ENOMEM ? ISD_EXIT_RUNTIME : ISD_EXIT_USAGE;
		goto out_cfg;
	}
	if (cfg.show_help) {
		fputs(isd_target_usage(), stdout);
		status = ISD_EXIT_OK;
		goto out_cfg;
	}
	if (cfg.show_version) {
		printf("iserd %s\n", ISD_VERSION);
		status = ISD_EXIT_OK;
		goto out_cfg;
	}
	if (apply_logging(&cfg) < 0) {
		status = ISD_EXIT_USAGE;
		goto out_cfg;
	}
	for (int i = 0; i < cfg.warning_count; i++) {
		if (cfg.check_only)
			fprintf(stderr, "iserd: warning: %s\n", cfg.warnings[i]);
		else
			isd_log_warn("%s", cfg.warnings[i]);
	}
	if (cfg.check_only) {
		rc = isd_target_cfg_check_backing(&cfg, err, sizeof(err));
		if (rc < 0) {
			fprintf(stderr, "iserd: %s\n", err);
			status = ISD_EXIT_USAGE;
			goto out_cfg;
		}
		printf("iserd: configuration OK: %d portal%s, %d target%s, %d LUN%s%s\n",
		       cfg.portal_count, cfg.portal_count == 1 ? "" : "s", cfg.node_count,
		       cfg.node_count == 1 ? "" : "s", count_luns(&cfg),
		       count_luns(&cfg) == 1 ? "" : "s",
		       cfg.warning_count > 0 ? " (with warnings)" : "");
		status = ISD_EXIT_OK;
		goto out_cfg;
	}

	d.shutdown_ms =
	    cfg.shutdown_timeout_ms != -1 ? (uint64_t)cfg.shutdown_timeout_ms : ISERD_SHUTDOWN_MS;
	rc = setup_signals(&d, &mask);
	if (rc < 0) {
		fprintf(stderr, "iserd: signals: %s\n", strerror(-rc));
		goto out_sig;
	}
	rc = isd_reactor_create(&d.r);
	if (rc < 0) {
		fprintf(stderr, "iserd: cannot create the reactor: %s\n", strerror(-rc));
		goto out_sig;
	}
	isd_timer_init(&d.shutdown_timer, on_shutdown_timeout, &d);
	rc = isd_reactor_add_fd(d.r, d.sfd, EPOLLIN, on_signal, &d);
	if (rc < 0) {
		fprintf(stderr, "iserd: signalfd: %s\n", strerror(-rc));
		goto out_reactor;
	}
	isd_log_info("iserd %s starting (pid %d)%s%s", ISD_VERSION, (int)getpid(),
		     cfg.config_file[0] ? ", config " : "", cfg.config_file);
	rc = isd_target_start(&cfg, d.r, &d.rt, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "iserd: %s\n", err);
		status = rc == -EINVAL ? ISD_EXIT_USAGE : ISD_EXIT_RUNTIME;
		goto out_sfd;
	}
	/* like a portal: bound before privileges go, so a low port works too */
	if (cfg.metrics_listen[0] != '\0') {
		rc = isd_metrics_http_start(d.r, d.rt, cfg.metrics_listen, &d.metrics, err,
					    sizeof(err));
		if (rc < 0) {
			fprintf(stderr, "iserd: %s\n", err);
			status = rc == -EINVAL ? ISD_EXIT_USAGE : ISD_EXIT_RUNTIME;
			isd_target_stop(d.rt);
			goto out_sfd;
		}
	}
	/* after every portal listens and every LUN is open and registered */
	rc = isd_target_drop_privileges(&cfg, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "iserd: %s\n", err);
		isd_metrics_http_stop(d.metrics);
		isd_target_stop(d.rt);
		goto out_sfd;
	}
	/* the model holds secrets; the running target has its own copy */
	isd_target_cfg_fini(&cfg);
	isd_log_info("ready");

	rc = isd_reactor_run(d.r);
	if (rc < 0) {
		isd_log_err("reactor: %s", strerror(-rc));
		status = ISD_EXIT_RUNTIME;
	} else {
		status = ISD_EXIT_OK;
	}
	log_stats(&d, "final");
	isd_reactor_timer_stop(d.r, &d.shutdown_timer);
	isd_metrics_http_stop(d.metrics);
	isd_target_stop(d.rt);
	if (d.stopping && !d.drained) {
		/* connections still hold fds on the reactor: exit without freeing it */
		isd_reactor_del_fd(d.r, d.sfd);
		close(d.sfd);
		isd_log_info("stopped");
		return status;
	}
	isd_log_info("stopped");
out_sfd:
	isd_reactor_del_fd(d.r, d.sfd);
out_reactor:
	isd_reactor_destroy(d.r);
out_sig:
	if (d.sfd >= 0)
		close(d.sfd);
out_cfg:
	isd_target_cfg_fini(&cfg);
	return status;
}
