/*
 * isd_target_cfg_save: a saved model loads back to the same model, field by
 * field (docs/iserd.conf.example and a file that sets every key the loader
 * knows), a second save of the reloaded model is byte for byte the first,
 * and the file is written atomically, mode 0600, never through a link.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/config_int.h"
#include "server/live.h"
#include "server/target.h"

static char g_dir[64];

static char *
path_of(const char *name)
{
	static char paths[8][128];
	static int next;
	char *p = paths[next++ % 8];

	snprintf(p, 128, "%s/%s", g_dir, name);
	return p;
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static char *
read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 1 << 20);
	size_t n;

	assert_non_null(f);
	assert_non_null(buf);
	n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void
load(const char *path, struct isd_target_cfg *cfg)
{
	char err[512];

	isd_target_cfg_init(cfg);
	if (isd_target_cfg_load_file(path, cfg, err, sizeof(err)) != 0 ||
	    isd_target_cfg_validate(cfg, err, sizeof(err)) != 0)
		fail_msg("%s: %s", path, err);
}

static void
auth_equal(const struct isd_auth_cfg *a, const struct isd_auth_cfg *b)
{
	assert_int_equal(a->require_chap, b->require_chap);
	assert_int_equal(a->mutual, b->mutual);
	if (a->require_chap) {
		assert_string_equal(a->chap.user, b->chap.user);
		assert_string_equal(a->chap.secret, b->chap.secret);
	}
	if (a->mutual) {
		assert_string_equal(a->mutual_chap.user, b->mutual_chap.user);
		assert_string_equal(a->mutual_chap.secret, b->mutual_chap.secret);
	}
}

static void
neg_equal(const struct isd_target_neg_cfg *a, const struct isd_target_neg_cfg *b)
{
	assert_int_equal(a->max_recv_data_segment_length, b->max_recv_data_segment_length);
	assert_int_equal(a->max_burst_length, b->max_burst_length);
	assert_int_equal(a->first_burst_length, b->first_burst_length);
	assert_int_equal(a->max_outstanding_r2t, b->max_outstanding_r2t);
	assert_int_equal(a->queue_depth, b->queue_depth);
	assert_int_equal(a->immediate_data, b->immediate_data);
	assert_int_equal(a->initial_r2t, b->initial_r2t);
	assert_int_equal(a->header_digest, b->header_digest);
	assert_int_equal(a->data_digest, b->data_digest);
}

/* Every field the loader sets, except where each setting came from. */
static void
cfg_equal(const struct isd_target_cfg *a, const struct isd_target_cfg *b)
{
	assert_int_equal(a->log_level, b->log_level);
	assert_string_equal(a->debug, b->debug);
	assert_int_equal(a->login_timeout_ms, b->login_timeout_ms);
	assert_int_equal(a->nop_interval_ms, b->nop_interval_ms);
	assert_int_equal(a->nop_timeout_ms, b->nop_timeout_ms);
	assert_int_equal(a->logout_timeout_ms, b->logout_timeout_ms);
	assert_int_equal(a->shutdown_timeout_ms, b->shutdown_timeout_ms);
	assert_int_equal(a->reactor_mode, b->reactor_mode);
	assert_int_equal(a->reactor_poll_us, b->reactor_poll_us);
	assert_string_equal(a->polling_reactors, b->polling_reactors);
	assert_int_equal(a->reactors, b->reactors);
	assert_string_equal(a->reactor_cpus, b->reactor_cpus);
	for (int i = 0; i < isd_target_limit_count; i++)
		assert_int_equal(isd_target_limit_get(a, &isd_target_limits[i]),
				 isd_target_limit_get(b, &isd_target_limits[i]));
	assert_memory_equal(a->dm_setting, b->dm_setting, sizeof(a->dm_setting));
	auth_equal(&a->discovery_auth, &b->discovery_auth);
	assert_int_equal(a->allow_short_secrets, b->allow_short_secrets);
	assert_int_equal(a->chap_algs, b->chap_algs);
	assert_string_equal(a->control_socket, b->control_socket);
	assert_int_equal(a->control_mode, b->control_mode);
	assert_string_equal(a->metrics_listen, b->metrics_listen);
	assert_string_equal(a->user, b->user);
	assert_string_equal(a->group, b->group);
	neg_equal(&a->neg, &b->neg);
	assert_int_equal(a->portal_count, b->portal_count);
	for (int i = 0; i < a->portal_count; i++) {
		const struct isd_target_portal_spec *p = &a->portals[i], *q = &b->portals[i];

		assert_ptr_equal(p->kind, q->kind);
		assert_int_equal(p->transport, q->transport);
		assert_string_equal(p->host, q->host);
		assert_int_equal(p->port, q->port);
		assert_int_equal(p->tpgt, q->tpgt);
		assert_string_equal(p->reactors, q->reactors);
	}
	assert_int_equal(a->node_count, b->node_count);
	for (int i = 0; i < a->node_count; i++) {
		const struct isd_target_node_cfg *n = &a->nodes[i], *m = &b->nodes[i];

		assert_string_equal(n->name, m->name);
		assert_string_equal(n->alias, m->alias);
		assert_int_equal(n->tpgt, m->tpgt);
		assert_int_equal(n->lun_count, m->lun_count);
		for (int j = 0; j < n->lun_count; j++) {
			const struct isd_target_lun_cfg *l = &n->luns[j], *k = &m->luns[j];

			assert_int_equal(l->number, k->number);
			assert_string_equal(l->spec, k->spec);
			assert_ptr_equal(l->kind, k->kind);
			assert_string_equal(l->path, k->path);
			assert_int_equal(l->size, k->size);
			assert_int_equal(l->block_size, k->block_size);
			assert_int_equal(l->physical_block_size, k->physical_block_size);
			assert_int_equal(l->read_only, k->read_only);
			assert_string_equal(l->vendor, k->vendor);
			assert_string_equal(l->product, k->product);
			assert_string_equal(l->serial, k->serial);
			assert_string_equal(l->naa, k->naa);
			assert_int_equal(l->alua_state_set, k->alua_state_set);
			assert_int_equal(l->alua_state, k->alua_state);
		}
		assert_int_equal(n->alua_group, m->alua_group);
		assert_int_equal(n->alua_peer_state, m->alua_peer_state);
		assert_int_equal(n->alua_peer_count, m->alua_peer_count);
		for (int j = 0; j < n->alua_peer_count; j++) {
			assert_int_equal(n->alua_peers[j].group, m->alua_peers[j].group);
			assert_int_equal(n->alua_peers[j].rtpi, m->alua_peers[j].rtpi);
		}
		assert_int_equal(n->acl_count, m->acl_count);
		for (int j = 0; j < n->acl_count; j++)
			assert_string_equal(n->acl[j], m->acl[j]);
		assert_int_equal(n->ini_count, m->ini_count);
		for (int j = 0; j < n->ini_count; j++) {
			assert_string_equal(n->ini[j].name, m->ini[j].name);
			auth_equal(&n->ini[j].auth, &m->ini[j].auth);
		}
		auth_equal(&n->auth, &m->auth);
		neg_equal(&n->neg, &m->neg);
		assert_int_equal(n->portal_bind_count, m->portal_bind_count);
		for (int j = 0; j < n->portal_bind_count; j++)
			assert_string_equal(n->portals[j], m->portals[j]);
	}
}

