/*
 * iserinit: the iserd initiator command line.
 *
 *   iserinit [OPTIONS] SUBCOMMAND [OPTIONS] URL [OPTIONS]
 *
 * Options and the URL come in any order after the subcommand (GNU
 * getopt_long permutes them); the common options may also come before it.
 * Subcommands: discover, login, inquiry, readcap, report-luns, read, write,
 * verify, bench (iserinit_bench.c). Errors are one line on stderr with the
 * target's sense data or login status in words; exit status 0 on success, 1
 * on failure, 2 on a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "iserinit.h"

const char *ii_cmd = NULL;

void
ii_err(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "iserinit: %s%s", ii_cmd ? ii_cmd : "", ii_cmd ? ": " : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int
ii_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mult = 1;

	if (s == NULL || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno != 0)
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		mult = 1ull << 10;
		end++;
		break;
	case 'm':
	case 'M':
		mult = 1ull << 20;
		end++;
		break;
	case 'g':
	case 'G':
		mult = 1ull << 30;
		end++;
		break;
	case 't':
	case 'T':
		mult = 1ull << 40;
		end++;
		break;
	default:
		break;
	}
	if (strcasecmp(end, "ib") == 0 || strcasecmp(end, "b") == 0)
		end += strlen(end);
	if (*end != '\0' || (mult > 1 && v > UINT64_MAX / mult))
		return -EINVAL;
	*out = v * mult;
	return 0;
}

static void
log_to_stderr(enum iserd_log_level level, const char *msg, void *arg)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};

	(void)arg;
	fprintf(stderr, "iserinit: [%s] %s\n", names[level], msg);
}

static int
split_cred(const char *s, char *user, size_t ucap, char *secret, size_t scap)
{
	const char *colon = strchr(s, ':');

	if (colon == NULL || colon == s || (size_t)(colon - s) >= ucap || strlen(colon + 1) >= scap)
		return -1;
	memcpy(user, s, (size_t)(colon - s));
	user[colon - s] = '\0';
	snprintf(secret, scap, "%s", colon + 1);
	return 0;
}

struct iserd_context *
ii_open(const struct ii_common *co, const struct iserd_url *u, enum iserd_session_type type)
{
	struct iserd_context *ctx;
	char user[ISERD_SECRET_MAX], secret[ISERD_SECRET_MAX];
	int rc;

	char iname[ISERD_NAME_MAX], why[512], esc[ISERD_NAME_MAX * 4];
	const char *initiator = co->initiator, *iname_from = NULL;
	int r;

	/* -i wins; then open-iscsi's initiatorname.iscsi; then the library's default */
	if (initiator == NULL) {
		const char *path = ii_initiatorname_path();

		r = ii_read_initiatorname(path, iname, sizeof(iname), why, sizeof(why));
		if (r < 0) {
			ii_err("%s", why);
			return NULL;
		}
		if (r > 0) {
			initiator = iname;
			iname_from = path;
		}
	}
	rc = iserd_context_create(initiator, &ctx);
	if (rc < 0) {
		ii_err("bad initiator name '%s'%s%s",
		       iserd_escape(esc, sizeof(esc), initiator ? initiator : ""),
		       iname_from ? " in " : "", iname_from ? iname_from : "");
		return NULL;
	}
	if (co->verbose) {
		iserd_set_log_fn(ctx, log_to_stderr, NULL);
		iserd_set_log_level(ctx, ISERD_LOG_DEBUG);
	} else {
		iserd_set_log_fn(ctx, log_to_stderr, NULL);
		iserd_set_log_level(ctx, ISERD_LOG_ERR);
	}
	if (co->chap != NULL) {
		if (split_cred(co->chap, user, sizeof(user), secret, sizeof(secret)) < 0) {
			ii_err("--chap wants USER:SECRET");
			goto err;
		}
		iserd_set_chap(ctx, user, secret);
	} else {
		/* as libiscsi reads them (a URL's USER%SECRET still wins, at connect) */
		r = ii_env_cred("LIBISCSI_CHAP_USERNAME", "LIBISCSI_CHAP_PASSWORD", user,
				sizeof(user), secret, sizeof(secret), why, sizeof(why));
		if (r < 0) {
			ii_err("%s", why);
			goto err;
		}
		if (r > 0 && iserd_set_chap(ctx, user, secret) < 0) {
			ii_err("bad LIBISCSI_CHAP_USERNAME or LIBISCSI_CHAP_PASSWORD");
			goto err;
		}
	}
	if (co->chap_algs != NULL && iserd_set_chap_algs(ctx, co->chap_algs) < 0) {
		ii_err("bad --chap-algs '%s' (sha3-256, sha256, sha1, md5, comma separated)",
		       co->chap_algs);
		goto err;
	}
	if (co->mutual_chap != NULL) {
		if (split_cred(co->mutual_chap, user, sizeof(user), secret, sizeof(secret)) < 0) {
			ii_err("--mutual-chap wants USER:SECRET (the target's name and secret)");
			goto err;
		}
		iserd_set_mutual_chap(ctx, user, secret);
	} else {
		r = ii_env_cred("LIBISCSI_CHAP_TARGET_USERNAME", "LIBISCSI_CHAP_TARGET_PASSWORD",
				user, sizeof(user), secret, sizeof(secret), why, sizeof(why));
		if (r < 0) {
			ii_err("%s", why);
			goto err;
		}
		if (r > 0 && iserd_set_mutual_chap(ctx, user, secret) < 0) {
			ii_err("bad LIBISCSI_CHAP_TARGET_USERNAME or "
			       "LIBISCSI_CHAP_TARGET_PASSWORD");
			goto err;
		}
	}
	iserd_set_digests(ctx, co->header_digest >= 0 ? co->header_digest : ISERD_DIGEST_NONE,
			  co->data_digest >= 0 ? co->data_digest : ISERD_DIGEST_NONE);
	if (co->reconnect != ISERD_RECONNECT_OFF)
		iserd_set_reconnect(ctx, co->reconnect, 30, 500);
	if (co->timeout_ms)
		iserd_set_login_timeout(ctx, co->timeout_ms);
	if (co->queue_depth)
		iserd_set_queue_depth(ctx, co->queue_depth);
	rc = iserd_connect_sync(ctx, u, type);
	if (rc < 0) {
		const char *e = iserd_get_error(ctx);

		ii_err("%s", e[0] ? e : strerror(-rc));
		goto err;
	}
	if (type == ISERD_SESSION_NORMAL && u->has_lun) {
		struct iserd_task t;
		int i;

		/* Consume the unit attentions a new I_T nexus reports (power on, reset)
		 * so that they do not fail the first real command. */
		for (i = 0; i < 8; i++) {
			iserd_task_test_unit_ready(&t, u->lun);
			rc = iserd_task_sync(ctx, &t);
			if (rc != -EREMOTEIO || !t.sense_valid || t.sense_info.key != 0x6)
				break;
		}
		if (rc < 0 && rc != -EREMOTEIO) {
			ii_err("TEST UNIT READY failed: %s", iserd_get_error(ctx));
			goto err;
		}
	}
	return ctx;
