/*
 * The Prometheus exposition of a running target and the metrics HTTP
 * listener: commands run straight on a node's SCSI device show up, exactly,
 * in the LUN and target families; the text is well formed (one HELP/TYPE per
 * family, cumulative buckets, and promtool's own check where it is
 * installed); label values are escaped; the listener answers 200, 404, 405,
 * 400, 431 and 503 as its contract says.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctl/ctl.h"
#include "iscsi/iscsi.h"
#include "reactor/reactor.h"
#include "scsi/scsi.h"
#include "server/target.h"
#include "util/endian.h"

#define TGT ISD_TARGET_DEFAULT_NAME
#define LBL "target=\"" TGT "\""

struct fx {
	struct isd_reactor *r;
	struct isd_target_running *rt;
	struct isd_scsi_dev *dev;
};

static int
fx_setup(void **state)
{
	static struct fx f;
	struct isd_target_cfg cfg;
	char *argv[] = {"iserd", "--portal", "tcp://127.0.0.1:0", "--lun", "ram:1M",
			"--lun", "ram:2M", NULL};
	char err[512];
	struct isd_tnode *n;

	memset(&f, 0, sizeof(f));
	isd_target_cfg_init(&cfg);
	if (isd_target_cfg_parse_args(7, argv, &cfg, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	/* RAM has no ",ro": as a config file's read_only = true would */
	cfg.nodes[0].luns[1].read_only = true;
	assert_int_equal(isd_reactor_create(&f.r), 0);
	if (isd_target_start(&cfg, f.r, &f.rt, err, sizeof(err)) != 0)
		fail_msg("start: %s", err);
	isd_target_cfg_fini(&cfg);
	n = isd_iscsi_tgt_find_node(isd_target_core(f.rt), TGT);
	assert_non_null(n);
	f.dev = n->dev;
	*state = &f;
	return 0;
}

static int
fx_teardown(void **state)
{
	struct fx *f = *state;

	isd_target_stop(f->rt);
	isd_reactor_destroy(f->r);
	return 0;
}

static int g_done;

static void
on_done(struct isd_scsi_cmd *cmd)
{
	(void)cmd;
	g_done++;
}

/* One command through setup and exec, as a transport would run it. */
static uint8_t
run(struct fx *f, uint32_t lun, uint8_t op, uint32_t lba, uint16_t nb, uint32_t edtl, bool rd)
{
	struct isd_scsi_cmd cmd;
	struct isd_scsi_nexus nx = {.initiator_port = "iqn.2026-11.test:i,i,0x1",
				    .target_port = TGT ",t,0x0001",
				    .rel_tgt_port_id = 1,
				    .id = 77};
	uint8_t cdb[16] = {op};
	uint8_t status;

	if (op == 0x28 || op == 0x2a) {
		put_be32(cdb + 2, lba);
		put_be16(cdb + 7, nb);
	}
	memset(&cmd, 0, sizeof(cmd));
	cmd.dev = f->dev;
	cmd.nexus = &nx;
	cmd.lun = isd_scsi_lun_encode(lun);
	cmd.cdb = cdb;
	cmd.cdb_len = 16;
	cmd.edtl = edtl;
	cmd.read_flag = rd;
	cmd.write_flag = !rd && edtl > 0;
	cmd.done = on_done;
	g_done = 0;
	if (isd_scsi_cmd_setup(&cmd) == ISD_SCSI_SETUP_READY) {
		if (cmd.dir == ISD_SCSI_DIR_OUT && cmd.data_out_len > 0)
			memset(cmd.iov[0].iov_base, 0xa5, cmd.data_out_len);
		isd_scsi_cmd_exec(&cmd);
		for (int i = 0; i < 1000 && g_done == 0; i++)
			assert_int_equal(isd_reactor_poll(f->r, 10), 0);
		assert_int_equal(g_done, 1);
	}
	status = cmd.status;
	isd_scsi_cmd_release(&cmd);
	return status;
}

