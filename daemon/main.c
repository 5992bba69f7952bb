/*
 * iserd: the target daemon. Reads flags and an optional config file, builds
 * the target on reactor 0 of a group of reactors (`reactors`, default 1),
 * starts the others, runs reactor 0 in the foreground until SIGINT/SIGTERM
 * and then shuts down in order: stop listening, close every connection
 * (bounded by shutdown_timeout), join the other reactors, free everything in
 * reverse order.
 *
 * Signals arrive through a signalfd on reactor 0, so every reaction to them
 * runs as an ordinary reactor callback and needs no async-signal-safety.
 * SIGHUP reloads the configuration (the difference is applied live), SIGUSR1
 * logs the counters; the control socket (src/ctl) serves iserctl on the same
 * reactor. Each of them, like every control method and metrics scrape, runs
 * with the other reactors paused (isd_reactor_group_pause), so control work
 * keeps its single-threaded view of the objects; TCP connections are placed
 * on the other reactors at accept (src/dm/tcp/tcp_portal.c).
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

#include "ctl/control.h"
#include "ctl/ctl.h"
#include "reactor/reactor.h"
#include "dm/dm_kind.h"
#include "server/live.h"
#include "server/target.h"
#include "util/log.h"
#include "util/monitor.h"

#include "notify.h"

#define ISERD_SHUTDOWN_MS 5000

struct daemon {
	struct isd_reactor_group *g;
	struct isd_reactor *r;          /* reactor 0 of g: this thread's */
	struct isd_target_running *rt;
	struct isd_metrics_http *metrics;      /* NULL when metrics_listen is off */
	int sfd;
	bool stopping;
	bool drained; /* every connection closed: safe to free all */
	uint64_t shutdown_ms;
	struct isd_timer shutdown_timer;
	/* a reload parses the command line again (the file it names may have changed):
	 * our own copy, taken before the secrets in argv were overwritten */
	int argc;
	char **argv;
	char config_file[4096];
	struct isd_ctl *ctl;
	struct isd_ctl_env ctl_env;
};