err:
	iserd_context_destroy(ctx);
	return NULL;
}

void
ii_close(struct iserd_context *ctx)
{
	if (ctx == NULL)
		return;
	if (iserd_is_logged_in(ctx))
		iserd_logout_sync(ctx);
	iserd_context_destroy(ctx);
}

void
ii_task_error(struct iserd_context *ctx, int rc, const char *what, char *buf, size_t len)
{
	const char *e = iserd_get_error(ctx);

	snprintf(buf, len, "%s failed: %s", what, e[0] ? e : strerror(-rc));
}

int
ii_readcap(struct iserd_context *ctx, uint64_t lun, struct iserd_readcap16 *rc16)
{
	struct iserd_task t;
	uint8_t buf[32];
	char msg[600];
	int rc;

	iserd_task_read_capacity16(&t, lun, buf, sizeof(buf));
	rc = iserd_task_sync(ctx, &t);
	if (rc < 0 || iserd_parse_readcap16(buf, sizeof(buf), rc16) < 0) {
		ii_task_error(ctx, rc, "READ CAPACITY (16)", msg, sizeof(msg));
		ii_err("%s", msg);
		return -1;
	}
	if (rc16->block_size == 0 || rc16->block_size > (1u << 20)) {
		ii_err("target reports a block size of %u bytes", rc16->block_size);
		return -1;
	}
	return 0;
}

/* ---- option parsing shared by the subcommands ---- */

const char *const ii_common_help =
    "  -i, --initiator IQN      our InitiatorName (default: InitiatorName= of\n"
    "                           /etc/iscsi/initiatorname.iscsi, else\n"
    "                           iqn.2026-11.org.iserd:initiator)\n"
    "      --chap USER:SECRET   CHAP credentials (or iscsi://USER%SECRET@host/...;\n"
    "                           default LIBISCSI_CHAP_USERNAME, _PASSWORD)\n"
    "      --mutual-chap USER:SECRET\n"
    "                           authenticate the target too (its name and secret;\n"
    "                           default LIBISCSI_CHAP_TARGET_USERNAME, _PASSWORD)\n"
    "      --chap-algs LIST     CHAP algorithms to offer, of sha3-256,sha256,sha1,md5\n"
    "                           (default all; the target picks, strongest first)\n"
    "      --header-digest none|crc32c|crc32c,none|none,crc32c\n"
    "      --data-digest   none|crc32c|crc32c,none|none,crc32c\n"
    "      --reconnect[=retry|fail]\n"
    "                           re-login after a dropped connection; retry (default)\n"
    "                           re-sends the outstanding commands, fail fails them\n"
    "      --timeout SECONDS    login timeout (default 15)\n"
    "  -v, --verbose            log protocol events to stderr\n"
    "  -h, --help               this help\n";

static int
parse_digest(const char *v)
{
	if (strcasecmp(v, "none") == 0)
		return ISERD_DIGEST_NONE;
	if (strcasecmp(v, "crc32c") == 0)
		return ISERD_DIGEST_CRC32C;
	if (strcasecmp(v, "crc32c,none") == 0)
		return ISERD_DIGEST_CRC32C_NONE;
	if (strcasecmp(v, "none,crc32c") == 0)
		return ISERD_DIGEST_NONE_CRC32C;
	return -1;
}

