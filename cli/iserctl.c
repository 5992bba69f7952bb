/*
 * iserctl: the control command line of a running iserd.
 *
 *   iserctl [--socket PATH] [--json] COMMAND [ARGS] [OPTIONS]
 *
 * Each command is one JSON-RPC 2.0 request on iserd's control socket
 * (src/ctl/control.h, docs/control.md); the answer is printed as a table,
 * or as JSON with --json. Options may come before or after the arguments.
 * Exit status: 0 done, 1 iserd refused or failed the request, 2 usage error,
 * 3 iserd could not be reached.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "server/target.h"

#define EX_OK 0
#define EX_FAILED 1
#define EX_USAGE 2
#define EX_UNREACHABLE 3

#define MAX_LIST 256

static struct {
	const char *socket;
	bool json;
	bool force;
	bool prometheus;
	bool read_only;
	bool clear;                     /* --clear: turn CHAP off */
	const char *alias;
	long tpgt;
	const char *reactors;
	long block_size;
	const char *level;
	const char *debug;
	const char *chap;
	const char *mutual_chap;
	const char *luns[MAX_LIST];
	int nluns;
	const char *allow[MAX_LIST];
	int nallow;
	const char *portals[MAX_LIST];
	int nportals;
	int timeout_s;
} o = {.tpgt = -1, .block_size = -1, .timeout_s = 30};

static const char usage_text[] =
    "Usage: iserctl [--socket PATH] [--json] COMMAND [ARGS] [OPTIONS]\n"
    "\n"
    "Asks a running iserd over its control socket (default " ISD_TARGET_DEFAULT_CONTROL_SOCKET
    ",\n"
    "or $ISERCTL_SOCKET). Options may come before or after the arguments.\n"
    "\n"
    "Commands:\n"
    "  status                              version, uptime, sessions, connections\n"
    "  target list\n"
    "  target show TARGET                  LUNs, ACL, sessions, I/O of one target\n"
    "  target add TARGET [--alias A] [--tpgt N] [--lun SPEC]... [--allow IQN]...\n"
    "                    [--portal URL]... [--chap U:S] [--mutual-chap U:S]\n"
    "  target remove TARGET [--force]      --force logs its sessions out first\n"
    "  target chap TARGET [--chap U:S] [--mutual-chap U:S] | --clear\n"
    "  target bind TARGET [URL...]         no URL: every portal\n"
    "  lun list TARGET\n"
    "  lun show TARGET LUN\n"
    "  lun add TARGET LUN SPEC [--read-only] [--block-size 512|4096]\n"
    "  lun remove TARGET LUN\n"
    "  lun resize TARGET LUN SIZE          SIZE in bytes or with K/M/G/T/P\n"
    "  lun read-only TARGET LUN on|off\n"
    "  lun alua TARGET LUN STATE           ALUA state on this gateway: active/optimized,\n"
    "                                      active/non-optimized, standby, unavailable,\n"
    "                                      transitioning\n"
    "  lun takeover TARGET LUN             take an rbd: LUN's lock (lock=exclusive),\n"
    "                                      fencing the gateway that holds it\n"
    "  portal list\n"
    "  portal add URL [--tpgt N] [--reactors LIST]\n"
    "                                      tcp://ADDR[:PORT], iser://ADDR[:PORT]; LIST\n"
    "                                      (0,2-3): the reactors its connections go to\n"
    "  portal remove URL\n"
    "  acl list TARGET\n"
    "  acl add TARGET IQN [--chap U:S] [--mutual-chap U:S]\n"
    "  acl remove TARGET IQN\n"
    "  acl chap TARGET IQN [--chap U:S] [--mutual-chap U:S] | --clear\n"
    "  discovery chap [--chap U:S] [--mutual-chap U:S] | --clear\n"
    "  session list [TARGET]\n"
    "  session logout TSIH\n"
    "  connection drop TSIH CID\n"
    "  stats [TARGET] [--prometheus]       --prometheus: text for node_exporter\n"
    "  log [--level error|warn|info|debug] [--debug COMPONENTS]\n"
    "  config save [PATH]                  default: the file iserd was started with\n"
    "  config reload                       re-read the configuration (as SIGHUP)\n"
    "  call METHOD [PARAMS-JSON]           any method (iserctl call help lists them)\n"
    "\n"
    "U:S is USER:SECRET, USER:@FILE (the secret is the file's content) or\n"
    "USER:env:VAR. Secrets given literally are overwritten in the process's\n"
    "command line as soon as they are read.\n"
    "\n"
    "Options:\n"
    "  -s, --socket PATH   control socket\n"
    "  -j, --json          print iserd's answer as JSON\n"
    "  -t, --timeout SECS  wait at most this long for an answer (default 30)\n"
    "  -h, --help          this text\n"
    "  -V, --version       iserctl's version\n";