static void
expect_line(const char *text, const char *line)
{
	const char *p = text;
	size_t n = strlen(line);

	while ((p = strstr(p, line)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return;
		p += n;
	}
	fail_msg("no line '%s'", line);
}

/* Every family once, samples only under their own family, buckets cumulative. */
static void
check_well_formed(const char *text)
{
	char fam[64][96];
	int nfam = 0;
	char cur[96] = "";
	unsigned long long last_bucket = 0;
	const char *p = text;

	while (*p != '\0') {
		const char *e = strchr(p, '\n');
		char line[1024];
		size_t n;

		assert_non_null(e);
		n = (size_t)(e - p);
		assert_true(n < sizeof(line));
		memcpy(line, p, n);
		line[n] = '\0';
		p = e + 1;
		if (strncmp(line, "# HELP ", 7) == 0)
			continue;
		if (strncmp(line, "# TYPE ", 7) == 0) {
			char name[96];

			assert_int_equal(sscanf(line + 7, "%95s", name), 1);
			for (int i = 0; i < nfam; i++)
				if (strcmp(fam[i], name) == 0)
					fail_msg("family %s twice", name);
			assert_true(nfam < 64);
			snprintf(fam[nfam++], sizeof(fam[0]), "%s", name);
			snprintf(cur, sizeof(cur), "%s", name);
			continue;
		}
		assert_int_not_equal(line[0], '#');
		/* a sample of the current family (histograms: _bucket, _sum, _count) */
		if (strncmp(line, cur, strlen(cur)) != 0)
			fail_msg("sample '%s' outside its family %s", line, cur);
		if (strstr(line, "_bucket{") != NULL) {
			unsigned long long v = strtoull(strrchr(line, ' ') + 1, NULL, 10);

			if (strstr(line, "le=\"0.000001\"") == NULL)
				assert_true(v >= last_bucket);
			last_bucket = v;
		}
	}
}

static void
test_exposition(void **state)
{
	struct fx *f = *state;
	char *text = NULL;
	size_t len = 0;

	/* power-on unit attention, a write, two reads (one short of EDTL), LUN 9 absent */
	assert_int_equal(run(f, 0, 0x00, 0, 0, 0, false), ISD_SAM_CHECK_CONDITION);
	assert_int_equal(run(f, 0, 0x2a, 0, 8, 4096, false), ISD_SAM_GOOD);
	assert_int_equal(run(f, 0, 0x28, 0, 8, 4096, true), ISD_SAM_GOOD);
	assert_int_equal(run(f, 0, 0x28, 0, 8, 1024, true), ISD_SAM_GOOD);
	assert_int_equal(run(f, 9, 0x00, 0, 0, 0, false), ISD_SAM_CHECK_CONDITION);
	assert_int_equal(run(f, 1, 0x00, 0, 0, 0, false), ISD_SAM_CHECK_CONDITION);
	assert_int_equal(run(f, 1, 0x2a, 0, 1, 512, false), ISD_SAM_CHECK_CONDITION);

	assert_int_equal(isd_ctl_prometheus(f->rt, &text, &len), 0);
	assert_non_null(text);
	assert_int_equal(strlen(text), len);
	check_well_formed(text);
	expect_line(text, "# TYPE iserd_lun_commands_total counter");
	expect_line(text, "iserd_lun_commands_total{" LBL ",lun=\"0\",dir=\"write\"} 1");
	expect_line(text, "iserd_lun_commands_total{" LBL ",lun=\"0\",dir=\"read\"} 2");
	expect_line(text, "iserd_lun_commands_total{" LBL ",lun=\"0\",dir=\"other\"} 1");
	expect_line(text, "iserd_lun_bytes_total{" LBL ",lun=\"0\",dir=\"write\"} 4096");
	expect_line(text, "iserd_lun_bytes_total{" LBL ",lun=\"0\",dir=\"read\"} 5120");
	expect_line(text, "iserd_lun_errors_total{" LBL ",lun=\"0\",class=\"unit_attention\"} 1");
	expect_line(text, "iserd_lun_errors_total{" LBL ",lun=\"1\",class=\"data_protect\"} 1");
	expect_line(text, "iserd_lun_in_flight{" LBL ",lun=\"0\"} 0");
	/* EXTENDED COPY bytes: by LUN and target, not by session */
	expect_line(text, "# TYPE iserd_lun_xcopy_bytes_total counter");
	expect_line(text, "iserd_lun_xcopy_bytes_total{" LBL ",lun=\"0\"} 0");
	expect_line(text, "iserd_target_xcopy_bytes_total{" LBL "} 0");
	assert_null(strstr(text, "iserd_session_xcopy_bytes_total"));
	expect_line(text, "# TYPE iserd_lun_latency_seconds histogram");
	expect_line(text, "iserd_lun_latency_seconds_bucket{" LBL ",lun=\"0\",le=\"+Inf\"} 4");
	expect_line(text, "iserd_lun_latency_seconds_count{" LBL ",lun=\"0\"} 4");
	assert_non_null(strstr(text, "iserd_lun_latency_seconds_bucket{" LBL
				     ",lun=\"0\",le=\"0.000001\"} "));
	assert_non_null(strstr(text, "iserd_lun_latency_seconds_bucket{" LBL
				     ",lun=\"0\",le=\"16.777216\"} "));
	expect_line(text, "iserd_lun_size_bytes{" LBL ",lun=\"1\"} 2097152");
	expect_line(text, "iserd_lun_block_size_bytes{" LBL ",lun=\"0\"} 512");
	expect_line(text, "iserd_lun_read_only{" LBL ",lun=\"1\"} 1");
	expect_line(text, "iserd_lun_read_only{" LBL ",lun=\"0\"} 0");
	/* the target: both LUNs and the one that does not exist */
	expect_line(text, "iserd_target_commands_total{" LBL ",dir=\"other\"} 3");
	expect_line(text, "iserd_target_commands_total{" LBL ",dir=\"write\"} 2");
	expect_line(text, "iserd_target_errors_total{" LBL ",class=\"illegal_request\"} 1");
	expect_line(text, "iserd_target_errors_total{" LBL ",class=\"unit_attention\"} 2");
	expect_line(text, "iserd_target_latency_seconds_count{" LBL "} 7");
	/* process counters and the datamovers' */
	expect_line(text, "iserd_sessions 0");
	expect_line(text, "iserd_refused_total{limit=\"sessions_per_target\"} 0");
	expect_line(text, "iserd_datamover_stat{datamover=\"tcp\",name=\"txq_drops\"} 0");
	expect_line(text, "# TYPE iserd_session_commands_total counter");

	if (access("/usr/bin/promtool", X_OK) == 0) {
		char path[] = "/tmp/iserd-prom-XXXXXX", cmd[128];
		int fd = mkstemp(path);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, text, len), (ssize_t)len);
		close(fd);
		snprintf(cmd, sizeof(cmd), "/usr/bin/promtool check metrics < %s", path);
		assert_int_equal(system(cmd), 0);
		unlink(path);
	}
	free(text);

	/* the ALUA state: only once the target has a group */
	{
		struct isd_scsi_alua_cfg a;

		assert_int_equal(isd_ctl_prometheus(f->rt, &text, &len), 0);
		assert_null(strstr(text, "iserd_lun_alua_state"));
		free(text);
		memset(&a, 0, sizeof(a));
		a.group = 4;
		assert_int_equal(isd_scsi_dev_set_alua(f->dev, &a), 0);
		assert_int_equal(isd_scsi_lu_set_alua_state(f->dev, 1, ISD_ALUA_TRANSITIONING), 0);
		assert_int_equal(isd_ctl_prometheus(f->rt, &text, &len), 0);
		check_well_formed(text);
		expect_line(text, "# TYPE iserd_lun_alua_state gauge");
		expect_line(text, "iserd_lun_alua_state{" LBL ",lun=\"0\",group=\"4\"} 0");
		expect_line(text, "iserd_lun_alua_state{" LBL ",lun=\"1\",group=\"4\"} 15");
		free(text);
		assert_int_equal(isd_scsi_dev_set_alua(f->dev, NULL), 0);
	}
}

