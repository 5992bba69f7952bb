/*
 * The command line. Hand-rolled rather than getopt_long: getopt keeps global
 * state (optind) that makes parsing twice in one process (the unit tests)
 * fragile, and prints its own messages, while every error here must be one
 * line that names the offending flag.
 */
#include "server/config_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum opt_id {
	OPT_CONFIG,
	OPT_PORTAL,
	OPT_TARGET,
	OPT_ALIAS,
	OPT_LUN,
	OPT_CHAP,
	OPT_MUTUAL_CHAP,
	OPT_ALLOW,
	OPT_ALLOW_SHORT,
	OPT_VERBOSE,
	OPT_QUIET,
	OPT_DEBUG,
	OPT_CHECK,
	OPT_CONTROL_SOCKET,
	OPT_METRICS_LISTEN,
	OPT_REACTOR_MODE,
	OPT_REACTORS,
	OPT_REACTOR_CPUS,
	OPT_POLLING_REACTORS,
	OPT_HELP,
	OPT_VERSION,
	OPT_ALUA_GROUP,
	OPT_ALUA_PEER,
	OPT_ALUA_PEER_STATE,
};

struct opt_def {
	const char *lng;
	char shrt;	 /* 0 = long only */
	const char *arg; /* argument name, NULL = none */
	enum opt_id id;
};

static const struct opt_def g_opts[] = {
    {"config", 'c', "FILE", OPT_CONFIG},
    {"portal", 'p', "URL", OPT_PORTAL},
    {"target", 't', "IQN", OPT_TARGET},
    {"alias", 0, "ALIAS", OPT_ALIAS},
    {"lun", 'l', "SPEC", OPT_LUN},
    {"alua-group", 0, "N", OPT_ALUA_GROUP},
    {"alua-peer", 0, "GROUP[/PORT]", OPT_ALUA_PEER},
    {"alua-peer-state", 0, "STATE", OPT_ALUA_PEER_STATE},
    {"chap", 0, "USER:SECRET", OPT_CHAP},
    {"mutual-chap", 0, "USER:SECRET", OPT_MUTUAL_CHAP},
    {"allow", 'a', "INITIATOR", OPT_ALLOW},
    {"allow-short-secrets", 0, NULL, OPT_ALLOW_SHORT},
    {"verbose", 'v', NULL, OPT_VERBOSE},
    {"quiet", 'q', NULL, OPT_QUIET},
    {"debug", 'd', "COMPONENTS", OPT_DEBUG},
    {"check", 0, NULL, OPT_CHECK},
    {"control-socket", 0, "PATH", OPT_CONTROL_SOCKET},
    {"metrics-listen", 0, "ADDR:PORT", OPT_METRICS_LISTEN},
    {"reactor-mode", 0, "MODE[:US]", OPT_REACTOR_MODE},
    {"reactors", 0, "N|auto", OPT_REACTORS},
    {"reactor-cpus", 0, "LIST", OPT_REACTOR_CPUS},
    {"polling-reactors", 0, "LIST", OPT_POLLING_REACTORS},
    {"help", 'h', NULL, OPT_HELP},
    {"version", 'V', NULL, OPT_VERSION},
};
#define N_OPTS (sizeof(g_opts) / sizeof(g_opts[0]))