static void __attribute__((format(printf, 1, 2)))
errx_(const char *fmt, ...)
{
	va_list ap;

	fputs("iserctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int
usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("iserctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'iserctl --help'.\n", stderr);
	return EX_USAGE;
}

/* ---- talking to iserd ---- */

static int
connect_socket(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		errx_("%s: path too long", path);
		return -1;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		errx_("cannot reach iserd at %s: %s%s", path, strerror(e),
		      e == ENOENT ? " (is iserd running? --socket names another socket)"
		      : e == EACCES ? " (the socket is for root only unless control_mode says "
				      "otherwise)"
				    : "");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Sends {"jsonrpc":"2.0","method":method,"params":params,"id":1} and waits for
 * the answer line. Returns the answer (owned by the caller) or NULL (error
 * printed, *ex set).
 */
static struct json_object *
rpc_call(const char *method, struct json_object *params, int *ex)
{
	struct json_object *req = json_object_new_object(), *ans = NULL;
	struct json_tokener *tok = json_tokener_new();
	const char *text;
	char buf[65536];
	int fd, rc;

	*ex = EX_UNREACHABLE;
	json_object_object_add(req, "jsonrpc", json_object_new_string("2.0"));
	json_object_object_add(req, "method", json_object_new_string(method));
	if (params != NULL)
		json_object_object_add(req, "params", params);
	json_object_object_add(req, "id", json_object_new_int(1));
	fd = connect_socket(o.socket);
	if (fd < 0)
		goto out;
	text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	rc = write_all(fd, text, strlen(text));
	if (rc == 0)
		rc = write_all(fd, "\n", 1);
	/* the request held secrets perhaps: gone from our memory as soon as sent */
	explicit_bzero((char *)text, strlen(text));
	if (rc < 0) {
		errx_("sending to iserd: %s", strerror(-rc));
		goto out;
	}
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t n;

		rc = poll(&pfd, 1, o.timeout_s * 1000);
		if (rc == 0) {
			errx_("no answer from iserd within %d s", o.timeout_s);
			goto out;
		}
		if (rc < 0 && errno == EINTR)
			continue;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			errx_("iserd closed the connection without an answer");
			goto out;
		}
		ans = json_tokener_parse_ex(tok, buf, (int)n);
		if (ans != NULL)
			break;
		if (json_tokener_get_error(tok) != json_tokener_continue) {
			errx_("iserd's answer is not JSON");
			goto out;
		}
	}
	*ex = EX_OK;
out:
	if (fd >= 0)
		close(fd);
	json_tokener_free(tok);
	json_object_put(req);
	return ans;
}

/* The result of a successful answer, or NULL with the error printed (*ex = 1). */
static struct json_object *
result_of(struct json_object *ans, int *ex)
{
	struct json_object *r, *e, *m, *d, *en;

	if (json_object_object_get_ex(ans, "result", &r)) {
		*ex = EX_OK;
		return r;
	}
	*ex = EX_FAILED;
	if (json_object_object_get_ex(ans, "error", &e) && json_object_object_get_ex(e, "message", &m)) {
		const char *why = "";

		if (json_object_object_get_ex(e, "data", &d) &&
		    json_object_object_get_ex(d, "errno", &en))
			why = json_object_get_string(en);
		errx_("%s%s%s%s", json_object_get_string(m), why[0] ? " (" : "", why,
		      why[0] ? ")" : "");
	} else {
		errx_("iserd's answer has neither result nor error");
	}
	return NULL;
}

/* ---- printing ---- */

static const char *
jstr(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (obj == NULL || !json_object_object_get_ex(obj, key, &v) || v == NULL)
		return "";
	return json_object_get_string(v);
}

static int64_t
jint(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (obj == NULL || !json_object_object_get_ex(obj, key, &v) || v == NULL)
		return 0;
	return json_object_get_int64(v);
}

static struct json_object *
jobj(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (obj == NULL || !json_object_object_get_ex(obj, key, &v))
		return NULL;
	return v;
}

static void
human(uint64_t v, char *buf, size_t len)
{
	static const char *const u[] = {"B", "K", "M", "G", "T", "P"};
	int i = 0;
	double d = (double)v;

	while (d >= 1024.0 && i < 5) {
		d /= 1024.0;
		i++;
	}
	if (i == 0)
		snprintf(buf, len, "%" PRIu64 "B", v);
	else
		snprintf(buf, len, "%.*f%s", d == (double)(uint64_t)d ? 0 : 1, d, u[i]);
}

static void
age(int64_t ms, char *buf, size_t len)
{
	int64_t s = ms / 1000;

	if (s < 120)
		snprintf(buf, len, "%" PRId64 "s", s);
	else if (s < 7200)
		snprintf(buf, len, "%" PRId64 "m", s / 60);
	else if (s < 172800)
		snprintf(buf, len, "%" PRId64 "h", s / 3600);
	else
		snprintf(buf, len, "%" PRId64 "d", s / 86400);
}

static void
io_cols(struct json_object *io, char *buf, size_t len)
{
	struct json_object *r = jobj(io, "read"), *w = jobj(io, "write"), *ot = jobj(io, "other"),
			   *lat = jobj(io, "latency_us"), *errs = jobj(io, "errors");
	char rb[16], wb[16];
	int64_t nerr = 0;

	if (errs != NULL) {
		json_object_object_foreach(errs, k, v) {
			(void)k;
			nerr += json_object_get_int64(v);
		}
	}
	human((uint64_t)jint(r, "bytes"), rb, sizeof(rb));
	human((uint64_t)jint(w, "bytes"), wb, sizeof(wb));
	snprintf(buf, len, "%10" PRId64 " %8s %10" PRId64 " %8s %8" PRId64 " %6" PRId64 " %5" PRId64
		 " %8" PRId64 " %8" PRId64,
		 jint(r, "commands"), rb, jint(w, "commands"), wb, jint(ot, "commands"), nerr,
		 jint(io, "in_flight"), jint(lat, "p50"), jint(lat, "p99"));
}