int
ii_common_opt(struct ii_common *co, int opt, const char *arg)
{
	switch (opt) {
	case 'i':
		co->initiator = arg;
		return 1;
	case OPT_CHAP:
		co->chap = arg;
		return 1;
	case OPT_MUTUAL:
		co->mutual_chap = arg;
		return 1;
	case OPT_CHAP_ALGS:
		co->chap_algs = arg;
		return 1;
	case OPT_HD:
	case OPT_DD: {
		int d = parse_digest(arg);

		if (d < 0) {
			ii_err("bad digest '%s' (none, crc32c, crc32c,none, none,crc32c)", arg);
			return -1;
		}
		if (opt == OPT_HD)
			co->header_digest = d;
		else
			co->data_digest = d;
		return 1;
	}
	case OPT_RECONNECT:
		if (arg == NULL || strcmp(arg, "retry") == 0)
			co->reconnect = ISERD_RECONNECT_RETRY;
		else if (strcmp(arg, "fail") == 0)
			co->reconnect = ISERD_RECONNECT_FAIL;
		else {
			ii_err("bad --reconnect '%s' (retry or fail)", arg);
			return -1;
		}
		return 1;
	case OPT_TIMEOUT: {
		char *end;
		double s = strtod(arg, &end);

		if (*end != '\0' || s <= 0 || s > 3600) {
			ii_err("bad --timeout '%s'", arg);
			return -1;
		}
		co->timeout_ms = (uint32_t)(s * 1000);
		return 1;
	}
	case 'v':
		co->verbose = true;
		return 1;
	default:
		return 0;
	}
}

void
ii_common_init(struct ii_common *co)
{
	memset(co, 0, sizeof(*co));
	co->header_digest = -1;
	co->data_digest = -1;
}

struct sub_opts {
	struct ii_common co;
	const char *url;
	const char *file;
	uint64_t offset;
	uint64_t length;
	bool has_length;
	uint64_t size;
	bool has_size;
	int vpd;
	uint64_t bs;
};

static void
sub_usage(const char *usage, const char *extra)
{
	printf("usage: iserinit %s\n\n%s%s", usage, extra ? extra : "", ii_common_help);
}

/* Parses a simple subcommand's options. Returns 0, 1 (help printed), 2 (usage error). */
static int
sub_parse(int argc, char **argv, const char *usage, const char *extra, bool full_url,
	  struct sub_opts *o, struct iserd_url *u)
{
	static const struct option lo[] = {
	    COMMON_LONGOPTS,
	    {"offset", required_argument, NULL, OPT_OFFSET},
	    {"length", required_argument, NULL, OPT_LENGTH},
	    {"size", required_argument, NULL, OPT_SIZE},
	    {"vpd", required_argument, NULL, OPT_VPD},
	    {"bs", required_argument, NULL, OPT_BS},
	    {"output", required_argument, NULL, 'o'},
	    {"file", required_argument, NULL, 'f'},
	    {NULL, 0, NULL, 0},
	};
	char err[256];
	int opt, r;

	memset(o, 0, sizeof(*o));
	ii_common_init(&o->co);
	o->vpd = -1;
	o->bs = 1 << 20;
	optind = 0; /* a new scan (main parsed the leading options) */
	while ((opt = getopt_long(argc, argv, "i:vho:f:", lo, NULL)) != -1) {
		r = ii_common_opt(&o->co, opt, optarg);
		if (r < 0)
			return 2;
		if (r > 0)
			continue;
		switch (opt) {
		case 'h':
			sub_usage(usage, extra);
			return 1;
		case OPT_OFFSET:
		case OPT_LENGTH:
		case OPT_SIZE:
		case OPT_BS: {
			uint64_t v;

			if (ii_parse_size(optarg, &v) < 0) {
				ii_err("bad size '%s' (a number with an optional K, M, G or T)",
				       optarg);
				return 2;
			}
			if (opt == OPT_OFFSET)
				o->offset = v;
			else if (opt == OPT_LENGTH) {
				o->length = v;
				o->has_length = true;
			} else if (opt == OPT_SIZE) {
				o->size = v;
				o->has_size = true;
			} else {
				o->bs = v;
			}
			break;
		}
		case OPT_VPD: {
			char *end;
			long p = strtol(optarg, &end, 0);

			if (*end != '\0' || p < 0 || p > 255) {
				ii_err("bad VPD page '%s'", optarg);
				return 2;
			}
			o->vpd = (int)p;
			break;
		}
		case 'o':
		case 'f':
			o->file = optarg;
			break;
		default:
			fprintf(stderr, "usage: iserinit %s (see --help)\n", usage);
			return 2;
		}
	}
	if (optind != argc - 1) {
		ii_err("%s", optind >= argc ? "missing URL" : "too many arguments");
		fprintf(stderr, "usage: iserinit %s\n", usage);
		return 2;
	}
	o->url = argv[optind];
	if ((full_url ? iserd_url_parse_full(o->url, u, err, sizeof(err))
		      : iserd_url_parse_portal(o->url, u, err, sizeof(err))) < 0) {
		ii_err("%s", err);
		return 2;
	}
	return 0;
}

/* ---- discover ---- */