static const char g_usage[] =
    "Usage: iserd [OPTIONS]\n"
    "Userspace iSCSI target: iSCSI over TCP (tcp://) and iSER (iser://, rdma-core).\n"
    "Runs in the foreground and logs to stderr. Without options it serves one\n"
    "1 GiB RAM LUN as " ISD_TARGET_DEFAULT_NAME " on 127.0.0.1:3260.\n"
    "\n"
    "Configuration:\n"
    "  -c, --config FILE         read a libconfig file (see iserd(8), docs/iserd.md);\n"
    "                            the flags below add to it\n"
    "      --check               validate the configuration, open nothing, exit 0\n"
    "      --control-socket PATH Unix socket of the control interface (iserctl);\n"
    "                            default " ISD_TARGET_DEFAULT_CONTROL_SOCKET ", none = off\n"
    "\n"
    "Quick start (repeatable; LUN, ACL and CHAP flags attach to the last --target):\n"
    "  -p, --portal URL          listen on tcp://ADDR[:PORT] (IPv6: tcp://[::1]:3260) or\n"
    "                            iser://ADDR[:PORT] (iSER over RDMA: InfiniBand, RoCE,\n"
    "                            iWARP; on iWARP it needs a port no TCP portal uses);\n"
    "                            naming one replaces the default tcp://127.0.0.1:3260\n"
    "  -t, --target IQN          add a target (iqn.YYYY-MM.domain[:id], eui.*, naa.*);\n"
    "                            default " ISD_TARGET_DEFAULT_NAME "\n"
    "      --alias ALIAS         TargetAlias of the current target\n"
    "  -l, --lun SPEC            add the next LUN (0, 1, ...) of the current target;\n"
    "                            SPEC is one of (SIZE: 512M, 1G, ...; default ram:1G):\n"
    "@KINDS@"
    "                            and, after any of them, ,physical_block_size=N: report\n"
    "                            N-byte physical blocks (a power-of-two multiple of the\n"
    "                            512-byte block, up to 64K; e.g. 4096); ,serial=S (VPD\n"
    "                            0x80), ,naa=HEX (16 or 32 hex digits starting with 6:\n"
    "                            the NAA designator), ,alua=STATE (active/optimized,\n"
    "                            active/non-optimized, standby, unavailable,\n"
    "                            transitioning: the LU's ALUA state on this gateway)\n"
    "      --alua-group N        ALUA: this gateway's target port group for the\n"
    "                            current target (1..65535; default: ALUA off)\n"
    "      --alua-peer GROUP[/PORT]\n"
    "                            another gateway's target port group (its relative\n"
    "                            port id: PORT, default GROUP); repeatable\n"
    "      --alua-peer-state STATE\n"
    "                            how the peers are reported while this gateway's\n"
    "                            LUN is active/optimized: the state non-owners are\n"
    "                            put in (active/non-optimized (default), standby,\n"
    "                            unavailable)\n"
    "      --chap USER:SECRET    require CHAP from initiators of the current target;\n"
    "                            SECRET may be @FILE (the file's one line; refused\n"
    "                            if others may read it) or env:VAR (from the\n"
    "                            environment). A literal SECRET is overwritten in the\n"
    "                            process's argv at start, with a warning: prefer the\n"
    "                            other two. Secrets need 12 bytes or more\n"
    "      --mutual-chap USER:SECRET\n"
    "                            answer the initiator's challenge (mutual CHAP); its\n"
    "                            secret must differ from the --chap one\n"
    "  -a, --allow INITIATOR     allow only these initiator names (ACL); credentials\n"
    "                            per initiator are set in the config file (acl groups)\n"
    "      --allow-short-secrets accept CHAP secrets under 12 bytes\n"
    "\n"
    "Logging:\n"
    "  -v, --verbose             debug level, every component (narrow it with -d)\n"
    "  -q, --quiet               warnings and errors only\n"
    "  -d, --debug COMPONENTS    debug messages of components, comma-separated\n"
    "                            (e.g. iscsi,tcp,scsi,bstore,target; or all)\n"
    "\n"
    "Monitoring:\n"
    "      --metrics-listen ADDR:PORT\n"
    "                            serve statistics in Prometheus text format at\n"
    "                            http://ADDR:PORT/metrics (IPv6: [::1]:9580); off\n"
    "                            by default\n"
    "\n"
    "Performance:\n"
    "      --reactor-mode MODE[:US]\n"
    "                            how the event loop waits when idle: event (sleeps),\n"
    "                            poll (spins: a core kept for iserd), adaptive (the\n"
    "                            default: spins US microseconds after work, default\n"
    "                            50, then sleeps; up to 8 x US while sleeps keep\n"
    "                            being cut short by new work); every reactor waits\n"
    "                            this way, but those of --polling-reactors\n"
    "      --reactors N|auto     event loop threads (reactors), 1..256, or auto: one\n"
    "                            per CPU iserd may run on; default 1. Connections (TCP\n"
    "                            and iSER) go to the reactor with the fewest at\n"
    "                            accept (of those their portal's reactors allows, in\n"
    "                            the file); the listeners and the control socket\n"
    "                            stay on reactor 0. Read at start only\n"
    "      --reactor-cpus LIST   pin reactor i to the i-th CPU of LIST (e.g. 0,2-3;\n"
    "                            wraps around when there are more reactors)\n"
    "      --polling-reactors LIST\n"
    "                            these reactors (e.g. 2-3) poll, never sleeping,\n"
    "                            whatever --reactor-mode says: for reactors on cores\n"
    "                            kept for iserd (a portal's reactors, say)\n"
    "\n"
    "  -h, --help                this text\n"
    "  -V, --version             print the version\n"
    "\n"
    "Signals: SIGINT/SIGTERM stop cleanly (a second one forces the exit); SIGHUP\n"
    "reloads the configuration, applying only what changed (iserctl config reload).\n"
    "A running iserd is changed and watched with iserctl(8) over the control socket.\n"
    "Exit status: 0 ok, 1 runtime failure (open, listen...), 2 bad flag or config.\n";