#define IO_HDR "     READS    RBYTES     WRITES   WBYTES    OTHER ERRORS  INFL  P50(us)  P99(us)"

static void
print_sessions(struct json_object *arr)
{
	size_t n = json_object_array_length(arr);

	if (n == 0) {
		puts("no sessions");
		return;
	}
	printf("%-6s %-9s %-5s %-21s %-6s %-5s %s\n", "TSIH", "TYPE", "XPORT", "PEER", "AGE",
	       "INFL", "INITIATOR -> TARGET");
	for (size_t i = 0; i < n; i++) {
		struct json_object *s = json_object_array_get_idx(arr, i);
		char peer[96], a[24];

		snprintf(peer, sizeof(peer), "%s:%" PRId64, jstr(s, "peer_address"),
			 jint(s, "peer_port"));
		age(jint(s, "age_ms"), a, sizeof(a));
		printf("%-6" PRId64 " %-9s %-5s %-21s %-6s %-5" PRId64 " %s -> %s\n", jint(s, "tsih"),
		       jstr(s, "type"), jstr(s, "transport"), peer, a, jint(s, "in_flight"),
		       jstr(s, "initiator"), jstr(s, "target")[0] ? jstr(s, "target") : "(discovery)");
	}
}

static void
print_luns(struct json_object *arr)
{
	size_t n = json_object_array_length(arr);

	if (n == 0) {
		puts("no LUNs");
		return;
	}
	printf("%-5s %-32s %8s %5s %-3s %s\n", "LUN", "BACKING", "SIZE", "BLOCK", "RO", "SERIAL");
	for (size_t i = 0; i < n; i++) {
		struct json_object *l = json_object_array_get_idx(arr, i);
		char sz[16];

		human((uint64_t)jint(l, "size"), sz, sizeof(sz));
		printf("%-5" PRId64 " %-32s %8s %5" PRId64 " %-3s %s\n", jint(l, "lun"),
		       jstr(l, "backing"), sz, jint(l, "block_size"),
		       json_object_get_boolean(jobj(l, "read_only")) ? "yes" : "no",
		       jstr(l, "serial"));
	}
}

static void
print_acl(struct json_object *arr)
{
	size_t n = json_object_array_length(arr);

	if (n == 0) {
		puts("no ACL: every initiator may log in");
		return;
	}
	printf("%-60s %-16s %s\n", "INITIATOR", "OWN CHAP USER", "OWN MUTUAL CHAP USER");
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(arr, i);

		printf("%-60s %-16s %s\n", jstr(e, "initiator"),
		       jstr(e, "chap_user")[0] ? jstr(e, "chap_user") : "-",
		       jstr(e, "mutual_chap_user")[0] ? jstr(e, "mutual_chap_user") : "-");
	}
}

static void
print_portal_binding(struct json_object *t)
{
	struct json_object *p = jobj(t, "portals");
	size_t n = p != NULL ? json_object_array_length(p) : 0;

	printf("portals:   ");
	if (n == 0)
		printf("every portal");
	for (size_t i = 0; i < n; i++)
		printf("%s%s", i ? ", " : "", json_object_get_string(json_object_array_get_idx(p, i)));
	putchar('\n');
}

static void
print_stats(struct json_object *r)
{
	struct json_object *p = jobj(r, "process"), *ts = jobj(r, "targets");
	char line[160];

	printf("sessions %" PRId64 ", connections %" PRId64 ", tasks %" PRId64
	       ", logins ok %" PRId64 " failed %" PRId64 ", bytes copied %" PRId64 "\n\n",
	       jint(p, "sessions"), jint(p, "connections"), jint(p, "tasks"), jint(p, "logins_ok"),
	       jint(p, "logins_failed"), jint(p, "bytes_copied"));
	{
		/* several reactors: where the connections are, how each waits */
		struct json_object *rs = jobj(p, "reactors");
		size_t n = rs != NULL ? json_object_array_length(rs) : 0;

		if (n > 0)
			printf("%-8s %11s %-8s %8s %14s %14s\n", "REACTOR", "CONNECTIONS", "MODE",
			       "POLL_US", "TURNS", "SLEEPS");
		for (size_t i = 0; i < n; i++) {
			struct json_object *e = json_object_array_get_idx(rs, i);

			printf("%-8" PRId64 " %11" PRId64 " %-8s %8" PRId64 " %14" PRId64
			       " %14" PRId64 "\n",
			       jint(e, "reactor"), jint(e, "connections"), jstr(e, "mode"),
			       jint(e, "poll_us"), jint(e, "turns"), jint(e, "sleeps"));
		}
		if (n > 0)
			putchar('\n');
	}
	printf("%-48s %s\n", "TARGET / LUN", IO_HDR);
	for (size_t i = 0; ts != NULL && i < json_object_array_length(ts); i++) {
		struct json_object *t = json_object_array_get_idx(ts, i), *ls = jobj(t, "luns");

		io_cols(jobj(t, "io"), line, sizeof(line));
		printf("%-48.48s %s\n", jstr(t, "name"), line);
		for (size_t j = 0; ls != NULL && j < json_object_array_length(ls); j++) {
			struct json_object *l = json_object_array_get_idx(ls, j);
			char nm[32];

			snprintf(nm, sizeof(nm), "  LUN %" PRId64, jint(l, "lun"));
			io_cols(jobj(l, "io"), line, sizeof(line));
			printf("%-48s %s\n", nm, line);
		}
	}
}