static int
cmd_discover(int argc, char **argv)
{
	struct sub_opts o;
	struct iserd_url u;
	struct iserd_context *ctx;
	struct iserd_discovery *list = NULL, *d;
	int rc = sub_parse(argc, argv, "discover [OPTIONS] iscsi://[user[%pass]@]host[:port]",
			   "SendTargets discovery: lists the targets and portals of a portal.\n\n",
			   false, &o, &u);

	if (rc)
		return rc == 1 ? 0 : 2;
	ctx = ii_open(&o.co, &u, ISERD_SESSION_DISCOVERY);
	if (ctx == NULL)
		return 1;
	rc = iserd_discover_sync(ctx, &list);
	if (rc < 0) {
		ii_err("SendTargets failed: %s",
		       iserd_get_error(ctx)[0] ? iserd_get_error(ctx) : strerror(-rc));
		ii_close(ctx);
		return 1;
	}
	for (d = list; d != NULL; d = d->next) {
		struct iserd_discovery_portal *p;

		char name[1024], addr[512];

		/* what the target sent, escaped: it may hold any byte but NUL */
		iserd_escape(name, sizeof(name), d->target_name);
		if (d->portals == NULL)
			printf("%s\n", name);
		for (p = d->portals; p != NULL; p = p->next)
			printf("%s,%d %s\n", iserd_escape(addr, sizeof(addr), p->address), p->tpgt,
			       name);
	}
	iserd_discovery_free(list);
	ii_close(ctx);
	return 0;
}

/* ---- login ---- */

static int
cmd_login(int argc, char **argv)
{
	struct sub_opts o;
	struct iserd_url u;
	struct iserd_context *ctx;
	struct iserd_negotiated n;
	int rc = sub_parse(argc, argv,
			   "login [OPTIONS] iscsi://[user[%pass]@]host[:port]/target-iqn[/lun]",
			   "Logs in, prints the negotiated keys, logs out.\n\n", false, &o, &u);

	if (rc)
		return rc == 1 ? 0 : 2;
	if (u.target[0] == '\0') {
		ii_err("the URL names no target (iscsi://host[:port]/target-iqn)");
		return 2;
	}
	ctx = ii_open(&o.co, &u, ISERD_SESSION_NORMAL);
	if (ctx == NULL)
		return 1;
	iserd_get_negotiated(ctx, &n);
	printf("Logged in to %s at %s:%u\n", n.target_name, u.host, u.port);
	{
		char alias[1024];

		printf("  TargetAlias                %s\n",
		       n.target_alias[0] ? iserd_escape(alias, sizeof(alias), n.target_alias) : "-");
	}
	printf("  TargetPortalGroupTag       %u\n", n.tpgt);
	printf("  TSIH                       %u\n", n.tsih);
	printf("  Authentication             %s\n", n.mutual_chap ? "CHAP (mutual)"
						    : n.chap	  ? "CHAP"
								  : "None");
	printf("  HeaderDigest               %s\n", n.header_digest ? "CRC32C" : "None");
	printf("  DataDigest                 %s\n", n.data_digest ? "CRC32C" : "None");
	printf("  InitialR2T                 %s\n", n.initial_r2t ? "Yes" : "No");
	printf("  ImmediateData              %s\n", n.immediate_data ? "Yes" : "No");
	printf("  MaxRecvDataSegmentLength   %u (ours) / %u (target's)\n", n.max_recv_dsl,
	       n.max_xmit_dsl);
	printf("  MaxBurstLength             %u\n", n.max_burst_length);
	printf("  FirstBurstLength           %u\n", n.first_burst_length);
	printf("  MaxOutstandingR2T          %u\n", n.max_outstanding_r2t);
	printf("  ErrorRecoveryLevel         %u\n", n.error_recovery_level);
	printf("  DefaultTime2Wait           %u\n", n.default_time2wait);
	printf("  DefaultTime2Retain         %u\n", n.default_time2retain);
	rc = iserd_logout_sync(ctx);
	if (rc < 0) {
		ii_err("logout failed: %s", iserd_get_error(ctx));
		iserd_context_destroy(ctx);
		return 1;
	}
	printf("Logged out\n");
	iserd_context_destroy(ctx);
	return 0;
}

/* ---- inquiry, readcap, report-luns ---- */

static void
hexdump(const uint8_t *b, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i += 16) {
		printf("  %04zx: ", i);
		for (j = i; j < i + 16; j++) {
			if (j < n)
				printf("%02x ", b[j]);
			else
				printf("   ");
		}
		printf(" ");
		for (j = i; j < i + 16 && j < n; j++)
			putchar(b[j] >= 0x20 && b[j] < 0x7f ? b[j] : '.');
		putchar('\n');
	}
}

static const char *
device_type_str(uint8_t t)
{
	switch (t) {
	case 0x00:
		return "direct access block device";
	case 0x01:
		return "sequential access device";
	case 0x05:
		return "CD/DVD device";
	case 0x0c:
		return "storage array controller";
	case 0x0d:
		return "enclosure services";
	case 0x1f:
		return "unknown or no device";
	default:
		return "other";
	}
}