/*
 * g_usage with @KINDS@ replaced by one line per registered backing store
 * kind, so that --help lists exactly what --lun accepts. Built once.
 */
const char *
isd_target_usage(void)
{
	static char text[sizeof(g_usage) + 64 * 128];
	const char *mark;
	size_t n;

	if (text[0] != '\0')
		return text;
	mark = strstr(g_usage, "@KINDS@");
	n = (size_t)(mark - g_usage);
	memcpy(text, g_usage, n);
	for (unsigned i = 0; i < isd_bstore_kind_count && n < sizeof(text); i++) {
		const struct isd_bstore_kind *k = isd_bstore_kinds[i];

		/* a usage wider than its column (rbd:) has its words on the next line */
		if (strlen(k->usage) > 27)
			n += (size_t)snprintf(text + n, sizeof(text) - n, "%30s%s\n%58s%s\n", "",
					      k->usage, "", k->help);
		else
			n += (size_t)snprintf(text + n, sizeof(text) - n, "%30s%-27s %s\n", "",
					      k->usage, k->help);
	}
	if (n < sizeof(text))
		snprintf(text + n, sizeof(text) - n, "%s", mark + 7);
	return text;
}

struct opt_item {
	enum opt_id id;
	const char *val;
	const char *flag; /* as spelled by the user, for messages */
};

