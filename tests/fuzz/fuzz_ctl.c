/*
 * The control socket's request handling (src/ctl): the input is one request
 * text as a client would send it (a value or a batch), handed to
 * isd_ctl_handle_text() against a real running target (a reactor, one TCP
 * portal on 127.0.0.1 port 0, one target with a 1 MiB RAM LUN), built once.
 * Every method runs for real: targets, LUNs, ACLs, portals and credentials
 * change. After each input the initial model is applied again with
 * isd_live_apply() (what config.reload does), the reactor runs what is due
 * (deferred frees), and the fuzzer checks:
 *   - the answer is "" (notifications only) or one JSON text: an object, or
 *     a non-empty array of them, each with "jsonrpc": "2.0" and exactly one
 *     of result and error (error: integer code, string message);
 *   - a request whose method name holds a NUL byte gets no result;
 *   - after the restore, the running model has the initial targets, their
 *     LUNs (number and backing) and the initial number of portals.
 *
 * What must not reach outside the process (see bad_value()):
 *   - config.save writes a file wherever its path says: inputs naming it are
 *     skipped (the env has no config file either);
 *   - "file:" and "dev:" backings open, create and truncate (lun.resize) any
 *     path: inputs naming them are skipped.
 * The check runs on the decoded JSON (json-c, as the handler parses it), so
 * that \u escapes cannot hide a name from it; an input that does not parse is
 * harmless (it only gets a parse error) and runs.
 *   - portal.add binds: bind() is wrapped below so that only loopback
 *     addresses bind, always on port 0, and never collide with a real iserd
 *     on this host (the wrapper is in this executable, ahead of libc's).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <json-c/json.h>

#include "ctl/control.h"
#include "reactor/reactor.h"
#include "server/live.h"
#include "server/target.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct isd_reactor *g_r;
static struct isd_target_running *g_rt;
static struct isd_target_cfg g_initial;         /* the model as started */
static struct isd_ctl_env g_env;
static enum isd_log_level g_level;

/* ---- bind(): loopback only, port 0 ---- */

int
bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	static int (*real)(int, const struct sockaddr *, socklen_t);
	struct sockaddr_storage ss;

	if (real == NULL)
		real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (sa == NULL || len > sizeof(ss) || len < sizeof(sa_family_t))
		return real(fd, sa, len);
	memcpy(&ss, sa, len);
	if (ss.ss_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		if ((ntohl(in->sin_addr.s_addr) >> 24) != 127) {
			errno = EADDRNOTAVAIL;
			return -1;
		}
		in->sin_port = 0;
	} else if (ss.ss_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		if (!IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) {
			errno = EADDRNOTAVAIL;
			return -1;
		}
		in6->sin6_port = 0;
	}
	return real(fd, (struct sockaddr *)&ss, len);
}

/* ---- what an input may not do ---- */

static bool
has_word(const char *s, size_t n, const char *w)
{
	size_t wl = strlen(w);

	for (size_t i = 0; i + wl <= n; i++) {
		size_t j = 0;

		while (j < wl && tolower((unsigned char)s[i + j]) == w[j])
			j++;
		if (j == wl)
			return true;
	}
	return false;
}

static bool
bad_string(const char *s, size_t n)
{
	return has_word(s, n, "config.save") || has_word(s, n, "file:") || has_word(s, n, "dev:");
}

static bool
bad_value(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_string:
		return bad_string(json_object_get_string(v), (size_t)json_object_get_string_len(v));
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(v); i++)
			if (bad_value(json_object_array_get_idx(v, i)))
				return true;
		return false;
	case json_type_object: {
		json_object_object_foreach(v, k, vv) {
			if (bad_string(k, strlen(k)) || bad_value(vv))
				return true;
		}
		return false;
	}
	default:
		return false;
	}
}

/* The input as the handler will see it (NULL when it does not parse). */
static struct json_object *
parse_input(const uint8_t *data, size_t size)
{
	struct json_tokener *tok = json_tokener_new_ex(ISD_CTL_JSON_DEPTH);
	struct json_object *v;

	if (tok == NULL)
		abort();
	v = json_tokener_parse_ex(tok, (const char *)data, (int)size);
	json_tokener_free(tok);
	return v;
}

/* A request whose method name holds a NUL byte names no method: it gets no result. */
static bool
nul_method(struct json_object *req)
{
	struct json_object *m, *id;

	return json_object_is_type(req, json_type_object) &&
	       json_object_object_get_ex(req, "id", &id) &&
	       json_object_object_get_ex(req, "method", &m) &&
	       json_object_is_type(m, json_type_string) &&
	       strlen(json_object_get_string(m)) != (size_t)json_object_get_string_len(m);
}

/* ---- the running target ---- */

static void
drop_line(void *arg, int level, const char *line)
{
	(void)arg;
	(void)level;
	(void)line;
}

static int
restore(void *arg, struct isd_live_diff *diff, char *err, size_t errlen)
{
	(void)arg;
	return isd_live_apply(g_rt, &g_initial, diff, err, errlen);
}