static int
print_result(const char *what, struct json_object *r)
{
	if (o.json || what == NULL) {
		puts(json_object_to_json_string_ext(r, JSON_C_TO_STRING_PRETTY |
							   JSON_C_TO_STRING_NOSLASHESCAPE));
		return EX_OK;
	}
	if (strcmp(what, "status") == 0) {
		printf("iserd %s, pid %" PRId64 ", up %" PRId64 " s%s%s\n", jstr(r, "version"),
		       jint(r, "pid"), jint(r, "uptime_s"), jstr(r, "config_file")[0] ? ", config " : "",
		       jstr(r, "config_file"));
	} else if (strcmp(what, "targets") == 0) {
		size_t n = json_object_array_length(r);

		if (n == 0)
			puts("no targets");
		else
			printf("%-56s %5s %4s %8s %s\n", "TARGET", "LUNS", "ACL", "SESSIONS", "CHAP");
		for (size_t i = 0; i < n; i++) {
			struct json_object *t = json_object_array_get_idx(r, i), *a = jobj(t, "auth");

			printf("%-56s %5" PRId64 " %4" PRId64 " %8" PRId64 " %s\n", jstr(t, "name"),
			       jint(t, "luns"), jint(t, "acl"), jint(t, "sessions"),
			       jstr(a, "mutual_chap_user")[0] ? "mutual"
			       : jstr(a, "chap_user")[0]      ? "one-way"
							      : "-");
		}
	} else if (strcmp(what, "target") == 0) {
		struct json_object *a = jobj(r, "auth");

		printf("target:    %s\n", jstr(r, "name"));
		if (jstr(r, "alias")[0])
			printf("alias:     %s\n", jstr(r, "alias"));
		printf("tpgt:      %" PRId64 "\n", jint(r, "tpgt"));
		printf("chap:      %s%s%s\n", jstr(a, "chap_user")[0] ? jstr(a, "chap_user") : "off",
		       jstr(a, "mutual_chap_user")[0] ? ", mutual as " : "",
		       jstr(a, "mutual_chap_user"));
		print_portal_binding(r);
		putchar('\n');
		print_luns(jobj(r, "luns"));
		putchar('\n');
		print_acl(jobj(r, "acl"));
		putchar('\n');
		print_sessions(jobj(r, "sessions"));
	} else if (strcmp(what, "luns") == 0) {
		print_luns(r);
	} else if (strcmp(what, "lun") == 0) {
		char sz[16];

		human((uint64_t)jint(r, "size"), sz, sizeof(sz));
		printf("LUN %" PRId64 ": %s (%s%s%s), %s, %" PRId64 "-byte blocks%s\nserial %s\n",
		       jint(r, "lun"), jstr(r, "backing"), jstr(r, "kind"),
		       jstr(r, "path")[0] ? " " : "", jstr(r, "path"), sz, jint(r, "block_size"),
		       json_object_get_boolean(jobj(r, "read_only")) ? ", read-only" : "",
		       jstr(r, "serial"));
		if (jstr(r, "naa")[0])
			printf("naa %s\n", jstr(r, "naa"));
		if (jstr(r, "alua_state")[0])
			printf("ALUA state %s\n", jstr(r, "alua_state"));
		if (jstr(r, "lock")[0])
			printf("cluster lock %s\n", jstr(r, "lock"));
	} else if (strcmp(what, "acl") == 0) {
		print_acl(r);
	} else if (strcmp(what, "portals") == 0) {
		size_t n = json_object_array_length(r);

		printf("%-40s %-9s %-5s %s\n", "PORTAL", "TRANSPORT", "TPGT", "REACTORS");
		for (size_t i = 0; i < n; i++) {
			struct json_object *p = json_object_array_get_idx(r, i);
			const char *rs = jstr(p, "reactors");

			printf("%-40s %-9s %-5" PRId64 " %s\n", jstr(p, "url"), jstr(p, "transport"),
			       jint(p, "tpgt"), rs[0] != '\0' ? rs : "all");
		}
	} else if (strcmp(what, "sessions") == 0) {
		print_sessions(r);
	} else if (strcmp(what, "stats") == 0) {
		print_stats(r);
	} else if (strcmp(what, "prometheus") == 0) {
		fputs(jstr(r, "text"), stdout);
	} else if (strcmp(what, "log") == 0) {
		printf("level %s%s%s\n", jstr(r, "level"), jstr(r, "debug")[0] ? ", debug " : "",
		       jstr(r, "debug"));
	} else if (strcmp(what, "reload") == 0) {
		printf("reloaded: targets +%" PRId64 " -%" PRId64 " changed %" PRId64
		       " untouched %" PRId64 "; LUNs +%" PRId64 " -%" PRId64 " changed %" PRId64
		       "; portals +%" PRId64 " -%" PRId64 "; ACL changes %" PRId64 "\n",
		       jint(r, "targets_added"), jint(r, "targets_removed"), jint(r, "targets_changed"),
		       jint(r, "targets_unchanged"), jint(r, "luns_added"), jint(r, "luns_removed"),
		       jint(r, "luns_changed"), jint(r, "portals_added"), jint(r, "portals_removed"),
		       jint(r, "acl_changed"));
	} else if (strcmp(what, "saved") == 0) {
		printf("saved to %s\n", jstr(r, "path"));
	} else if (strcmp(what, "removed") == 0) {
		int64_t n = jint(r, "sessions_logged_out");

		if (n > 0)
			printf("removed; %" PRId64 " session%s asked to log out\n", n,
			       n == 1 ? "" : "s");
	}
	/* other changes: silence is success */
	return EX_OK;
}