/* Finds the option for argv[*i]; fills items. Returns 0, 1 (help/version: stop) or -EINVAL. */
static int
split_args(int argc, char **argv, struct opt_item *items, int *n_items, char *err, size_t errlen)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const struct opt_def *d = NULL;
		const char *val = NULL;

		if (a[0] != '-' || a[1] == '\0') {
			isd_target_errf(err, errlen, "unexpected argument '%s' (see iserd --help)",
					a);
			return -EINVAL;
		}
		if (a[1] == '-') {
			const char *name = a + 2;
			const char *eq = strchr(name, '=');
			size_t nlen = eq ? (size_t)(eq - name) : strlen(name);

			for (size_t k = 0; k < N_OPTS; k++) {
				if (strlen(g_opts[k].lng) == nlen &&
				    strncmp(g_opts[k].lng, name, nlen) == 0)
					d = &g_opts[k];
			}
			if (d == NULL) {
				isd_target_errf(err, errlen,
						"unknown option '%.*s' (see iserd --help)",
						(int)nlen + 2, a);
				return -EINVAL;
			}
			if (eq && d->arg == NULL) {
				isd_target_errf(err, errlen, "--%s takes no argument", d->lng);
				return -EINVAL;
			}
			if (eq)
				val = eq + 1;
		} else {
			/* one short option, its value attached (-cFILE) or next */
			for (size_t k = 0; k < N_OPTS; k++)
				if (g_opts[k].shrt == a[1])
					d = &g_opts[k];
			if (d == NULL) {
				isd_target_errf(err, errlen,
						"unknown option '-%c' (see iserd --help)", a[1]);
				return -EINVAL;
			}
			if (a[2] != '\0') {
				if (d->arg == NULL) {
					isd_target_errf(err, errlen,
							"-%c takes no argument (give flags "
							"separately)",
							a[1]);
					return -EINVAL;
				}
				val = a + 2;
			}
		}
		if (d->arg != NULL && val == NULL) {
			if (i + 1 >= argc) {
				isd_target_errf(err, errlen, "--%s needs an argument (%s)", d->lng,
						d->arg);
				return -EINVAL;
			}
			val = argv[++i];
		}
		items[*n_items].id = d->id;
		items[*n_items].val = val;
		items[*n_items].flag = d->lng;
		(*n_items)++;
		if (d->id == OPT_HELP || d->id == OPT_VERSION)
			return 1;
	}
	return 0;
}

/* The target LUN/ACL/CHAP flags attach to: the last --target, or the default one. */
static struct isd_target_node_cfg *
current_node(struct isd_target_cfg *cfg, int *cur)
{
	struct isd_target_node_cfg *n;

	if (*cur >= 0)
		return &cfg->nodes[*cur];
	n = isd_target_cfg_find_node(cfg, ISD_TARGET_DEFAULT_NAME);
	if (n == NULL) {
		n = isd_target_cfg_add_node(cfg, ISD_TARGET_DEFAULT_NAME, "default target");
		if (n == NULL)
			return NULL;
		n->from_flags = true;
	}
	*cur = (int)(n - cfg->nodes);
	return n;
}