static void
setup(void)
{
	char *argv[] = {"iserd", "--portal", "tcp://127.0.0.1:0", "--target",
			"iqn.2026-11.org.iserd:fz", "--lun", "ram:1M", "--target",
			"iqn.2026-11.org.iserd:fz2", "--lun", "ram:64K", "--lun", "ram:128K",
			"--allow", "iqn.1993-08.org.debian:01:fz", "--control-socket", "none"};
	struct isd_target_cfg cfg;
	char err[1024] = "";

	if (getenv("FUZZ_CTL_LOG") == NULL) {
		isd_log_set_sink(drop_line, NULL);
		isd_log_set_level(ISD_LOG_ERR);
	}
	g_level = isd_log_get_level();
	isd_target_cfg_init(&cfg);
	if (isd_target_cfg_parse_args((int)(sizeof(argv) / sizeof(argv[0])), argv, &cfg, err,
				      sizeof(err)) < 0 ||
	    isd_target_cfg_validate(&cfg, err, sizeof(err)) < 0 ||
	    isd_reactor_create(&g_r) < 0 ||
	    isd_target_start(&cfg, g_r, &g_rt, err, sizeof(err)) < 0 ||
	    isd_target_cfg_copy(&g_initial, isd_target_running_cfg(g_rt)) < 0) {
		fprintf(stderr, "fuzz_ctl: setup: %s\n", err[0] ? err : "failed");
		abort();
	}
	isd_target_cfg_fini(&cfg);
	g_env.rt = g_rt;
	g_env.config_file = "";
	g_env.started_ns = isd_now_ns();
	g_env.reload = restore;
	g_env.reload_arg = NULL;
}

/* ---- invariants ---- */

static void
fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_ctl: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	abort();
}

static void
check_response(struct json_object *o)
{
	struct json_object *v, *res, *e, *c, *m;
	bool has_res, has_err;

	if (!json_object_is_type(o, json_type_object))
		fail("answer is not an object", json_object_to_json_string(o));
	if (!json_object_object_get_ex(o, "jsonrpc", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), "2.0") != 0)
		fail("answer without \"jsonrpc\": \"2.0\"", json_object_to_json_string(o));
	if (!json_object_object_get_ex(o, "id", &v))
		fail("answer without id", json_object_to_json_string(o));
	has_res = json_object_object_get_ex(o, "result", &res);
	has_err = json_object_object_get_ex(o, "error", &e);
	if (has_res == has_err)
		fail("answer needs exactly one of result and error", json_object_to_json_string(o));
	if (has_err && (!json_object_is_type(e, json_type_object) ||
			!json_object_object_get_ex(e, "code", &c) ||
			!json_object_is_type(c, json_type_int) ||
			!json_object_object_get_ex(e, "message", &m) ||
			!json_object_is_type(m, json_type_string)))
		fail("malformed error", json_object_to_json_string(o));
}

static void
check_answer(const char *ans, struct json_object *req)
{
	struct json_tokener *tok;
	struct json_object *v;
	size_t len = strlen(ans);

	if (len == 0)
		return;
	tok = json_tokener_new_ex(ISD_CTL_JSON_DEPTH * 4);
	if (tok == NULL)
		abort();
	v = json_tokener_parse_ex(tok, ans, (int)len);
	if (json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len)
		fail("answer is not one JSON text", ans);
	if (json_object_is_type(v, json_type_array)) {
		if (json_object_array_length(v) == 0)
			fail("empty batch answer", NULL);
		for (size_t i = 0; i < json_object_array_length(v); i++)
			check_response(json_object_array_get_idx(v, i));
	} else {
		check_response(v);
		if (nul_method(req) && json_object_object_get_ex(v, "result", NULL))
			fail("a method name with a NUL byte ran a method", ans);
	}
	json_object_put(v);
	json_tokener_free(tok);
}

static const struct isd_target_node_cfg *
node_named(const struct isd_target_cfg *cfg, const char *name)
{
	for (int i = 0; i < cfg->node_count; i++)
		if (strcmp(cfg->nodes[i].name, name) == 0)
			return &cfg->nodes[i];
	return NULL;
}

static void
check_restored(void)
{
	const struct isd_target_cfg *now = isd_target_running_cfg(g_rt);

	if (now->node_count != g_initial.node_count)
		fail("restore: target count differs", NULL);
	if (now->portal_count != g_initial.portal_count)
		fail("restore: portal count differs", NULL);
	for (int i = 0; i < g_initial.node_count; i++) {
		const struct isd_target_node_cfg *a = &g_initial.nodes[i];
		const struct isd_target_node_cfg *b = node_named(now, a->name);

		if (b == NULL)
			fail("restore: target missing", a->name);
		if (b->lun_count != a->lun_count || b->acl_count != a->acl_count)
			fail("restore: LUN or ACL count differs", a->name);
		for (int j = 0; j < a->lun_count; j++) {
			int k;

			for (k = 0; k < b->lun_count; k++)
				if (b->luns[k].number == a->luns[j].number &&
				    strcmp(b->luns[k].spec, a->luns[j].spec) == 0 &&
				    b->luns[k].read_only == a->luns[j].read_only)
					break;
			if (k == b->lun_count)
				fail("restore: LUN differs", a->name);
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct isd_live_diff diff;
	char err[1024] = "";
	struct json_object *req;
	char *ans;

	if (g_rt == NULL)
		setup();
	if (size > ISD_CTL_MSG_MAX)
		return -1;      /* the socket never hands over more */
	req = parse_input(data, size);
	if (req != NULL && bad_value(req)) {
		json_object_put(req);
		return -1;      /* libFuzzer: do not add it to the corpus */
	}
	ans = isd_ctl_handle_text(&g_env, (const char *)data, size, "fuzz");
	if (ans == NULL)
		fail("isd_ctl_handle_text returned NULL", NULL);
	check_answer(ans, req);
	free(ans);
	json_object_put(req);

	if (isd_live_apply(g_rt, &g_initial, &diff, err, sizeof(err)) < 0)
		fail("restore failed", err);
	isd_log_enable("");
	isd_log_set_level(g_level);
	/* deferred frees (removed targets, LUNs, portals) */
	isd_reactor_poll(g_r, 0);
	isd_reactor_run_due(g_r);
	check_restored();
	return 0;
}
