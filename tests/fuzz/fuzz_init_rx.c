/*
 * The initiator library's parsing of what a target sends (the target may be
 * hostile too): an initiator context on a socketpair receives the input as
 * the target's byte stream, either in full feature phase with SCSI reads and
 * writes, a discovery, a NOP and a TMF outstanding (Data-In, R2T, SCSI
 * Response with sense, Text Response, NOP-In, TMF Response, Reject, Async,
 * Logout Response), or during login (Login Responses: keys, CHAP challenge
 * and mutual CHAP answer, redirection). Two more modes feed sense data to
 * the sense decoder and text to the URL parser. Every submitted command must
 * complete exactly once, by the peer or by the teardown.
 *
 * Input (make_corpus.py writes seeds in this layout):
 *   [0] bit0-1 mode: 0 full feature phase, 1 login, 2 sense data, 3 URL;
 *       for 0 and 1: bit2 ImmediateData, bit3 InitialR2T, bit4-5
 *       MaxOutstandingR2T - 1, bit6 CHAP, bit7 mutual CHAP
 *   [1] login step (mode 1) / which requests to start (mode 0: bit0 discovery,
 *       bit1 NOP, bit2 LUN reset, bit3 abort task 0)
 *   [2] bytes written per iserd_service() call: 1 + 16 * [2]
 *   [3..] the target's byte stream (modes 0, 1) or the sense data / URL
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_input.h"
#include "initiator/init_int.h"

#define NSLOTS 6

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t g_sink;

struct slot {
	struct iserd_task t;
	uint8_t buf[8192];
	int done;
};

static int g_req_done;

static void
task_cb(struct iserd_context *ctx, int status, void *data, void *arg)
{
	struct slot *s = arg;
	char msg[256];

	(void)ctx;
	(void)status;
	if (data != &s->t)
		abort();
	s->done++;
	/* the words for whatever the target answered, sense included */
	g_sink += (uint64_t)iserd_task_result_str(&s->t, msg, sizeof(msg));
}

static void
req_cb(struct iserd_context *ctx, int status, void *data, void *arg)
{
	(void)ctx;
	(void)arg;
	g_req_done++;
	if (status == 0 && data != NULL && arg == (void *)&g_req_done)
		iserd_discovery_free(data);
}

static void
fuzz_sense(const uint8_t *data, size_t size)
{
	struct iserd_sense s;
	char buf[512];
	uint8_t *copy = malloc(size ? size : 1);

	if (copy == NULL)
		return;
	/* exact-size copy: a read past the sense data is an ASan report */
	memcpy(copy, data, size);
	if (iserd_sense_decode(copy, size, &s) == 0) {
		const char *asc = iserd_sense_asc_str(s.asc, s.ascq); /* NULL: not in the table */

		g_sink += (uint64_t)iserd_sense_format(&s, buf, sizeof(buf));
		g_sink += strlen(iserd_sense_key_str(s.key));
		g_sink += asc != NULL ? strlen(asc) : 0;
	}
	free(copy);
}

static void
fuzz_url(const uint8_t *data, size_t size)
{
	struct iserd_url u;
	char err[256];
	char *str = malloc(size + 1);

	if (str == NULL)
		return;
	memcpy(str, data, size);
	str[size] = '\0';
	if (iserd_url_parse_full(str, &u, err, sizeof(err)) == 0)
		g_sink += u.port + strlen(u.host) + strlen(u.target);
	if (iserd_url_parse_portal(str, &u, err, sizeof(err)) == 0)
		g_sink += u.port + strlen(u.host);
	g_sink += strlen(err);
	free(str);
}