static int
apply_item(struct isd_target_cfg *cfg, const struct opt_item *it, int *cur, char *err,
	   size_t errlen)
{
	struct isd_target_node_cfg *n = NULL;
	char why[200];
	char origin[ISD_TARGET_ORIGIN_MAX];
	int rc;

	snprintf(origin, sizeof(origin), "--%s %s", it->flag, it->val ? it->val : "");
	switch (it->id) {
	case OPT_PORTAL: {
		struct isd_target_portal_spec ps, *p;

		rc = isd_target_portal_parse(it->val, &ps, why, sizeof(why));
		if (rc < 0) {
			isd_target_errf(err, errlen, "%s: %s", origin, why);
			return -EINVAL;
		}
		snprintf(ps.origin, sizeof(ps.origin), "%s", origin);
		p = isd_target_cfg_add_portal(cfg);
		if (p == NULL)
			goto err_nomem;
		*p = ps;
		return 0;
	}
	case OPT_TARGET:
		if (isd_target_name_check(it->val, why, sizeof(why)) < 0) {
			isd_target_errf(err, errlen, "%s: invalid iSCSI name: %s", origin, why);
			return -EINVAL;
		}
		n = isd_target_cfg_find_node(cfg, it->val);
		if (n == NULL) {
			n = isd_target_cfg_add_node(cfg, it->val, origin);
			if (n == NULL)
				goto err_nomem;
			n->from_flags = true;
		}
		*cur = (int)(n - cfg->nodes);
		return 0;
	case OPT_ALIAS:
	case OPT_LUN:
	case OPT_ALUA_GROUP:
	case OPT_ALUA_PEER:
	case OPT_ALUA_PEER_STATE:
	case OPT_CHAP:
	case OPT_MUTUAL_CHAP:
	case OPT_ALLOW:
		break;
	default:
		return 0; /* handled in pass 1 */
	}

	n = current_node(cfg, cur);
	if (n == NULL)
		goto err_nomem;
	switch (it->id) {
	case OPT_ALIAS:
		if (strlen(it->val) >= sizeof(n->alias)) {
			isd_target_errf(err, errlen, "--alias: longer than %zu bytes",
					sizeof(n->alias) - 1);
			return -EINVAL;
		}
		snprintf(n->alias, sizeof(n->alias), "%s", it->val);
		return 0;
	case OPT_ALUA_GROUP: {
		struct isd_target_alua_peer g;

		/* the same digits rule as a peer group: 1..65535, nothing after */
		if (strchr(it->val, '/') != NULL ||
		    isd_target_alua_peer_parse(it->val, &g, why, sizeof(why)) < 0) {
			isd_target_errf(err, errlen, "%s: a group number 1..65535", origin);
			return -EINVAL;
		}
		n->alua_group = g.group;
		return 0;
	}
	case OPT_ALUA_PEER: {
		struct isd_target_alua_peer p;

		if (isd_target_alua_peer_parse(it->val, &p, why, sizeof(why)) < 0 ||
		    isd_target_alua_peer_add(n, &p, why, sizeof(why)) < 0) {
			isd_target_errf(err, errlen, "%s: %s", origin, why);
			return -EINVAL;
		}
		return 0;
	}
	case OPT_ALUA_PEER_STATE:
		if (isd_target_alua_peer_state_parse(it->val, &n->alua_peer_state) < 0) {
			isd_target_errf(err, errlen,
					"%s: active/non-optimized, standby or unavailable", origin);
			return -EINVAL;
		}
		return 0;
	case OPT_LUN: {
		struct isd_target_lun_cfg lc, *l;
		uint32_t next = 0;

		memset(&lc, 0, sizeof(lc));
		if (isd_target_lun_spec_parse(it->val, &lc, why, sizeof(why)) < 0) {
			isd_target_errf(err, errlen, "%s: %s", origin, why);
			return -EINVAL;
		}
		for (int i = 0; i < n->lun_count; i++)
			if (n->luns[i].number + 1 > next)
				next = n->luns[i].number + 1;
		l = isd_target_node_add_lun(n);
		if (l == NULL)
			goto err_nomem;
		*l = lc;
		l->number = next;
		snprintf(l->origin, sizeof(l->origin), "%s", origin);
		return 0;
	}
	case OPT_CHAP:
	case OPT_MUTUAL_CHAP: {
		bool mutual = it->id == OPT_MUTUAL_CHAP;
		struct isd_chap_cred *cred = mutual ? &n->auth.mutual_chap : &n->auth.chap;
		bool *flag = mutual ? &n->auth.mutual : &n->auth.require_chap;

		/* never echo the secret back in a message */
		snprintf(origin, sizeof(origin), "--%s", it->flag);
		if (*flag) {
			isd_target_errf(err, errlen, "%s given twice for target %s", origin,
					n->name);
			return -EINVAL;
		}
		if (isd_target_chap_parse(cfg, it->val, cred, why, sizeof(why)) < 0) {
			isd_target_errf(err, errlen, "%s: %s", origin, why);
			return -EINVAL;
		}
		*flag = true;
		return 0;
	}
	case OPT_ALLOW:
		if (isd_target_name_check(it->val, why, sizeof(why)) < 0) {
			isd_target_errf(err, errlen, "%s: invalid iSCSI name: %s", origin, why);
			return -EINVAL;
		}
		for (int i = 0; i < n->acl_count; i++)
			if (strcasecmp(n->acl[i], it->val) == 0)
				return 0;
		if (isd_target_node_add_acl(n, it->val) < 0)
			goto err_nomem;
		return 0;
	default:
		return 0;
	}

err_nomem:
	isd_target_errf(err, errlen, "out of memory");
	return -ENOMEM;
}