static int
cmd_inquiry(int argc, char **argv)
{
	struct sub_opts o;
	struct iserd_url u;
	struct iserd_context *ctx;
	struct iserd_task t;
	uint8_t buf[4096];
	char msg[600];
	int rc = sub_parse(argc, argv, "inquiry [OPTIONS] [--vpd PAGE] URL",
			   "Standard INQUIRY data, or a VPD page with --vpd (0x00, 0x80, 0x83, "
			   "0xb0...).\n\n  --vpd PAGE               VPD page to read\n",
			   true, &o, &u);

	if (rc)
		return rc == 1 ? 0 : 2;
	ctx = ii_open(&o.co, &u, ISERD_SESSION_NORMAL);
	if (ctx == NULL)
		return 1;
	memset(buf, 0, sizeof(buf));
	iserd_task_inquiry(&t, u.lun, o.vpd >= 0, (uint8_t)(o.vpd >= 0 ? o.vpd : 0), buf, 255);
	if (o.vpd >= 0)
		iserd_task_inquiry(&t, u.lun, true, (uint8_t)o.vpd, buf, sizeof(buf));
	rc = iserd_task_sync(ctx, &t);
	if (rc < 0) {
		ii_task_error(ctx, rc, "INQUIRY", msg, sizeof(msg));
		ii_err("%s", msg);
		ii_close(ctx);
		return 1;
	}
	if (o.vpd < 0) {
		struct iserd_inquiry inq;
		uint32_t got = t.xfer_len - (t.underflow ? t.residual : 0);

		if (iserd_parse_inquiry(buf, got, &inq) < 0) {
			ii_err("short INQUIRY data (%u bytes)", got);
			ii_close(ctx);
			return 1;
		}
		printf("Vendor:      %s\n", inq.vendor);
		printf("Product:     %s\n", inq.product);
		printf("Revision:    %s\n", inq.revision);
		printf("Device type: 0x%02x (%s)\n", inq.device_type,
		       device_type_str(inq.device_type));
		printf("Qualifier:   %u\n", inq.peripheral_qualifier);
		printf("Version:     0x%02x\n", inq.version);
		printf("Removable:   %s\n", inq.removable ? "yes" : "no");
	} else {
		uint32_t len = 4 + ((uint32_t)buf[2] << 8 | buf[3]);

		if (len > sizeof(buf))
			len = sizeof(buf);
		printf("VPD page 0x%02x (%u bytes)\n", o.vpd, len);
		if (o.vpd == 0x00) {
			uint32_t i;

			for (i = 4; i < len; i++)
				printf("  supported page 0x%02x\n", buf[i]);
		} else if (o.vpd == 0x80) {
			char sn[sizeof(buf)], esc[4 * sizeof(buf) + 4];

			memcpy(sn, buf + 4, len - 4);
			sn[len - 4] = '\0';
			printf("  Unit serial number: %s\n", iserd_escape(esc, sizeof(esc), sn));
		} else {
			hexdump(buf, len);
		}
	}
	ii_close(ctx);
	return 0;
}

static int
cmd_readcap(int argc, char **argv)
{
	struct sub_opts o;
	struct iserd_url u;
	struct iserd_context *ctx;
	struct iserd_readcap16 rc16;
	int rc = sub_parse(argc, argv, "readcap [OPTIONS] URL",
			   "READ CAPACITY (16): size and block size of the LUN.\n\n", true, &o, &u);

	if (rc)
		return rc == 1 ? 0 : 2;
	ctx = ii_open(&o.co, &u, ISERD_SESSION_NORMAL);
	if (ctx == NULL)
		return 1;
	if (ii_readcap(ctx, u.lun, &rc16) < 0) {
		ii_close(ctx);
		return 1;
	}
	printf("Blocks:      %" PRIu64 "\n", rc16.num_blocks);
	printf("Block size:  %u\n", rc16.block_size);
	printf("Capacity:    %" PRIu64 " bytes (%.2f GiB)\n", rc16.num_blocks * rc16.block_size,
	       (double)(rc16.num_blocks * rc16.block_size) / (1 << 30));
	printf("Thin provisioning: %s%s\n", rc16.lbpme ? "yes" : "no",
	       rc16.lbprz ? " (unmapped blocks read zero)" : "");
	printf("Physical block exponent: %u\n", rc16.lbppbe);
	ii_close(ctx);
	return 0;
}

static int
cmd_report_luns(int argc, char **argv)
{
	struct sub_opts o;
	struct iserd_url u;
	struct iserd_context *ctx;
	struct iserd_task t;
	uint8_t buf[16384];
	uint64_t luns[2040];
	char msg[600];
	int n, i;
	int rc = sub_parse(argc, argv, "report-luns [OPTIONS] iscsi://host[:port]/target-iqn[/lun]",
			   "REPORT LUNS: the LUNs of the target.\n\n", false, &o, &u);

	if (rc)
		return rc == 1 ? 0 : 2;
	if (u.target[0] == '\0') {
		ii_err("the URL names no target (iscsi://host[:port]/target-iqn)");
		return 2;
	}
	ctx = ii_open(&o.co, &u, ISERD_SESSION_NORMAL);
	if (ctx == NULL)
		return 1;
	iserd_task_report_luns(&t, 0, buf, sizeof(buf));
	rc = iserd_task_sync(ctx, &t);
	if (rc < 0) {
		ii_task_error(ctx, rc, "REPORT LUNS", msg, sizeof(msg));
		ii_err("%s", msg);
		ii_close(ctx);
		return 1;
	}
	n = iserd_parse_report_luns(buf, sizeof(buf), luns, 2040);
	if (n < 0) {
		ii_err("malformed REPORT LUNS data");
		ii_close(ctx);
		return 1;
	}
	printf("%d LUN%s\n", n, n == 1 ? "" : "s");
	for (i = 0; i < n && i < 2040; i++)
		printf("  %" PRIu64 "\n", luns[i]);
	ii_close(ctx);
	return 0;
}