static int
call(const char *method, struct json_object *params, const char *what)
{
	struct json_object *ans, *r;
	int ex;

	ans = rpc_call(method, params, &ex);
	if (ans == NULL)
		return ex;
	r = result_of(ans, &ex);
	if (r != NULL)
		ex = print_result(what, r);
	json_object_put(ans);
	return ex;
}

/* ---- building requests ---- */

static struct json_object *
params_new(void)
{
	return json_object_new_object();
}

static void
p_add_str(struct json_object *p, const char *k, const char *v)
{
	json_object_object_add(p, k, json_object_new_string(v));
}

static int
p_add_uint(struct json_object *p, const char *k, const char *v)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(v, &end, 0);
	if (errno != 0 || end == v || *end != '\0' || v[0] == '-')
		return -EINVAL;
	json_object_object_add(p, k, json_object_new_int64((int64_t)n));
	return 0;
}

/*
 * "USER:SECRET", "USER:@FILE", "USER:env:VAR" into {"user", "secret"}, the
 * same forms iserd's --chap takes (one parser: server/target.h). Then the
 * secret in argv is overwritten.
 */
static int
p_add_cred(struct json_object *p, const char *k, const char *arg)
{
	struct isd_chap_cred c;
	struct json_object *cred;
	char why[256] = "";
	char *sec;

	memset(&c, 0, sizeof(c));
	if (isd_target_chap_parse(NULL, arg, &c, why, sizeof(why)) < 0) {
		usage_error("--%s: %s", strcmp(k, "chap") == 0 ? "chap" : "mutual-chap", why);
		return -EINVAL;
	}
	cred = json_object_new_object();
	p_add_str(cred, "user", c.user);
	p_add_str(cred, "secret", c.secret);
	json_object_object_add(p, k, cred);
	explicit_bzero(&c, sizeof(c));
	sec = strchr(arg, ':');
	if (sec != NULL && sec[1] != '@' && strncmp(sec + 1, "env:", 4) != 0)
		memset(sec + 1, 'x', strlen(sec + 1));
	return 0;
}

static int add_auth(struct json_object *p);

/* For commands that set credentials: at least one given, or --clear. */
static int
set_auth(struct json_object *p)
{
	if (o.chap == NULL && o.mutual_chap == NULL && !o.clear)
		return usage_error("give --chap and/or --mutual-chap, or --clear to turn CHAP off");
	if (o.clear && (o.chap != NULL || o.mutual_chap != NULL))
		return usage_error("--clear and --chap/--mutual-chap exclude each other");
	return add_auth(p) < 0 ? EX_USAGE : 0;
}

static int
add_auth(struct json_object *p)
{
	if (o.chap != NULL && p_add_cred(p, "chap", o.chap) < 0)
		return -EINVAL;
	if (o.mutual_chap != NULL && p_add_cred(p, "mutual_chap", o.mutual_chap) < 0)
		return -EINVAL;
	return 0;
}

static int
need(int argc, int lo, int hi, const char *form)
{
	if (argc < lo || argc > hi) {
		usage_error("usage: iserctl %s", form);
		return -1;
	}
	return 0;
}

static int
cmd_target(int argc, char **argv)
{
	struct json_object *p = params_new();
	const char *sub = argc > 1 ? argv[1] : "list";

	if (strcmp(sub, "list") == 0) {
		json_object_put(p);
		return need(argc, 1, 2, "target list") ? EX_USAGE : call("target.list", NULL, "targets");
	}
	if (argc < 3) {
		json_object_put(p);
		return usage_error("usage: iserctl target %s TARGET ...", sub);
	}
	p_add_str(p, "target", argv[2]);
	if (strcmp(sub, "show") == 0 && need(argc, 3, 3, "target show TARGET") == 0)
		return call("target.show", p, "target");
	if (strcmp(sub, "add") == 0 && need(argc, 3, 3, "target add TARGET [OPTIONS]") == 0) {
		if (o.alias != NULL)
			p_add_str(p, "alias", o.alias);
		if (o.tpgt >= 0)
			json_object_object_add(p, "tpgt", json_object_new_int64(o.tpgt));
		if (o.nluns > 0) {
			struct json_object *a = json_object_new_array();

			for (int i = 0; i < o.nluns; i++) {
				struct json_object *l = json_object_new_object();

				json_object_object_add(l, "lun", json_object_new_int(i));
				p_add_str(l, "backing", o.luns[i]);
				json_object_array_add(a, l);
			}
			json_object_object_add(p, "luns", a);
		}
		if (o.nallow > 0) {
			struct json_object *a = json_object_new_array();

			for (int i = 0; i < o.nallow; i++)
				json_object_array_add(a, json_object_new_string(o.allow[i]));
			json_object_object_add(p, "acl", a);
		}
		if (o.nportals > 0) {
			struct json_object *a = json_object_new_array();

			for (int i = 0; i < o.nportals; i++)
				json_object_array_add(a, json_object_new_string(o.portals[i]));
			json_object_object_add(p, "portals", a);
		}
		if (add_auth(p) < 0) {
			json_object_put(p);
			return EX_USAGE;
		}
		return call("target.add", p, NULL);
	}
	if (strcmp(sub, "remove") == 0 && need(argc, 3, 3, "target remove TARGET [--force]") == 0) {
		if (o.force)
			json_object_object_add(p, "force", json_object_new_boolean(true));
		return call("target.remove", p, "removed");
	}
	if (strcmp(sub, "chap") == 0 &&
	    need(argc, 3, 3, "target chap TARGET [--chap U:S] [--mutual-chap U:S] | --clear") == 0) {
		if (set_auth(p) != 0) {
			json_object_put(p);
			return EX_USAGE;
		}
		return call("target.set_auth", p, "");
	}
	if (strcmp(sub, "bind") == 0) {
		struct json_object *a = json_object_new_array();

		for (int i = 3; i < argc; i++)
			json_object_array_add(a, json_object_new_string(argv[i]));
		json_object_object_add(p, "portals", a);
		return call("target.bind", p, "");
	}
	json_object_put(p);
	if (strcmp(sub, "show") && strcmp(sub, "add") && strcmp(sub, "remove") && strcmp(sub, "chap"))
		return usage_error("no command 'target %s'", sub);
	return EX_USAGE;
}