static void
test_label_escape(void **state)
{
	char out[64];

	(void)state;
	isd_ctl_prom_label_escape(out, sizeof(out), "a\"b\\c\nd");
	assert_string_equal(out, "a\\\"b\\\\c\\nd");
	isd_ctl_prom_label_escape(out, sizeof(out), "x\x01y\x7f");
	assert_string_equal(out, "x\\\\x01y\\\\x7f");
	/* valid UTF-8 stays; a stray byte, an overlong form, a surrogate do not */
	isd_ctl_prom_label_escape(out, sizeof(out), "\xc3\xa9-\xff-\xc0\xaf-\xed\xa0\x80");
	assert_string_equal(out, "\xc3\xa9-\\\\xff-\\\\xc0\\\\xaf-\\\\xed\\\\xa0\\\\x80");
	/* cut whole: never half an escape */
	isd_ctl_prom_label_escape(out, 4, "ab\"c");
	assert_string_equal(out, "ab");
	isd_ctl_prom_label_escape(out, sizeof(out), NULL);
	assert_string_equal(out, "");
}

/* ---- the listener ---- */

static int
connect_to(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

/* Sends req, runs the reactor until the server closes; returns the status code. */
static int
http(struct fx *f, uint16_t port, const char *req, size_t req_len, char *body, size_t cap)
{
	char buf[1 << 16];
	size_t got = 0;
	int fd = connect_to(port), code = 0;

	if (req_len > 0)
		assert_int_equal(send(fd, req, req_len, 0), (ssize_t)req_len);
	for (int i = 0; i < 500; i++) {
		ssize_t n;

		assert_int_equal(isd_reactor_poll(f->r, 10), 0);
		n = recv(fd, buf + got, sizeof(buf) - 1 - got, MSG_DONTWAIT);
		if (n == 0)
			break;
		if (n > 0)
			got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	if (sscanf(buf, "HTTP/1.1 %d", &code) != 1)
		code = -1;
	if (body != NULL) {
		const char *b = strstr(buf, "\r\n\r\n");

		snprintf(body, cap, "%s", b != NULL ? b + 4 : "");
	}
	return code;
}

static void
test_http(void **state)
{
	struct fx *f = *state;
	struct isd_metrics_http *m;
	char err[256], *big, body[1 << 16];
	int idle[ISD_METRICS_MAX_CLIENTS];
	uint16_t port;

	assert_int_equal(isd_metrics_http_start(f->r, f->rt, "nonsense", &m, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "metrics_listen"));
	assert_int_equal(isd_metrics_http_start(f->r, f->rt, "127.0.0.1:0", &m, err, sizeof(err)),
			 0);
	port = isd_metrics_http_port(m);
	assert_int_not_equal(port, 0);

#define REQ(s) s, sizeof(s) - 1
	assert_int_equal(http(f, port, REQ("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), body,
			      sizeof(body)), 200);
	assert_non_null(strstr(body, "# TYPE iserd_lun_commands_total counter\n"));
	assert_int_equal(http(f, port, REQ("GET /metrics?x=1 HTTP/1.0\n\n"), NULL, 0), 200);
	assert_int_equal(http(f, port, REQ("GET / HTTP/1.1\r\n\r\n"), NULL, 0), 404);
	assert_int_equal(http(f, port, REQ("GET /metricsx HTTP/1.1\r\n\r\n"), NULL, 0), 404);
	assert_int_equal(http(f, port, REQ("POST /metrics HTTP/1.1\r\n\r\n"), NULL, 0), 405);
	assert_int_equal(http(f, port, REQ("HEAD /metrics HTTP/1.1\r\n\r\n"), NULL, 0), 405);
	assert_int_equal(http(f, port, REQ("GET /metrics HTTP/2.0\r\n\r\n"), NULL, 0), 400);
	assert_int_equal(http(f, port, REQ("GET  /metrics HTTP/1.1\r\n\r\n"), NULL, 0), 400);
	assert_int_equal(http(f, port, REQ("G\x01T /metrics HTTP/1.1\r\n\r\n"), NULL, 0), 400);
	assert_int_equal(http(f, port, REQ("GET /metrics\x00 HTTP/1.1\r\n\r\n"), NULL, 0), 400);
	assert_int_equal(http(f, port, REQ("hello\r\n\r\n"), NULL, 0), 400);
	big = malloc(ISD_METRICS_MAX_HEAD + 100);
	assert_non_null(big);
	memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
	memset(big + 26, 'a', ISD_METRICS_MAX_HEAD + 100 - 26);
	assert_int_equal(http(f, port, big, ISD_METRICS_MAX_HEAD + 100, NULL, 0), 431);
	free(big);

	/* every slot taken by a client that says nothing: the next one is turned away */
	for (int i = 0; i < ISD_METRICS_MAX_CLIENTS; i++) {
		idle[i] = connect_to(port);
		assert_int_equal(isd_reactor_poll(f->r, 10), 0);
	}
	assert_int_equal(http(f, port, REQ(""), NULL, 0), 503);
	/* a slot that frees is used again */
	close(idle[0]);
	for (int i = 0; i < 5; i++)
		assert_int_equal(isd_reactor_poll(f->r, 10), 0);
	assert_int_equal(http(f, port, REQ("GET /metrics HTTP/1.1\r\n\r\n"), NULL, 0), 200);
	for (int i = 1; i < ISD_METRICS_MAX_CLIENTS; i++)
		close(idle[i]);
	/* stop closes what is still open */
	idle[0] = connect_to(port);
	assert_int_equal(isd_reactor_poll(f->r, 10), 0);
	isd_metrics_http_stop(m);
	close(idle[0]);
	isd_metrics_http_stop(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exposition),
	    cmocka_unit_test(test_label_escape),
	    cmocka_unit_test(test_http),
	};

	return cmocka_run_group_tests(tests, fx_setup, fx_teardown);
}