/* ---- read, write, verify ---- */

static int
do_rw(struct iserd_context *ctx, uint64_t lun, bool write, uint64_t lba, uint32_t nblocks,
      uint32_t bsz, void *buf)
{
	struct iserd_task t;
	char msg[700], what[80];
	int rc;

	if (write)
		rc = iserd_task_write16(&t, lun, lba, nblocks, bsz, buf, false);
	else
		rc = iserd_task_read16(&t, lun, lba, nblocks, bsz, buf);
	if (rc == 0)
		rc = iserd_task_sync(ctx, &t);
	if (rc < 0) {
		snprintf(what, sizeof(what), "%s (16) of %u blocks at LBA %" PRIu64,
			 write ? "WRITE" : "READ", nblocks, lba);
		ii_task_error(ctx, rc, what, msg, sizeof(msg));
		ii_err("%s", msg);
		return -1;
	}
	return 0;
}

static int
full_write(int fd, const uint8_t *b, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, b, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static ssize_t
full_read(int fd, uint8_t *b, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, b + got, n - got);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

static int
cmd_read(int argc, char **argv)
{
	struct sub_opts o;
	struct iserd_url u;
	struct iserd_context *ctx;
	struct iserd_readcap16 rc16;
	uint64_t cap, end, off;
	uint8_t *buf = NULL;
	int fd = STDOUT_FILENO, ret = 1;
	int rc =
	    sub_parse(argc, argv, "read [OPTIONS] [-o FILE] [--offset N] [--length N] URL",
		      "Reads the LUN (or a range) to FILE or standard output.\n\n"
		      "  -o, --output FILE        write here instead of stdout\n"
		      "      --offset N           start at byte N (a multiple of the block size)\n"
		      "      --length N           read N bytes (default: to the end)\n"
		      "      --bs N               transfer size per command (default 1M)\n",
		      true, &o, &u);

	if (rc)
		return rc == 1 ? 0 : 2;
	ctx = ii_open(&o.co, &u, ISERD_SESSION_NORMAL);
	if (ctx == NULL)
		return 1;
	if (ii_readcap(ctx, u.lun, &rc16) < 0)
		goto out;
	cap = rc16.num_blocks * rc16.block_size;
	if (o.offset % rc16.block_size || (o.has_length && o.length % rc16.block_size) ||
	    o.bs % rc16.block_size || o.bs == 0 || o.bs > (64u << 20)) {
		ii_err("--offset, --length and --bs must be multiples of the block size (%u)",
		       rc16.block_size);
		ret = 2;
		goto out;
	}
	end = o.has_length ? o.offset + o.length : cap;
	if (o.offset > cap || end > cap) {
		ii_err("range [%" PRIu64 ", %" PRIu64 ") is beyond the end of the LUN (%" PRIu64
		       " bytes)",
		       o.offset, end, cap);
		goto out;
	}
	if (o.file != NULL && strcmp(o.file, "-") != 0) {
		fd = open(o.file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			ii_err("cannot open %s: %s", o.file, strerror(errno));
			goto out;
		}
	}
	buf = malloc(o.bs);
	if (buf == NULL) {
		ii_err("out of memory");
		goto out;
	}
	for (off = o.offset; off < end;) {
		uint64_t n = end - off < o.bs ? end - off : o.bs;

		if (do_rw(ctx, u.lun, false, off / rc16.block_size, (uint32_t)(n / rc16.block_size),
			  rc16.block_size, buf) < 0)
			goto out;
		rc = full_write(fd, buf, n);
		if (rc < 0) {
			ii_err("write to %s failed: %s", o.file ? o.file : "stdout", strerror(-rc));
			goto out;
		}
		off += n;
	}
	ret = 0;
out:
	if (fd != STDOUT_FILENO && fd >= 0 && close(fd) < 0 && ret == 0) {
		ii_err("closing %s: %s", o.file, strerror(errno));
		ret = 1;
	}
	free(buf);
	ii_close(ctx);
	return ret;
}

static int
cmd_write(int argc, char **argv)
{
	struct sub_opts o;
	struct iserd_url u;
	struct iserd_context *ctx;
	struct iserd_readcap16 rc16;
	uint64_t cap, off, written = 0;
	uint8_t *buf = NULL;
	int fd = STDIN_FILENO, ret = 1;
	int rc =
	    sub_parse(argc, argv, "write [OPTIONS] [-f FILE] [--offset N] URL",
		      "Writes FILE (or standard input) to the LUN at --offset. A last partial\n"
		      "block is padded with zeros.\n\n"
		      "  -f, --file FILE          read from here instead of stdin\n"
		      "      --offset N           start at byte N (a multiple of the block size)\n"
		      "      --bs N               transfer size per command (default 1M)\n",
		      true, &o, &u);

	if (rc)
		return rc == 1 ? 0 : 2;
	if (o.file != NULL && strcmp(o.file, "-") != 0) {
		fd = open(o.file, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			ii_err("cannot open %s: %s", o.file, strerror(errno));
			return 1;
		}
	}
	ctx = ii_open(&o.co, &u, ISERD_SESSION_NORMAL);
	if (ctx == NULL)
		goto out;
	if (ii_readcap(ctx, u.lun, &rc16) < 0)
		goto out;
	cap = rc16.num_blocks * rc16.block_size;
	if (o.offset % rc16.block_size || o.bs % rc16.block_size || o.bs == 0 ||
	    o.bs > (64u << 20)) {
		ii_err("--offset and --bs must be multiples of the block size (%u)",
		       rc16.block_size);
		ret = 2;
		goto out;
	}
	buf = malloc(o.bs);
	if (buf == NULL) {
		ii_err("out of memory");
		goto out;
	}
	for (off = o.offset;;) {
		ssize_t n = full_read(fd, buf, o.bs);
		uint64_t padded;

		if (n < 0) {
			ii_err("read from %s failed: %s", o.file ? o.file : "stdin",
			       strerror((int)-n));
			goto out;
		}
		if (n == 0)
			break;
		padded = ((uint64_t)n + rc16.block_size - 1) / rc16.block_size * rc16.block_size;
		memset(buf + n, 0, padded - (uint64_t)n);
		if (off + padded > cap) {
			ii_err("input does not fit: the LUN ends at byte %" PRIu64, cap);
			goto out;
		}
		if (do_rw(ctx, u.lun, true, off / rc16.block_size,
			  (uint32_t)(padded / rc16.block_size), rc16.block_size, buf) < 0)
			goto out;
		off += padded;
		written += (uint64_t)n;
		if ((uint64_t)n < padded)
			break;
	}
	if (o.co.verbose)
		fprintf(stderr, "iserinit: wrote %" PRIu64 " bytes\n", written);
	ret = 0;
out:
	if (fd != STDIN_FILENO)
		close(fd);
	free(buf);
	ii_close(ctx);
	return ret;
}

static void
fill_pattern(uint8_t *b, uint64_t byte_off, size_t n, uint64_t seed)
{
	size_t i;

	/* 8-byte words of (offset ^ seed) mixed: every word of the LUN is distinct. */
	for (i = 0; i + 8 <= n; i += 8) {
		uint64_t v = (byte_off + i) ^ seed;

		v ^= v >> 33;
		v *= 0xff51afd7ed558ccdull;
		v ^= v >> 33;
		memcpy(b + i, &v, 8);
	}
}

static int
cmd_verify(int argc, char **argv)
{
	struct sub_opts o;
	struct iserd_url u;
	struct iserd_context *ctx;
	struct iserd_readcap16 rc16;
	uint64_t cap, off, end, seed;
	uint8_t *wbuf = NULL, *rbuf = NULL;
	int ret = 1;
	int rc =
	    sub_parse(argc, argv, "verify [OPTIONS] --size N [--offset N] URL",
		      "Writes a pattern over N bytes, reads it back and compares.\n"
		      "Exit status 0 only when every byte matches.\n\n"
		      "      --size N             bytes to test (required)\n"
		      "      --offset N           start at byte N (a multiple of the block size)\n"
		      "      --bs N               transfer size per command (default 1M)\n",
		      true, &o, &u);

	if (rc)
		return rc == 1 ? 0 : 2;
	if (!o.has_size || o.size == 0) {
		ii_err("--size N is required");
		return 2;
	}
	ctx = ii_open(&o.co, &u, ISERD_SESSION_NORMAL);
	if (ctx == NULL)
		return 1;
	if (ii_readcap(ctx, u.lun, &rc16) < 0)
		goto out;
	cap = rc16.num_blocks * rc16.block_size;
	if (o.offset % rc16.block_size || o.size % rc16.block_size || o.bs % rc16.block_size ||
	    o.bs == 0 || o.bs > (64u << 20)) {
		ii_err("--offset, --size and --bs must be multiples of the block size (%u)",
		       rc16.block_size);
		ret = 2;
		goto out;
	}
	end = o.offset + o.size;
	if (end > cap) {
		ii_err("--offset + --size (%" PRIu64 ") is beyond the end of the LUN (%" PRIu64
		       " bytes)",
		       end, cap);
		goto out;
	}
	wbuf = malloc(o.bs);
	rbuf = malloc(o.bs);
	if (wbuf == NULL || rbuf == NULL) {
		ii_err("out of memory");
		goto out;
	}
	seed = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull ^ (uint64_t)time(NULL);
	for (off = o.offset; off < end; off += o.bs) {
		uint64_t n = end - off < o.bs ? end - off : o.bs;

		fill_pattern(wbuf, off, n, seed);
		if (do_rw(ctx, u.lun, true, off / rc16.block_size, (uint32_t)(n / rc16.block_size),
			  rc16.block_size, wbuf) < 0)
			goto out;
	}
	for (off = o.offset; off < end; off += o.bs) {
		uint64_t n = end - off < o.bs ? end - off : o.bs;

		memset(rbuf, 0xa5, n);
		if (do_rw(ctx, u.lun, false, off / rc16.block_size, (uint32_t)(n / rc16.block_size),
			  rc16.block_size, rbuf) < 0)
			goto out;
		fill_pattern(wbuf, off, n, seed);
		if (memcmp(wbuf, rbuf, n) != 0) {
			uint64_t i;

			for (i = 0; i < n && wbuf[i] == rbuf[i]; i++)
				;
			ii_err("MISMATCH at byte %" PRIu64 " (LBA %" PRIu64
			       "): wrote 0x%02x, read 0x%02x",
			       off + i, (off + i) / rc16.block_size, wbuf[i], rbuf[i]);
			goto out;
		}
	}
	printf("verify: %" PRIu64 " bytes at offset %" PRIu64 " written and read back: OK\n",
	       o.size, o.offset);
	ret = 0;
out:
	free(wbuf);
	free(rbuf);
	ii_close(ctx);
	return ret;
}

/* ---- main ---- */

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *what;
} g_cmds[] = {
    {"discover", cmd_discover, "list the targets of a portal (SendTargets)"},
    {"login", cmd_login, "log in, print the negotiated keys, log out"},
    {"inquiry", cmd_inquiry, "INQUIRY data or a VPD page"},
    {"readcap", cmd_readcap, "READ CAPACITY (16)"},
    {"report-luns", cmd_report_luns, "REPORT LUNS"},
    {"read", cmd_read, "read the LUN to a file or stdout"},
    {"write", cmd_write, "write a file or stdin to the LUN"},
    {"verify", cmd_verify, "write a pattern, read it back, compare"},
    {"bench", ii_cmd_bench, "measure IOPS, throughput and latency"},
};