static int
cmd_lun(int argc, char **argv)
{
	struct json_object *p;
	const char *sub = argc > 1 ? argv[1] : "";

	if (argc < 3)
		return usage_error(
		    "usage: iserctl lun list|show|add|remove|resize|read-only|alua|takeover TARGET ...");
	p = params_new();
	p_add_str(p, "target", argv[2]);
	if (strcmp(sub, "list") == 0 && need(argc, 3, 3, "lun list TARGET") == 0)
		return call("lun.list", p, "luns");
	if (argc >= 4 && p_add_uint(p, "lun", argv[3]) < 0) {
		json_object_put(p);
		return usage_error("'%s' is not a LUN number", argv[3]);
	}
	if (strcmp(sub, "show") == 0 && need(argc, 4, 4, "lun show TARGET LUN") == 0)
		return call("lun.show", p, "lun");
	if (strcmp(sub, "remove") == 0 && need(argc, 4, 4, "lun remove TARGET LUN") == 0)
		return call("lun.remove", p, "");
	if (strcmp(sub, "add") == 0 &&
	    need(argc, 5, 5, "lun add TARGET LUN SPEC [--read-only] [--block-size N]") == 0) {
		p_add_str(p, "backing", argv[4]);
		if (o.read_only)
			json_object_object_add(p, "read_only", json_object_new_boolean(true));
		if (o.block_size >= 0)
			json_object_object_add(p, "block_size", json_object_new_int64(o.block_size));
		return call("lun.add", p, "");
	}
	if (strcmp(sub, "resize") == 0 && need(argc, 5, 5, "lun resize TARGET LUN SIZE") == 0) {
		if (argv[4][0] >= '0' && argv[4][0] <= '9' &&
		    argv[4][strspn(argv[4], "0123456789")] == '\0')
			p_add_uint(p, "size", argv[4]);
		else
			p_add_str(p, "size", argv[4]);
		return call("lun.resize", p, "");
	}
	if (strcmp(sub, "read-only") == 0 && need(argc, 5, 5, "lun read-only TARGET LUN on|off") == 0) {
		bool on = strcmp(argv[4], "on") == 0 || strcmp(argv[4], "yes") == 0 ||
			  strcmp(argv[4], "true") == 0;
		bool off = strcmp(argv[4], "off") == 0 || strcmp(argv[4], "no") == 0 ||
			   strcmp(argv[4], "false") == 0;

		if (!on && !off) {
			json_object_put(p);
			return usage_error("read-only takes on or off");
		}
		json_object_object_add(p, "read_only", json_object_new_boolean(on));
		return call("lun.set_read_only", p, "");
	}
	if (strcmp(sub, "alua") == 0 && need(argc, 5, 5, "lun alua TARGET LUN STATE") == 0) {
		/* the daemon checks the name: one list of states, its own */
		p_add_str(p, "state", argv[4]);
		return call("lun.set_alua_state", p, "");
	}
	if (strcmp(sub, "takeover") == 0 && need(argc, 4, 4, "lun takeover TARGET LUN") == 0)
		return call("lun.takeover", p, "");
	json_object_put(p);
	if (strcmp(sub, "list") && strcmp(sub, "show") && strcmp(sub, "remove") &&
	    strcmp(sub, "add") && strcmp(sub, "resize") && strcmp(sub, "read-only") &&
	    strcmp(sub, "alua") && strcmp(sub, "takeover"))
		return usage_error("no command 'lun %s'", sub);
	return EX_USAGE;
}

static int
cmd_portal(int argc, char **argv)
{
	struct json_object *p;
	const char *sub = argc > 1 ? argv[1] : "list";

	if (strcmp(sub, "list") == 0)
		return need(argc, 1, 2, "portal list") ? EX_USAGE : call("portal.list", NULL, "portals");
	if (need(argc, 3, 3, "portal add|remove URL"))
		return EX_USAGE;
	p = params_new();
	p_add_str(p, "url", argv[2]);
	if (strcmp(sub, "add") == 0) {
		if (o.tpgt >= 0)
			json_object_object_add(p, "tpgt", json_object_new_int64(o.tpgt));
		if (o.reactors != NULL)
			p_add_str(p, "reactors", o.reactors);
		return call("portal.add", p, NULL);
	}
	if (strcmp(sub, "remove") == 0)
		return call("portal.remove", p, "");
	json_object_put(p);
	return usage_error("no command 'portal %s'", sub);
}