/* A context in the given state on fd, the way iserd_connect_async leaves it. */
static struct iserd_context *
make_ctx(int fd, enum isd_ictx_state st, uint8_t cfg, uint8_t step)
{
	struct iserd_context *pub;
	struct isd_ictx *c;

	if (iserd_context_create(NULL, &pub) != 0)
		abort();
	c = &pub->c;
	if (iserd_set_queue_depth(pub, 8) != 0 || isd_init_slots_alloc(c) != 0)
		abort();
	c->stype = ISERD_SESSION_NORMAL;
	snprintf(c->url.host, sizeof(c->url.host), "peer");
	snprintf(c->url.target, sizeof(c->url.target), "iqn.2026-11.org.test:t");
	isd_params_init_defaults(&c->params);
	c->params.max_recv_dsl = ISD_INIT_MAX_RECV_DSL;
	c->params.max_xmit_dsl = 8192;
	c->params.immediate_data = (cfg & 4) != 0;
	c->params.initial_r2t = (cfg & 8) != 0;
	c->params.max_outstanding_r2t = 1 + ((cfg >> 4) & 3);
	c->cmdsn = 1;
	c->exp_cmdsn = 1;
	c->max_cmdsn = 64;
	c->ever_logged_in = true;
	c->state = st;
	if (cfg & 0x40)
		iserd_set_chap(pub, "user", "secretsecret");
	if (cfg & 0x80)
		iserd_set_mutual_chap(pub, "tgt", "tgtsecretsecret");
	if (st == ISD_ICTX_LOGIN) {
		c->login_itt = 0x80000001u;
		c->lstep = (enum isd_login_step)(step % 4);
		c->login_csg = c->lstep == ISD_LS_OPERATIONAL ? 1 : 0;
		c->login_deadline_ns = isd_init_now_ns() + 60000000000ull;
	}
	if (isd_init_x_adopt_tcp(c, fd) < 0)
		abort();
	return pub;
}

static void
drain(int fd)
{
	uint8_t junk[65536];

	while (read(fd, junk, sizeof(junk)) > 0)
		;
}

static void
fuzz_stream(uint8_t cfg, uint8_t step, size_t chunk, const uint8_t *data, size_t size)
{
	bool login = (cfg & 3) == 1;
	struct slot *slots = calloc(NSLOTS, sizeof(*slots));
	struct iserd_context *pub;
	size_t off = 0;
	int sv[2], i, stalls = 0;

	if (slots == NULL)
		return;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
		abort();
	pub = make_ctx(sv[0], login ? ISD_ICTX_LOGIN : ISD_ICTX_FFP, cfg, step);
	g_req_done = 0;
	if (!login) {
		for (i = 0; i < NSLOTS; i++) {
			struct iserd_task *t = &slots[i].t;

			if (i % 2)
				iserd_task_read16(t, 0, (uint64_t)i * 16, 16, 512, slots[i].buf);
			else
				iserd_task_write16(t, 0, (uint64_t)i * 16, 16, 512, slots[i].buf,
						   false);
			if (iserd_task_submit(pub, t, task_cb, &slots[i]) != 0)
				abort();
		}
		if (step & 1)
			(void)iserd_discover_async(pub, req_cb, &g_req_done);
		if (step & 2)
			(void)iserd_nop_async(pub, req_cb, NULL);
		if (step & 4)
			(void)iserd_lun_reset_async(pub, 0, req_cb, NULL);
		if (step & 8)
			(void)iserd_task_abort_async(pub, &slots[0].t, req_cb, NULL);
	}
	/* stop when the context has stopped reading (a few rounds without progress) */
	while (off < size && iserd_get_fd(pub) >= 0 && stalls < 8) {
		size_t n = size - off < chunk ? size - off : chunk;
		ssize_t w = write(sv[1], data + off, n);

		if (w > 0) {
			off += (size_t)w;
			stalls = 0;
		} else {
			stalls++;
		}
		if (iserd_service(pub, POLLIN | POLLOUT) < 0)
			break;
		drain(sv[1]);
	}
	if (iserd_get_fd(pub) >= 0)
		(void)iserd_service(pub, POLLIN | POLLOUT);
	iserd_context_destroy(pub);
	/* every command completed exactly once, by the peer or by the teardown */
	for (i = 0; i < (login ? 0 : NSLOTS); i++)
		if (slots[i].done != 1)
			abort();
	close(sv[1]);
	free(slots);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz z;
	uint8_t cfg, step, chunk;
	const uint8_t *rest;
	size_t n;

	if (size > (1u << 20))
		return 0;
	fz_init(&z, data, size);
	cfg = fz_u8(&z);
	step = fz_u8(&z);
	chunk = fz_u8(&z);
	n = fz_take(&z, z.left, &rest);
	switch (cfg & 3) {
	case 2:
		fuzz_sense(rest, n);
		break;
	case 3:
		fuzz_url(rest, n);
		break;
	default:
		fuzz_stream(cfg, step, 1 + 16 * (size_t)chunk, rest, n);
		break;
	}
	return 0;
}