static void
log_stats(struct daemon *d, const char *why)
{
	struct json_object *o = isd_ctl_process_stats(d->rt);

	struct json_object *rs = NULL;

	if (o == NULL)
		return;
	/*
	 * One line for the process, one per reactor: a log line has a bound
	 * (util/log.c), and the reactors' array grows with their number.
	 */
	if (json_object_object_get_ex(o, "reactors", &rs))
		json_object_get(rs);
	json_object_object_del(o, "reactors");
	isd_log_info("%s stats %s", why, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	for (size_t i = 0; rs != NULL && i < json_object_array_length(rs); i++)
		isd_log_info("%s reactor stats %s", why,
			     json_object_to_json_string_ext(json_object_array_get_idx(rs, i),
							    JSON_C_TO_STRING_PLAIN));
	json_object_put(rs);
	json_object_put(o);
}

/*
 * SIGHUP and the control method config.reload: the command line and the file
 * it names are read again, validated, and the difference is applied to the
 * running target (server/live.h). An invalid file changes nothing.
 */
static int
reload(void *arg, struct isd_live_diff *diff, char *err, size_t errlen)
{
	struct daemon *d = arg;
	struct isd_target_cfg next;
	int rc;

	memset(diff, 0, sizeof(*diff));
	isd_notify_reloading();
	isd_target_cfg_init(&next);
	rc = isd_target_cfg_parse_args(d->argc, d->argv, &next, err, errlen);
	if (rc == 0)
		rc = isd_target_cfg_validate(&next, err, errlen);
	if (rc == 0)
		rc = isd_live_apply(d->rt, &next, diff, err, errlen);
	isd_target_cfg_fini(&next);
	/* applied or not, iserd serves on: systemd's reload is over */
	isd_notify_ready(rc == 0 ? "serving (reloaded)" : "serving (reload failed)");
	return rc;
}

static void
on_sighup(struct daemon *d)
{
	struct isd_live_diff diff;
	char err[1024] = "";
	int rc;

	isd_log_info("SIGHUP: reloading%s%s", d->config_file[0] ? " " : "", d->config_file);
	rc = reload(d, &diff, err, sizeof(err));
	if (rc < 0) {
		isd_log_err("reload failed: %s", err[0] ? err : strerror(-rc));
		return;
	}
	isd_log_info("reloaded: targets +%d -%d ~%d (%d untouched), LUNs +%d -%d ~%d, portals +%d "
		     "-%d ~%d, ACL/credential changes %d, global changes %d",
		     diff.targets_added, diff.targets_removed, diff.targets_changed,
		     diff.unchanged_targets, diff.luns_added, diff.luns_removed, diff.luns_changed,
		     diff.portals_added, diff.portals_removed, diff.portals_changed, diff.acl_changed,
		     diff.globals_changed);
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
handle_signal(struct daemon *d, uint32_t signo)
{
	switch (signo) {
	case SIGINT:
	case SIGTERM:
		if (d->stopping) {
			isd_log_warn("%s again: stopping now", signame(signo));
			isd_reactor_stop(d->r);
			break;
		}
		d->stopping = true;
		isd_notify_stopping();
		isd_log_info("%s: shutting down", signame(signo));
		isd_reactor_timer_start(d->r, &d->shutdown_timer, d->shutdown_ms);
		/* no changes while the sessions drain */
		isd_ctl_stop(d->ctl);
		d->ctl = NULL;
		isd_target_shutdown(d->rt, on_drained, d);
		break;
	case SIGHUP:
		if (!d->stopping)
			on_sighup(d);
		break;
	case SIGUSR1:
		log_stats(d, "current");
		break;
	default:
		break;
	}
}

/*
 * Every signal is control work: the shutdown's start closes connections of
 * every reactor, a reload changes what they read, SIGUSR1 reads their
 * counters. The other reactors wait at the barrier meanwhile (nothing with
 * one reactor).
 */
static void
on_signal(void *arg, uint32_t events)
{
	struct daemon *d = arg;
	struct signalfd_siginfo si;
	ssize_t n;

	(void)events;
	for (;;) {
		n = read(d->sfd, &si, sizeof(si));
		if (n != (ssize_t)sizeof(si))
			return; /* EAGAIN: drained */
		isd_reactor_group_pause(d->g);
		handle_signal(d, si.ssi_signo);
		isd_reactor_group_resume(d->g);
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

static int
copy_args(struct daemon *d, int argc, char **argv)
{
	d->argv = calloc((size_t)argc + 1, sizeof(char *));
	if (d->argv == NULL)
		return -ENOMEM;
	for (d->argc = 0; d->argc < argc; d->argc++) {
		d->argv[d->argc] = strdup(argv[d->argc]);
		if (d->argv[d->argc] == NULL)
			return -ENOMEM;
	}
	return 0;
}

static void
free_args(struct daemon *d)
{
	for (int i = 0; i < d->argc; i++) {
		explicit_bzero(d->argv[i], strlen(d->argv[i]));
		free(d->argv[i]);
	}
	free(d->argv);
	d->argv = NULL;
	d->argc = 0;
}

/*
 * The control socket: the configured path, or the default one (whose
 * directory is created; failing there is a warning, not the end), or none.
 */
static int
start_control(struct daemon *d, const struct isd_target_cfg *cfg)
{
	const char *path = cfg->control_socket[0] ? cfg->control_socket
						   : ISD_TARGET_DEFAULT_CONTROL_SOCKET;
	bool dflt = cfg->control_socket[0] == '\0';
	char err[512] = "";
	int rc;

	if (strcmp(path, "none") == 0)
		return 0;
	d->ctl_env.rt = d->rt;
	d->ctl_env.config_file = d->config_file;
	d->ctl_env.started_ns = isd_now_ns();
	d->ctl_env.reload = reload;
	d->ctl_env.reload_arg = d;
	rc = isd_ctl_start(d->r, &d->ctl_env, path,
			   cfg->control_mode != -1 ? (unsigned)cfg->control_mode : 0600, dflt,
			   &d->ctl, err, sizeof(err));
	if (rc < 0 && dflt) {
		isd_log_warn("%s; running without a control socket (control_socket sets another "
			     "path)",
			     err);
		return 0;
	}
	if (rc < 0)
		fprintf(stderr, "iserd: %s\n", err);
	return rc;
}

int
main(int argc, char **argv)
{
	struct isd_target_cfg cfg;
	struct daemon d = {.sfd = -1};
	sigset_t mask;
	char err[1024] = "";
	int rc, status = ISD_EXIT_RUNTIME, scrubbed;
	static int cpus[ISD_TARGET_CPUS_MAX];
	unsigned nreactors = 1, ncpus = 0;
	char pinned[sizeof(cfg.reactor_cpus)] = "";

	isd_target_cfg_init(&cfg);
	if (copy_args(&d, argc, argv) < 0) {
		fprintf(stderr, "iserd: out of memory\n");
		return ISD_EXIT_RUNTIME;
	}
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
	nreactors = isd_target_reactor_count(&cfg);
	if (cfg.reactor_cpus[0] != '\0' &&
	    isd_target_cpu_list_parse(cfg.reactor_cpus, cpus, ISD_TARGET_CPUS_MAX, &ncpus, err,
				      sizeof(err)) < 0) {
		fprintf(stderr, "iserd: reactor_cpus: %s\n", err);
		status = ISD_EXIT_USAGE;
		goto out_sig;
	}
	snprintf(pinned, sizeof(pinned), "%s", cfg.reactor_cpus);
	rc = isd_reactor_group_create(nreactors, &d.g);
	if (rc < 0) {
		fprintf(stderr, "iserd: cannot create %u reactor%s: %s\n", nreactors,
			nreactors == 1 ? "" : "s", strerror(-rc));
		goto out_sig;
	}
	d.r = isd_reactor_group_get(d.g, 0);
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
	/* the control socket too: its directory under /run may need root */
	snprintf(d.config_file, sizeof(d.config_file), "%s", cfg.config_file);
	rc = start_control(&d, &cfg);
	if (rc < 0) {
		isd_metrics_http_stop(d.metrics);
		isd_target_stop(d.rt);
		goto out_sfd;
	}
	/* after every portal listens and every LUN is open and registered */
	rc = isd_target_drop_privileges(&cfg, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "iserd: %s\n", err);
		isd_ctl_stop(d.ctl);
		isd_metrics_http_stop(d.metrics);
		isd_target_stop(d.rt);
		goto out_sfd;
	}
	/* the model holds secrets; the running target has its own copy */
	isd_target_cfg_fini(&cfg);
	if (nreactors > 1) {
		/* the SCSI devices' monitors, before a second thread can enter them */
		isd_monitor_set_threaded(true);
	}
	rc = isd_reactor_group_start(d.g, ncpus > 0 ? cpus : NULL, ncpus);
	if (rc < 0) {
		isd_log_err("cannot start %u reactor%s%s%s: %s%s", nreactors,
			    nreactors == 1 ? "" : "s", ncpus > 0 ? " pinned to CPUs " : "",
			    ncpus > 0 ? pinned : "", strerror(-rc),
			    rc == -EINVAL && ncpus > 0
				? " (is every CPU of reactor_cpus in iserd's affinity mask?)"
				: "");
		status = ISD_EXIT_RUNTIME;
		isd_ctl_stop(d.ctl);
		isd_metrics_http_stop(d.metrics);
		isd_target_stop(d.rt);
		goto out_sfd;
	}
	if (nreactors > 1 || ncpus > 0)
		isd_log_info("%u reactor%s%s%s", nreactors, nreactors == 1 ? "" : "s",
			     ncpus > 0 ? ", pinned to CPUs " : "", ncpus > 0 ? pinned : "");
	isd_log_info("ready");
	isd_notify_ready("serving");

	rc = isd_reactor_run(d.r);
	if (rc < 0) {
		isd_log_err("reactor: %s", strerror(-rc));
		status = ISD_EXIT_RUNTIME;
	} else {
		status = ISD_EXIT_OK;
	}
	/* the other reactors stop between two turns; from here on this thread is alone */
	isd_reactor_group_join(d.g);
	log_stats(&d, "final");
	isd_ctl_stop(d.ctl);
	d.ctl = NULL;
	isd_reactor_timer_stop(d.r, &d.shutdown_timer);
	isd_metrics_http_stop(d.metrics);
	isd_target_stop(d.rt);
	if (d.stopping && !d.drained) {
		/* connections still hold fds on the reactors: exit without freeing them */
		isd_reactor_del_fd(d.r, d.sfd);
		close(d.sfd);
		isd_log_info("stopped");
		free_args(&d);
		return status;
	}
	isd_log_info("stopped");
out_sfd:
	isd_reactor_del_fd(d.r, d.sfd);
out_reactor:
	isd_reactor_group_destroy(d.g); /* joins first when started */
out_sig:
	if (d.sfd >= 0)
		close(d.sfd);
out_cfg:
	isd_target_cfg_fini(&cfg);
	free_args(&d);
	return status;
}