static int
cmd_acl(int argc, char **argv)
{
	struct json_object *p;
	const char *sub = argc > 1 ? argv[1] : "";

	if (argc < 3)
		return usage_error("usage: iserctl acl list|add|remove|chap TARGET ...");
	p = params_new();
	p_add_str(p, "target", argv[2]);
	if (strcmp(sub, "list") == 0 && need(argc, 3, 3, "acl list TARGET") == 0)
		return call("acl.list", p, "acl");
	if (strcmp(sub, "list") != 0 && need(argc, 4, 4, "acl add|remove|chap TARGET IQN") == 0) {
		p_add_str(p, "initiator", argv[3]);
		if (strcmp(sub, "remove") == 0)
			return call("acl.remove", p, "");
		if (strcmp(sub, "add") == 0 || strcmp(sub, "chap") == 0) {
			if ((strcmp(sub, "chap") == 0 ? set_auth(p) : add_auth(p)) != 0) {
				json_object_put(p);
				return EX_USAGE;
			}
			return call(strcmp(sub, "add") == 0 ? "acl.add" : "acl.set_auth", p, "");
		}
		json_object_put(p);
		return usage_error("no command 'acl %s'", sub);
	}
	json_object_put(p);
	return EX_USAGE;
}

static int
cmd_session(int argc, char **argv, bool connection)
{
	struct json_object *p = params_new();
	const char *sub = argc > 1 ? argv[1] : "list";

	if (connection) {
		if (strcmp(sub, "drop") != 0 || need(argc, 4, 4, "connection drop TSIH CID")) {
			json_object_put(p);
			return strcmp(sub, "drop") ? usage_error("no command 'connection %s'", sub)
						   : EX_USAGE;
		}
		if (p_add_uint(p, "tsih", argv[2]) < 0 || p_add_uint(p, "cid", argv[3]) < 0) {
			json_object_put(p);
			return usage_error("TSIH and CID are numbers");
		}
		return call("connection.drop", p, "");
	}
	if (strcmp(sub, "list") == 0 && need(argc, 1, 3, "session list [TARGET]") == 0) {
		if (argc == 3)
			p_add_str(p, "target", argv[2]);
		return call("session.list", p, "sessions");
	}
	if (strcmp(sub, "logout") == 0 && need(argc, 3, 3, "session logout TSIH") == 0) {
		if (p_add_uint(p, "tsih", argv[2]) < 0) {
			json_object_put(p);
			return usage_error("TSIH is a number (iserctl session list shows it)");
		}
		return call("session.logout", p, "");
	}
	json_object_put(p);
	if (strcmp(sub, "list") && strcmp(sub, "logout"))
		return usage_error("no command 'session %s'", sub);
	return EX_USAGE;
}

static int
cmd_config(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";

	if (strcmp(sub, "save") == 0 && need(argc, 2, 3, "config save [PATH]") == 0) {
		struct json_object *p = params_new();

		if (argc == 3) {
			char abs[4096];

			/* iserd runs elsewhere: a relative path means ours */
			if (argv[2][0] != '/' && getcwd(abs, sizeof(abs)) != NULL) {
				size_t l = strlen(abs);

				snprintf(abs + l, sizeof(abs) - l, "/%s", argv[2]);
				p_add_str(p, "path", abs);
			} else {
				p_add_str(p, "path", argv[2]);
			}
		}
		return call("config.save", p, "saved");
	}
	if (strcmp(sub, "reload") == 0 && need(argc, 2, 2, "config reload") == 0)
		return call("config.reload", NULL, "reload");
	if (strcmp(sub, "save") && strcmp(sub, "reload"))
		return usage_error("usage: iserctl config save [PATH] | config reload");
	return EX_USAGE;
}

static int
dispatch(int argc, char **argv)
{
	const char *c = argv[0];

	if (strcmp(c, "status") == 0)
		return need(argc, 1, 1, "status") ? EX_USAGE : call("server.info", NULL, "status");
	if (strcmp(c, "target") == 0 || strcmp(c, "targets") == 0)
		return cmd_target(argc, argv);
	if (strcmp(c, "lun") == 0)
		return cmd_lun(argc, argv);
	if (strcmp(c, "portal") == 0 || strcmp(c, "portals") == 0)
		return cmd_portal(argc, argv);
	if (strcmp(c, "acl") == 0)
		return cmd_acl(argc, argv);
	if (strcmp(c, "discovery") == 0) {
		struct json_object *p;

		if (argc != 2 || strcmp(argv[1], "chap") != 0)
			return usage_error("usage: iserctl discovery chap [--chap U:S] [--mutual-chap U:S]");
		p = params_new();
		if (set_auth(p) != 0) {
			json_object_put(p);
			return EX_USAGE;
		}
		return call("discovery.set_auth", p, "");
	}
	if (strcmp(c, "session") == 0 || strcmp(c, "sessions") == 0)
		return cmd_session(argc, argv, false);
	if (strcmp(c, "connection") == 0)
		return cmd_session(argc, argv, true);
	if (strcmp(c, "stats") == 0) {
		struct json_object *p;

		if (need(argc, 1, 2, "stats [TARGET] [--prometheus]"))
			return EX_USAGE;
		if (o.prometheus) {
			if (argc == 2)
				return usage_error("--prometheus covers every target");
			return call("stats.prometheus", NULL, "prometheus");
		}
		p = params_new();
		if (argc == 2)
			p_add_str(p, "target", argv[1]);
		return call("stats.get", p, "stats");
	}
	if (strcmp(c, "log") == 0) {
		struct json_object *p;

		if (need(argc, 1, 2, "log [--level L] [--debug COMPONENTS]"))
			return EX_USAGE;
		if (o.level == NULL && o.debug == NULL)
			return call("log.get", NULL, "log");
		p = params_new();
		if (o.level != NULL)
			p_add_str(p, "level", o.level);
		if (o.debug != NULL)
			p_add_str(p, "debug", o.debug);
		return call("log.set", p, "log");
	}
	if (strcmp(c, "config") == 0)
		return cmd_config(argc, argv);
	if (strcmp(c, "call") == 0) {
		struct json_object *p = NULL;

		if (need(argc, 2, 3, "call METHOD [PARAMS-JSON]"))
			return EX_USAGE;
		if (argc == 3) {
			p = json_tokener_parse(argv[2]);
			if (p == NULL)
				return usage_error("PARAMS-JSON is not JSON");
		}
		return call(argv[1], p, NULL);
	}
	return usage_error("no command '%s'", c);
}