static void
usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: iserinit [OPTIONS] SUBCOMMAND [OPTIONS] URL [OPTIONS]\n\n"
		   "Options may come before or after the URL; the common ones (-i, --chap,\n"
		   "--timeout, ...) also before the subcommand. \"--\" ends them.\n"
		   "Defaults from the environment: LIBISCSI_CHAP_USERNAME/_PASSWORD and\n"
		   "LIBISCSI_CHAP_TARGET_USERNAME/_PASSWORD (CHAP, mutual CHAP), the\n"
		   "InitiatorName= of /etc/iscsi/initiatorname.iscsi; options win.\n\n"
		   "URL: iscsi://[user[%%password]@]host[:port]/target-iqn/lun\n"
		   "     iser://host[:port]/target-iqn/lun: the same over iSER (RDMA)\n\n"
		   "Subcommands:\n");
	for (i = 0; i < sizeof(g_cmds) / sizeof(g_cmds[0]); i++)
		fprintf(f, "  %-12s %s\n", g_cmds[i].name, g_cmds[i].what);
	fprintf(f, "\n'iserinit SUBCOMMAND --help' describes each one. See iserinit(1).\n");
}

int
main(int argc, char **argv)
{
	/* the common options may come before the subcommand too */
	static const struct option lo[] = {
	    COMMON_LONGOPTS,
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct ii_common probe;
	char **sub;
	int opt, lead, n, rc;
	size_t k;

	/* "+": stop at the subcommand; what follows it is the subcommand's to parse */
	ii_common_init(&probe);
	opterr = 1;
	while ((opt = getopt_long(argc, argv, "+i:vhV", lo, NULL)) != -1) {
		switch (opt) {
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("iserinit %s\n", iserd_version());
			return 0;
		case '?':
			usage(stderr);
			return 2;
		default:
			/* checked here so that a bad value is refused before the subcommand */
			if (ii_common_opt(&probe, opt, optarg) < 0)
				return 2;
			break;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	for (k = 0; k < sizeof(g_cmds) / sizeof(g_cmds[0]); k++)
		if (strcmp(argv[optind], g_cmds[k].name) == 0)
			break;
	if (k == sizeof(g_cmds) / sizeof(g_cmds[0])) {
		fprintf(stderr, "iserinit: unknown subcommand '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	ii_cmd = g_cmds[k].name;
	/*
	 * The subcommand sees "SUBCOMMAND [leading options] [the rest]": the
	 * options before it are parsed with those after it, in order (a later
	 * one wins), and positional arguments may come anywhere among them.
	 */
	lead = optind - 1;
	n = argc - 1;
	sub = calloc((size_t)n + 1, sizeof(*sub));
	if (sub == NULL) {
		ii_err("out of memory");
		return 1;
	}
	sub[0] = argv[optind];
	memcpy(sub + 1, argv + 1, (size_t)lead * sizeof(*sub));
	memcpy(sub + 1 + lead, argv + optind + 1, (size_t)(argc - optind - 1) * sizeof(*sub));
	sub[n] = NULL;
	optind = 0; /* GNU getopt: 0 starts a new scan, permutation state included */
	rc = g_cmds[k].fn(n, sub);
	free(sub);
	return rc;
}