/* Load src, save, load the saved file: the same model; saved again: the same bytes. */
static void
round_trip(const char *src, const char *name)
{
	struct isd_target_cfg a, b;
	char err[512], *first, *second, *p1 = path_of(name), p2[160], tmp[170];
	struct stat st;

	snprintf(p2, sizeof(p2), "%s.again", p1);
	load(src, &a);
	if (isd_target_cfg_save(&a, p1, err, sizeof(err)) != 0)
		fail_msg("save: %s", err);
	assert_int_equal(stat(p1, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	snprintf(tmp, sizeof(tmp), "%s.tmp", p1);
	assert_int_not_equal(access(tmp, F_OK), 0);
	load(p1, &b);
	cfg_equal(&a, &b);
	assert_int_equal(b.warning_count, 0);
	assert_int_equal(isd_target_cfg_save(&b, p2, err, sizeof(err)), 0);
	first = read_all(p1);
	second = read_all(p2);
	assert_string_equal(first, second);
	free(first);
	free(second);
	isd_target_cfg_fini(&a);
	isd_target_cfg_fini(&b);
}

static void
test_example_round_trip(void **state)
{
	const char *marker = strstr(__FILE__, "tests/unit/");
	char path[4096];

	(void)state;
	if (marker == NULL)
		skip();
	snprintf(path, sizeof(path), "%.*sdocs/iserd.conf.example", (int)(marker - __FILE__),
		 __FILE__);
	if (access(path, R_OK) != 0)
		skip();
	round_trip(path, "example.conf");
}

/* Every key the loader reads, in every form it takes. */
static const char g_every_key[] =
	"global = {\n"
	"  log_level = \"debug\"; debug = \"iscsi,tcp\";\n"
	"  login_timeout = 12; nop_interval = 0.25; nop_timeout = 7; logout_timeout = 1.5;\n"
	"  shutdown_timeout = 3; reactor_mode = \"adaptive\"; reactor_poll_us = 20;\n"
	"  reactors = 3; reactor_cpus = \"0,2-3\"; polling_reactors = \"1-2\";\n"
	"  max_connections = 100; max_connections_per_address = 10;\n"
	"  max_login_connections = 20; max_sessions = 30; max_sessions_per_target = 5;\n"
	"  max_discovery_sessions = 0; max_held_bytes = 65536; max_held_pdus = 16;\n"
	"  max_session_buffer_bytes = 1073741824;\n"
	"  max_tx_queue_bytes = 1048576; iser_remote_invalidate = false;\n"
	"  iser_recv_memory = 4194304;\n"
	"  allow_short_chap_secrets = true;\n"
	"  chap_algorithms = [ \"sha256\", \"md5\" ];\n"
	"  user = \"nobody\"; group = \"nogroup\";\n"
	"  control_socket = \"/tmp/iserd test \\\"quoted\\\".sock\"; control_mode = \"0660\";\n"
	"  metrics_listen = \"127.0.0.1:9580\";\n"
	"  discovery_auth = { chap = \"disc:short\"; mutual_chap = { user = \"tgt\";\n"
	"    secret_env = \"ISD_TEST_SAVE_SECRET\"; }; };\n"
	"  max_recv_data_segment_length = 65536; max_burst_length = 262144;\n"
	"  first_burst_length = 8192; max_outstanding_r2t = 2; queue_depth = 32;\n"
	"  immediate_data = false; initial_r2t = true; header_digest = \"prefer\";\n"
	"  data_digest = true;\n"
	"};\n"
	"portals = ( \"tcp://127.0.0.1:3260\", { url = \"tcp://[::1]:3261\"; tpgt = 7; },\n"
	"  \"192.0.2.1\", \"iser://0.0.0.0:3260\",\n"
	"  { url = \"tcp://127.0.0.1:3262\"; reactors = \"1-2\"; },\n"
	"  { url = \"tcp://127.0.0.1:3263\"; tpgt = 2; reactors = \"0,2\"; } );\n"
	"targets = (\n"
	"  { name = \"iqn.2026-11.org.iserd:every\"; alias = \"a \\\"quoted\\\" alias\";\n"
	"    tpgt = 7; alua_group = 7; alua_peers = ( 8, \"9/12\" );\n"
	"    alua_peer_state = \"standby\";\n"
	"    luns = ( { number = 3; backing = \"ram:64M\"; block_size = 4096; read_only = true;\n"
	"               vendor = \"VEND\"; product = \"PROD\"; serial = \"SER-1\";\n"
	"               naa = \"6001405ABCDEF012\"; alua_state = \"standby\"; },\n"
	"             { backing = \"file:/var/tmp/iserd-save-test.img,size=1G,ro,\"\n"
	"                         \"serial=S2,naa=6001405abcdef0123456789abcdef012,alua=an\"; },\n"
	"             { backing = \"zero:1T\"; block_size = 512;\n"
	"               physical_block_size = 4096; } );\n"
	"    acl = ( \"iqn.1993-08.org.debian:01:plain\",\n"
	"            { initiator = \"iqn.2026-11.org.example:own\";\n"
	"              chap = { user = \"own\"; secret_file = \"@SECRET_FILE@\"; };\n"
	"              mutual_chap = \"tgt-own:mutualsecret\"; },\n"
	"            { initiator = \"iqn.2026-11.org.example:name-only\"; } );\n"
	"    chap = { user = \"node\"; secret = \"node secret with ; and \\\\ \"; };\n"
	"    mutual_chap = \"iserd:a:colon:secret\";\n"
	"    max_burst_length = 131072; header_digest = \"none\"; data_digest = \"allow\";\n"
	"    immediate_data = true; initial_r2t = false; queue_depth = 8;\n"
	"    portals = [ \"tcp://127.0.0.1:3260\", \"[::1]:3261\", \"iser://0.0.0.0:3260\" ];\n"
	"  },\n"
	"  { name = \"eui.0123456789abcdef\"; luns = ( { backing = \"ram:1M\"; } ); }\n"
	");\n";

static void
test_every_key_round_trip(void **state)
{
	char *src = path_of("every.conf"), *secret = path_of("own.secret");
	char *text, *mark;
	size_t n;

	(void)state;
	write_file(secret, "own-secret-from-file\n", 0600);
	setenv("ISD_TEST_SAVE_SECRET", "mutual-from-env", 1);
	mark = strstr(g_every_key, "@SECRET_FILE@");
	assert_non_null(mark);
	n = (size_t)(mark - g_every_key);
	text = calloc(1, sizeof(g_every_key) + strlen(secret));
	assert_non_null(text);
	memcpy(text, g_every_key, n);
	strcat(text, secret);
	strcat(text, mark + strlen("@SECRET_FILE@"));
	write_file(src, text, 0600);
	free(text);
	round_trip(src, "every-saved.conf");
}

static void
test_saved_text(void **state)
{
	struct isd_target_cfg cfg;
	char err[512], *src = path_of("small.conf"), *dst = path_of("small-saved.conf"), *text;

	(void)state;
	write_file(src,
		   "global = { control_mode = 416; nop_interval = 2.5; };\n"
		   "portals = ( \"tcp://127.0.0.1:3260\" );\n"
		   "targets = ( { name = \"iqn.2026-11.org.iserd:t\"; luns = ( { backing = "
		   "\"ram:1M\"; } );\n"
		   "  chap = \"u:secret1234567\"; } );\n",
		   0600);
	load(src, &cfg);
	assert_int_equal(cfg.control_mode, 0640);
	assert_int_equal(isd_target_cfg_save(&cfg, dst, err, sizeof(err)), 0);
	text = read_all(dst);
	/* unset settings are left out; modes in octal; secrets literally */
	assert_non_null(strstr(text, "control_mode = \"0640\";"));
	assert_non_null(strstr(text, "nop_interval = 2.5;"));
	assert_non_null(strstr(text, "secret = \"secret1234567\";"));
	assert_null(strstr(text, "login_timeout"));
	assert_null(strstr(text, "tpgt"));
	assert_null(strstr(text, "header_digest"));
	free(text);
	isd_target_cfg_fini(&cfg);
}

static void
test_save_atomic(void **state)
{
	struct isd_target_cfg cfg;
	char err[512], *src = path_of("atomic.conf"), *dst = path_of("atomic-saved.conf");
	char tmp[160], *text;
	struct stat st;

	(void)state;
	write_file(src,
		   "targets = ( { name = \"iqn.2026-11.org.iserd:t\"; luns = ( { backing = "
		   "\"ram:1M\"; } ); } );\nportals = ( \"tcp://127.0.0.1:3260\" );\n",
		   0600);
	load(src, &cfg);
	/* an old file is replaced whole; a leftover PATH.tmp, even a link, is not written
	 * through */
	write_file(dst, "old contents\n", 0644);
	snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
	assert_int_equal(symlink(path_of("victim"), tmp), 0);
	write_file(path_of("victim"), "victim\n", 0644);
	assert_int_equal(isd_target_cfg_save(&cfg, dst, err, sizeof(err)), 0);
	assert_int_equal(stat(dst, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	text = read_all(path_of("victim"));
	assert_string_equal(text, "victim\n");
	free(text);
	assert_int_not_equal(access(tmp, F_OK), 0);
	text = read_all(dst);
	assert_non_null(strstr(text, "iqn.2026-11.org.iserd:t"));
	free(text);
	/* a directory that does not exist: an error that names the file, nothing written */
	assert_int_equal(isd_target_cfg_save(&cfg, "/nonexistent-isd/x.conf", err, sizeof(err)),
			 -ENOENT);
	assert_string_equal(err, "/nonexistent-isd/x.conf.tmp: No such file or directory");
	assert_int_equal(isd_target_cfg_save(&cfg, "", err, sizeof(err)), -EINVAL);
	isd_target_cfg_fini(&cfg);
}

static int
cleanup_dir(void)
{
	char cmd[128];

	/* the test's own temporary directory only */
	snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", g_dir);
	return system(cmd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_example_round_trip),
	    cmocka_unit_test(test_every_key_round_trip),
	    cmocka_unit_test(test_saved_text),
	    cmocka_unit_test(test_save_atomic),
	};
	int rc;

	snprintf(g_dir, sizeof(g_dir), "/tmp/isd-save.XXXXXX");
	assert_non_null(mkdtemp(g_dir));
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	(void)cleanup_dir();
	return rc;
}