/* The value of a --chap/--mutual-chap flag at argv[*i], or NULL; moves *i past it. */
static char *
secret_flag_value(int argc, char **argv, int *i)
{
	static const char *const flags[] = {"--chap", "--mutual-chap"};
	char *a = argv[*i];

	for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); k++) {
		size_t n = strlen(flags[k]);

		if (strncmp(a, flags[k], n) != 0)
			continue;
		if (a[n] == '=')
			return a + n + 1;
		if (a[n] == '\0' && *i + 1 < argc)
			return argv[++*i];
	}
	return NULL;
}

int
isd_target_args_scrub(int argc, char **argv)
{
	int scrubbed = 0;

	/* the same walk as split_args: a flag's value is never taken for a flag */
	for (int i = 1; i < argc; i++) {
		char *v, *sec;

		if (argv[i][0] != '-')
			continue;
		if (argv[i][1] != '-') {
			/* a short option that takes its value from the next argument */
			for (size_t k = 0; k < N_OPTS; k++) {
				if (g_opts[k].shrt != 0 && g_opts[k].shrt == argv[i][1] &&
				    g_opts[k].arg != NULL && argv[i][2] == '\0') {
					i++;
					break;
				}
			}
			continue;
		}
		v = secret_flag_value(argc, argv, &i);
		if (v == NULL) {
			const char *eq = strchr(argv[i], '=');

			/* a long option without =VALUE that takes one skips the next argument */
			for (size_t k = 0; k < N_OPTS && eq == NULL; k++) {
				if (strcmp(argv[i] + 2, g_opts[k].lng) == 0 &&
				    g_opts[k].arg != NULL) {
					i++;
					break;
				}
			}
			continue;
		}
		sec = strchr(v, ':');
		if (sec == NULL || sec[1] == '\0' || sec[1] == '@' ||
		    strncmp(sec + 1, "env:", 4) == 0)
			continue;
		/* same length, so that the rest of the command line keeps its place */
		memset(sec + 1, 'x', strlen(sec + 1));
		scrubbed++;
	}
	return scrubbed;
}

static int
fill_defaults(struct isd_target_cfg *cfg, char *err, size_t errlen)
{
	if (cfg->portal_count == 0) {
		struct isd_target_portal_spec *p = isd_target_cfg_add_portal(cfg);

		if (p == NULL)
			goto err_nomem;
		isd_target_portal_parse(ISD_TARGET_DEFAULT_PORTAL, p, NULL, 0);
		snprintf(p->origin, sizeof(p->origin), "default portal %s",
			 ISD_TARGET_DEFAULT_PORTAL);
	}
	if (cfg->node_count == 0) {
		struct isd_target_node_cfg *n;

		n = isd_target_cfg_add_node(cfg, ISD_TARGET_DEFAULT_NAME, "default target");
		if (n == NULL)
			goto err_nomem;
		n->from_flags = true;
	}
	for (int i = 0; i < cfg->node_count; i++) {
		struct isd_target_node_cfg *n = &cfg->nodes[i];
		struct isd_target_lun_cfg *l;

		if (!n->from_flags || n->lun_count > 0)
			continue;
		l = isd_target_node_add_lun(n);
		if (l == NULL)
			goto err_nomem;
		isd_target_lun_spec_parse(ISD_TARGET_DEFAULT_LUN, l, NULL, 0);
		l->number = 0;
		snprintf(l->origin, sizeof(l->origin), "default LUN %s", ISD_TARGET_DEFAULT_LUN);
	}
	return 0;

err_nomem:
	isd_target_errf(err, errlen, "out of memory");
	return -ENOMEM;
}