static int
add_list(const char **arr, int *n, const char *v, const char *what)
{
	if (*n >= MAX_LIST)
		return usage_error("more than %d %s", MAX_LIST, what);
	arr[(*n)++] = v;
	return 0;
}

static int
parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int
main(int argc, char **argv)
{
	enum { O_ALIAS = 256, O_LUN, O_ALLOW, O_PORTAL, O_CHAP, O_MUTUAL, O_FORCE, O_PROM,
	       O_RO, O_BS, O_LEVEL, O_DEBUG, O_TPGT, O_CLEAR, O_REACTORS };
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"json", no_argument, NULL, 'j'},
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {"alias", required_argument, NULL, O_ALIAS},
	    {"tpgt", required_argument, NULL, O_TPGT},
	    {"reactors", required_argument, NULL, O_REACTORS},
	    {"lun", required_argument, NULL, O_LUN},
	    {"allow", required_argument, NULL, O_ALLOW},
	    {"portal", required_argument, NULL, O_PORTAL},
	    {"chap", required_argument, NULL, O_CHAP},
	    {"mutual-chap", required_argument, NULL, O_MUTUAL},
	    {"force", no_argument, NULL, O_FORCE},
	    {"clear", no_argument, NULL, O_CLEAR},
	    {"prometheus", no_argument, NULL, O_PROM},
	    {"read-only", no_argument, NULL, O_RO},
	    {"ro", no_argument, NULL, O_RO},
	    {"block-size", required_argument, NULL, O_BS},
	    {"level", required_argument, NULL, O_LEVEL},
	    {"debug", required_argument, NULL, O_DEBUG},
	    {NULL, 0, NULL, 0},
	};
	int c, rc;
	long v;

	o.socket = getenv("ISERCTL_SOCKET");
	if (o.socket == NULL || o.socket[0] == '\0')
		o.socket = ISD_TARGET_DEFAULT_CONTROL_SOCKET;
	/* GNU order: options anywhere; "--" ends them */
	while ((c = getopt_long(argc, argv, "s:jt:hV", opts, NULL)) != -1) {
		switch (c) {
		case 's': o.socket = optarg; break;
		case 'j': o.json = true; break;
		case 't':
			if (parse_long(optarg, 1, 86400, &v) < 0)
				return usage_error("--timeout takes seconds (1-86400)");
			o.timeout_s = (int)v;
			break;
		case 'h': fputs(usage_text, stdout); return EX_OK;
		case 'V': printf("iserctl %s\n", ISD_VERSION); return EX_OK;
		case O_ALIAS: o.alias = optarg; break;
		case O_REACTORS: o.reactors = optarg; break;
		case O_TPGT:
			if (parse_long(optarg, 1, 65535, &o.tpgt) < 0)
				return usage_error("--tpgt takes 1-65535");
			break;
		case O_LUN:
			if (add_list(o.luns, &o.nluns, optarg, "--lun") < 0)
				return EX_USAGE;
			break;
		case O_ALLOW:
			if (add_list(o.allow, &o.nallow, optarg, "--allow") < 0)
				return EX_USAGE;
			break;
		case O_PORTAL:
			if (add_list(o.portals, &o.nportals, optarg, "--portal") < 0)
				return EX_USAGE;
			break;
		case O_CHAP: o.chap = optarg; break;
		case O_MUTUAL: o.mutual_chap = optarg; break;
		case O_FORCE: o.force = true; break;
		case O_CLEAR: o.clear = true; break;
		case O_PROM: o.prometheus = true; break;
		case O_RO: o.read_only = true; break;
		case O_BS:
			if (parse_long(optarg, 512, 4096, &o.block_size) < 0)
				return usage_error("--block-size takes 512 or 4096");
			break;
		case O_LEVEL: o.level = optarg; break;
		case O_DEBUG: o.debug = optarg; break;
		default: return usage_error("bad option");
		}
	}
	if (optind >= argc)
		return usage_error("no command");
	rc = dispatch(argc - optind, argv + optind);
	return rc;
}