int
isd_target_cfg_parse_args(int argc, char **argv, struct isd_target_cfg *cfg, char *err,
			  size_t errlen)
{
	struct opt_item *items;
	int n_items = 0, cur = -1, rc;
	int flag_level = -1;
	const char *flag_debug = NULL;
	const char *flag_socket = NULL;
	const char *flag_metrics = NULL;
	int flag_rmode = -1;
	int64_t flag_poll_us = -1;
	int flag_reactors = -1;
	const char *flag_rcpus = NULL;
	const char *flag_polling = NULL;

	items = calloc((size_t)(argc > 0 ? argc : 1), sizeof(*items));
	if (items == NULL) {
		isd_target_errf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rc = split_args(argc, argv, items, &n_items, err, errlen);
	if (rc < 0)
		goto out;

	/* pass 1: what decides how to read the rest */
	for (int i = 0; i < n_items; i++) {
		switch (items[i].id) {
		case OPT_HELP:
			cfg->show_help = true;
			rc = 0;
			goto out;
		case OPT_VERSION:
			cfg->show_version = true;
			rc = 0;
			goto out;
		case OPT_CONFIG:
			if (cfg->config_file[0] != '\0') {
				isd_target_errf(err, errlen, "-c/--config given twice");
				rc = -EINVAL;
				goto out;
			}
			if (items[i].val[0] == '\0' ||
			    strlen(items[i].val) >= sizeof(cfg->config_file)) {
				isd_target_errf(err, errlen, "--config: bad file name");
				rc = -EINVAL;
				goto out;
			}
			snprintf(cfg->config_file, sizeof(cfg->config_file), "%s", items[i].val);
			break;
		case OPT_VERBOSE:
			flag_level = ISD_LOG_DEBUG;
			break;
		case OPT_QUIET:
			flag_level = ISD_LOG_WARN;
			break;
		case OPT_DEBUG:
			if (items[i].val[0] == '\0' ||
			    strlen(items[i].val) >= sizeof(cfg->debug) - 2) {
				isd_target_errf(err, errlen, "--debug: bad component list '%s'",
						items[i].val);
				rc = -EINVAL;
				goto out;
			}
			flag_debug = items[i].val;
			break;
		case OPT_CHECK:
			cfg->check_only = true;
			break;
		case OPT_CONTROL_SOCKET:
			/* applied after the file, which it overrides */
			if (items[i].val[0] == '\0' ||
			    strlen(items[i].val) >= sizeof(cfg->control_socket)) {
				isd_target_errf(err, errlen,
						"--control-socket: a path of 1..%zu bytes, or none",
						sizeof(cfg->control_socket) - 1);
				rc = -EINVAL;
				goto out;
			}
			flag_socket = items[i].val;
			break;
		case OPT_REACTOR_MODE: {
			/* applied after the file, which it overrides */
			char mode[16], *end = NULL;
			const char *colon = strchr(items[i].val, ':');
			size_t ml = colon != NULL ? (size_t)(colon - items[i].val)
						  : strlen(items[i].val);
			unsigned long long us = 0;

			mode[0] = '\0';
			if (ml < sizeof(mode)) {
				memcpy(mode, items[i].val, ml);
				mode[ml] = '\0';
			}
			if (colon != NULL) {
				errno = 0;
				us = colon[1] >= '0' && colon[1] <= '9' ? strtoull(colon + 1, &end, 10)
									: ~0ull;
			}
			flag_rmode = isd_target_reactor_mode_parse(mode);
			if (flag_rmode < 0 ||
			    (colon != NULL && (us > 100000 || errno != 0 || end == NULL || *end != '\0'))) {
				isd_target_errf(err, errlen, "--reactor-mode: expected event, poll or "
						"adaptive, optionally :US (0-100000)");
				rc = -EINVAL;
				goto out;
			}
			if (colon != NULL)
				flag_poll_us = (int64_t)us;
			break;
		}
		case OPT_REACTORS:
			/* applied after the file, which it overrides */
			flag_reactors = isd_target_reactors_parse(items[i].val);
			if (flag_reactors < 0) {
				isd_target_errf(err, errlen, "--reactors: expected a number 1..%d or "
						"auto, not '%s'",
						ISD_TARGET_REACTORS_MAX, items[i].val);
				rc = -EINVAL;
				goto out;
			}
			break;
		case OPT_REACTOR_CPUS: {
			char why[256];
			unsigned n;

			if (strlen(items[i].val) >= sizeof(cfg->reactor_cpus)) {
				isd_target_errf(err, errlen, "--reactor-cpus: too long");
				rc = -EINVAL;
				goto out;
			}
			if (isd_target_cpu_list_parse(items[i].val, NULL, ISD_TARGET_CPUS_MAX, &n, why,
						      sizeof(why)) < 0) {
				isd_target_errf(err, errlen, "--reactor-cpus: %s", why);
				rc = -EINVAL;
				goto out;
			}
			flag_rcpus = items[i].val;
			break;
		}
		case OPT_POLLING_REACTORS: {
			char why[256];

			if (strlen(items[i].val) >= sizeof(cfg->polling_reactors)) {
				isd_target_errf(err, errlen, "--polling-reactors: too long");
				rc = -EINVAL;
				goto out;
			}
			if (isd_target_reactor_list_parse(items[i].val, NULL, NULL, why, sizeof(why)) <
			    0) {
				isd_target_errf(err, errlen, "--polling-reactors: %s", why);
				rc = -EINVAL;
				goto out;
			}
			flag_polling = items[i].val;
			break;
		}
		case OPT_METRICS_LISTEN: {
			char host[64], why[160];
			uint16_t port;

			if (strlen(items[i].val) >= sizeof(cfg->metrics_listen) ||
			    isd_target_listen_parse(items[i].val, host, sizeof(host), &port, why,
						    sizeof(why)) < 0) {
				isd_target_errf(err, errlen, "--metrics-listen: %s",
						strlen(items[i].val) >= sizeof(cfg->metrics_listen)
						    ? "too long"
						    : why);
				rc = -EINVAL;
				goto out;
			}
			flag_metrics = items[i].val;
			break;
		}
		case OPT_ALLOW_SHORT:
			cfg->allow_short_secrets = true;
			break;
		default:
			break;
		}
	}
	if (cfg->config_file[0] != '\0') {
		char path[sizeof(cfg->config_file)];

		/* the loader records the file it read itself */
		memcpy(path, cfg->config_file, sizeof(path));
		cfg->config_file[0] = '\0';
		rc = isd_target_cfg_load_file(path, cfg, err, errlen);
		if (rc < 0)
			goto out;
	}
	/* flags win over the file for logging */
	if (flag_level != -1)
		cfg->log_level = flag_level;
	if (flag_debug != NULL)
		snprintf(cfg->debug, sizeof(cfg->debug), "%s", flag_debug);
	if (flag_socket != NULL)
		snprintf(cfg->control_socket, sizeof(cfg->control_socket), "%s", flag_socket);
	if (flag_metrics != NULL)
		snprintf(cfg->metrics_listen, sizeof(cfg->metrics_listen), "%s", flag_metrics);
	if (flag_rmode != -1)
		cfg->reactor_mode = flag_rmode;
	if (flag_poll_us != -1)
		cfg->reactor_poll_us = flag_poll_us;
	if (flag_reactors != -1)
		cfg->reactors = flag_reactors;
	if (flag_rcpus != NULL)
		snprintf(cfg->reactor_cpus, sizeof(cfg->reactor_cpus), "%s", flag_rcpus);
	if (flag_polling != NULL)
		snprintf(cfg->polling_reactors, sizeof(cfg->polling_reactors), "%s", flag_polling);

	/* pass 2: what is served, in command-line order */
	for (int i = 0; i < n_items; i++) {
		rc = apply_item(cfg, &items[i], &cur, err, errlen);
		if (rc < 0)
			goto out;
	}
	rc = fill_defaults(cfg, err, errlen);
	if (rc < 0)
		goto out;
	rc = isd_target_cfg_validate(cfg, err, errlen);
out:
	free(items);
	return rc < 0 ? rc : 0;
}
