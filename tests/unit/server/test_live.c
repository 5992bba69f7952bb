/*
 * Live changes to a running target (live.h) against the real core, SCSI layer
 * and stores, with sessions through the fake datamover: target add/remove
 * (refused with a session, forced: Async logout request, then freed), LUN
 * add/remove (unit attention, a command in flight finishes first), resize,
 * read-only, ACL and CHAP for new logins only, session logout and connection
 * drop, and isd_live_apply() on pairs of models.
 */
#include <errno.h>
#include <fcntl.h>
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

#include "fake_dm.h"
#include "iscsi/iscsi.h"
#include "iscsi/pdu.h"
#include "reactor/reactor.h"
#include "scsi/scsi.h"
#include "server/live.h"
#include "server/running_int.h"
#include "util/endian.h"
#include "util/log.h"

#define TA "iqn.2026-11.org.iserd:a"
#define TB "iqn.2026-11.org.iserd:b"
#define TC "iqn.2026-11.org.iserd:c"
#define INAME "iqn.1993-08.org.debian:01:live"
#define OTHER "iqn.1993-08.org.debian:01:other"

struct sess {
	struct fake_dm fd;
	uint16_t tsih;
	uint32_t cmdsn;
	uint32_t itt;
	bool up;
};

struct fx {
	struct isd_reactor *r;
	struct isd_target_running *rt;
	struct sess a;                  /* logged in to TA */
	struct sess b;                  /* logged in to TB */
	char err[1024];
	char tmp[64];                   /* a file LUN's path, "" for none */
};

static const uint8_t g_isid_a[6] = {0x80, 0, 0, 0, 0, 1};
static const uint8_t g_isid_b[6] = {0x80, 0, 0, 0, 0, 2};
static const uint8_t g_isid_c[6] = {0x80, 0, 0, 0, 0, 3};

static void
poll_ms(struct fx *f, int ms)
{
	for (int i = 0; i < ms; i++)
		isd_reactor_poll(f->r, 1);
}

static struct isd_pdu *
wait_pdu(struct fx *f, struct sess *s)
{
	for (int i = 0; i < 300 && TAILQ_EMPTY(&s->fd.sent); i++)
		isd_reactor_poll(f->r, 1);
	return fake_dm_pop(&s->fd);
}

static int
sess_login(struct fx *f, struct sess *s, const char *iname, const char *target,
	   const uint8_t *isid)
{
	int st;

	fake_dm_init(&s->fd);
	assert_int_equal(fake_dm_connect(&s->fd, isd_target_core(f->rt), f->r, 1), 0);
	s->cmdsn = 10;
	s->itt = 1;
	st = fake_dm_login(&s->fd, iname, target, isid, s->cmdsn, &s->tsih);
	s->up = st == 0;
	return st;
}

/* Ends a connection the test made (logged in or refused) and frees the fake. */
static void
sess_end(struct fx *f, struct sess *s)
{
	if (s->fd.conn != NULL)
		fake_dm_terminate_notify(&s->fd, true);
	poll_ms(f, 5);
	fake_dm_fini(&s->fd);
	memset(s, 0, sizeof(*s));
}

/* A command without data; returns status, sense key/ASC/ASCQ in *sk (key << 16 | asc_ascq). */
static int
scsi_cmd(struct fx *f, struct sess *s, uint32_t lun, const uint8_t *cdb, uint32_t edtl,
	 bool read, uint32_t *sk, uint8_t *data, uint32_t *len)
{
	uint8_t bhs[ISD_BHS_LEN];
	struct isd_pdu *rsp;
	int status;

	memset(bhs, 0, sizeof(bhs));
	bhs[0] = ISD_OP_SCSI_CMD;
	bhs[1] = ISD_BHS_F | (read ? ISD_CMD_R : 0) | 1;
	put_be64(bhs + 8, isd_scsi_lun_encode(lun));
	put_be32(bhs + 16, s->itt++);
	put_be32(bhs + 20, edtl);
	put_be32(bhs + 24, s->cmdsn++);
	memcpy(bhs + 32, cdb, 16);
	fake_dm_inject(&s->fd, bhs, NULL, 0);
	if (read && s->fd.n_xfers > 0 && len != NULL) {
		/* data-in goes by put_data: complete it */
		assert_int_equal(fake_dm_complete(&s->fd, NULL, 0), 0);
	}
	rsp = wait_pdu(f, s);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_SCSI_RSP);
	status = rsp->bhs[3];
	if (sk != NULL) {
		*sk = 0;
		if (status == ISD_SAM_CHECK_CONDITION && rsp->data_len >= 16) {
			const uint8_t *sense = rsp->data + 2;

			*sk = (uint32_t)(sense[2] & 0xf) << 16 | (uint32_t)sense[12] << 8 | sense[13];
		}
	}
	if (data != NULL && len != NULL) {
		uint32_t n = s->fd.read_len < *len ? s->fd.read_len : *len;

		if (n > 0)
			memcpy(data, s->fd.read_data, n);
		*len = n;
		free(s->fd.read_data);
		s->fd.read_data = NULL;
		s->fd.read_len = 0;
	}
	isd_pdu_free(rsp);
	return status;
}

static int
tur(struct fx *f, struct sess *s, uint32_t lun, uint32_t *sk)
{
	uint8_t cdb[16] = {0};

	return scsi_cmd(f, s, lun, cdb, 0, false, sk, NULL, NULL);
}

/* TEST UNIT READY until GOOD, taking the unit attentions queued; returns how many. */
static int
drain_ua(struct fx *f, struct sess *s, uint32_t lun)
{
	uint32_t sk;
	int n = 0;

	while (tur(f, s, lun, &sk) == ISD_SAM_CHECK_CONDITION) {
		assert_int_equal(sk >> 16, ISD_SK_UNIT_ATTENTION);
		n++;
		assert_true(n < 8);
	}
	return n;
}

/* READ CAPACITY(10): the last LBA + 1 blocks of 512 bytes, in bytes. */
static uint64_t
capacity(struct fx *f, struct sess *s, uint32_t lun)
{
	uint8_t cdb[16] = {0x25}, d[8];
	uint32_t len = sizeof(d);

	assert_int_equal(scsi_cmd(f, s, lun, cdb, 8, true, NULL, d, &len), ISD_SAM_GOOD);
	assert_int_equal(len, 8);
	return ((uint64_t)get_be32(d) + 1) * get_be32(d + 4);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct isd_target_cfg cfg;
	char *argv[] = {"iserd", "--portal", "tcp://127.0.0.1:0", "--target", TA, "--lun",
			"ram:1M", "--target", TB, "--lun", "ram:1M", NULL};

	assert_non_null(f);
	isd_log_set_level(ISD_LOG_WARN);
	isd_target_cfg_init(&cfg);
	assert_int_equal(isd_target_cfg_parse_args(11, argv, &cfg, f->err, sizeof(f->err)), 0);
	cfg.nop_interval_ms = 0;
	cfg.logout_timeout_ms = 100;
	assert_int_equal(isd_reactor_create(&f->r), 0);
	if (isd_target_start(&cfg, f->r, &f->rt, f->err, sizeof(f->err)) != 0)
		fail_msg("start: %s", f->err);
	isd_target_cfg_fini(&cfg);
	assert_int_equal(sess_login(f, &f->a, INAME, TA, g_isid_a), 0);
	assert_int_equal(sess_login(f, &f->b, INAME, TB, g_isid_b), 0);
	drain_ua(f, &f->a, 0);
	drain_ua(f, &f->b, 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	struct isd_iscsi_stats st;
	bool done = false;

	if (f->a.up || f->a.fd.conn != NULL)
		sess_end(f, &f->a);
	if (f->b.up || f->b.fd.conn != NULL)
		sess_end(f, &f->b);
	poll_ms(f, 5);
	isd_target_get_stats(f->rt, &st);
	assert_int_equal(st.connections, 0);
	assert_int_equal(st.sessions, 0);
	assert_int_equal(st.tasks, 0);
	/* removed targets are gone once their last connection is */
	assert_true(TAILQ_EMPTY(&f->rt->removed));
	isd_target_shutdown(f->rt, NULL, &done);
	poll_ms(f, 5);
	isd_target_stop(f->rt);
	isd_reactor_destroy(f->r);
	if (f->tmp[0] != '\0')
		unlink(f->tmp);
	free(f);
	return 0;
}

static const struct isd_target_node_cfg *
model_node(struct fx *f, const char *name)
{
	const struct isd_target_cfg *c = isd_target_running_cfg(f->rt);

	for (int i = 0; i < c->node_count; i++)
		if (strcmp(c->nodes[i].name, name) == 0)
			return &c->nodes[i];
	return NULL;
}

/* ---- targets ---- */

static void
test_target_add(void **state)
{
	struct fx *f = *state;
	struct isd_target_node_cfg nc;
	struct isd_target_lun_cfg l;
	struct sess c;

	memset(&nc, 0, sizeof(nc));
	snprintf(nc.name, sizeof(nc.name), "%s", TC);
	nc.tpgt = -1;
	nc.neg = model_node(f, TA)->neg;
	memset(&l, 0, sizeof(l));
	assert_int_equal(isd_target_lun_spec_parse("zero:4M", &l, f->err, sizeof(f->err)), 0);
	nc.luns = &l;
	nc.lun_count = 1;
	assert_int_equal(isd_live_target_add(f->rt, &nc, f->err, sizeof(f->err)), 0);
	assert_non_null(model_node(f, TC));
	assert_int_equal(isd_target_running_cfg(f->rt)->node_count, 3);
	/* twice: refused, nothing changed */
	assert_int_equal(isd_live_target_add(f->rt, &nc, f->err, sizeof(f->err)), -EEXIST);
	assert_non_null(strstr(f->err, "exists"));
	assert_int_equal(isd_target_running_cfg(f->rt)->node_count, 3);
	/* a bad one: no LUN; nothing changed */
	nc.lun_count = 0;
	snprintf(nc.name, sizeof(nc.name), "iqn.2026-11.org.iserd:d");
	assert_int_equal(isd_live_target_add(f->rt, &nc, f->err, sizeof(f->err)), -EINVAL);
	assert_non_null(strstr(f->err, "no LUNs"));
	assert_null(model_node(f, "iqn.2026-11.org.iserd:d"));
	/* the new target takes logins, the others never noticed */
	assert_int_equal(sess_login(f, &c, INAME, TC, g_isid_c), 0);
	drain_ua(f, &c, 0);
	assert_int_equal(capacity(f, &c, 0), 4u << 20);
	sess_end(f, &c);
	assert_int_equal(tur(f, &f->a, 0, NULL), ISD_SAM_GOOD);
	assert_int_equal(f->b.fd.n_sent, 0);
}

static void
test_target_remove_refused_then_forced(void **state)
{
	struct fx *f = *state;
	uint8_t bhs[ISD_BHS_LEN];
	struct isd_pdu *pdu;
	struct sess c;

	assert_int_equal(isd_live_target_remove(f->rt, TA, false, f->err, sizeof(f->err)), -EBUSY);
	assert_non_null(strstr(f->err, "1 session"));
	assert_non_null(model_node(f, TA));
	assert_int_equal(isd_live_target_remove(f->rt, "iqn.2026-11.org.iserd:nope", true, f->err,
						sizeof(f->err)),
			 -ENOENT);
	assert_int_equal(isd_live_target_remove(f->rt, TA, true, f->err, sizeof(f->err)), 0);
	assert_null(model_node(f, TA));
	/* the session is asked to log out within the logout timeout (RFC 7143 §11.9.1) */
	pdu = fake_dm_pop(&f->a.fd);
	assert_non_null(pdu);
	assert_int_equal(isd_bhs_opcode(pdu->bhs), ISD_OP_ASYNC_MSG);
	assert_int_equal(pdu->bhs[36], 1);
	assert_int_equal(get_be16(pdu->bhs + 42), 1);
	assert_int_equal(get_be32(pdu->bhs + 16), 0xffffffffu);
	isd_pdu_free(pdu);
	/* new logins to it fail at once */
	assert_int_equal(sess_login(f, &c, INAME, TA, g_isid_c), ISD_LOGIN_STATUS_TGT_NOT_FOUND);
	sess_end(f, &c);
	/* the node lives while the session does, and I/O still completes */
	assert_false(TAILQ_EMPTY(&f->rt->removed));
	assert_int_equal(tur(f, &f->a, 0, NULL), ISD_SAM_GOOD);
	/* it logs out as asked */
	memset(bhs, 0, sizeof(bhs));
	bhs[0] = ISD_OP_LOGOUT_REQ | ISD_BHS_I;
	bhs[1] = ISD_BHS_F | ISD_LOGOUT_CLOSE_SESSION;
	put_be32(bhs + 16, 0x777);
	put_be32(bhs + 24, f->a.cmdsn);
	fake_dm_inject(&f->a.fd, bhs, NULL, 0);
	pdu = fake_dm_pop(&f->a.fd);
	assert_non_null(pdu);
	assert_int_equal(isd_bhs_opcode(pdu->bhs), ISD_OP_LOGOUT_RSP);
	isd_pdu_free(pdu);
	assert_true(f->a.fd.terminate_called);
	sess_end(f, &f->a);
	poll_ms(f, 5);
	assert_true(TAILQ_EMPTY(&f->rt->removed));
	/* TB never noticed */
	assert_int_equal(f->b.fd.n_sent, 0);
	assert_int_equal(tur(f, &f->b, 0, NULL), ISD_SAM_GOOD);
}

static void
test_target_remove_logout_timeout(void **state)
{
	struct fx *f = *state;

	assert_int_equal(isd_live_target_remove(f->rt, TA, true, f->err, sizeof(f->err)), 0);
	fake_dm_drop_sent(&f->a.fd);
	/* the initiator ignores the request: closed after the logout timeout (100 ms) */
	assert_false(f->a.fd.terminate_called);
	for (int i = 0; i < 1000 && !f->a.fd.terminate_called; i++)
		isd_reactor_poll(f->r, 1);
	assert_true(f->a.fd.terminate_called);
	sess_end(f, &f->a);
	poll_ms(f, 5);
	assert_true(TAILQ_EMPTY(&f->rt->removed));
	assert_false(f->b.fd.terminate_called);
}

static void
test_target_remove_idle_freed_at_once(void **state)
{
	struct fx *f = *state;

	sess_end(f, &f->b);
	assert_int_equal(isd_live_target_remove(f->rt, TB, false, f->err, sizeof(f->err)), 0);
	poll_ms(f, 2);
	assert_true(TAILQ_EMPTY(&f->rt->removed));
	/* the last target cannot go: the model would not load */
	assert_int_equal(isd_live_target_remove(f->rt, TA, true, f->err, sizeof(f->err)),
			 -EINVAL);
	assert_non_null(strstr(f->err, "no targets"));
	assert_non_null(model_node(f, TA));
	assert_int_equal(tur(f, &f->a, 0, NULL), ISD_SAM_GOOD);
}

/* ---- LUNs ---- */

static void
test_lun_add_remove(void **state)
{
	struct fx *f = *state;
	struct isd_target_lun_cfg l;
	uint8_t cdb[16] = {0}, bhs[ISD_BHS_LEN], rl[64];
	uint32_t sk, len = sizeof(rl);
	struct isd_pdu *rsp;

	/* a physical block that is no power-of-two multiple of the logical one: refused */
	memset(&l, 0, sizeof(l));
	assert_int_equal(isd_target_lun_spec_parse("ram:2M,physical_block_size=1536", &l, f->err,
						   sizeof(f->err)),
			 0);
	l.number = 1;
	assert_int_equal(isd_live_lun_add(f->rt, TA, &l, f->err, sizeof(f->err)), -EINVAL);
	assert_non_null(strstr(f->err, "physical_block_size 1536"));
	memset(&l, 0, sizeof(l));
	assert_int_equal(isd_target_lun_spec_parse("ram:2M", &l, f->err, sizeof(f->err)), 0);
	l.number = 1;
	assert_int_equal(isd_live_lun_add(f->rt, TA, &l, f->err, sizeof(f->err)), 0);
	assert_int_equal(isd_live_lun_add(f->rt, TA, &l, f->err, sizeof(f->err)), -EEXIST);
	assert_int_equal(model_node(f, TA)->lun_count, 2);
	/* the session hears of it on LUN 0 */
	assert_int_equal(tur(f, &f->a, 0, &sk), ISD_SAM_CHECK_CONDITION);
	assert_int_equal(sk, (uint32_t)ISD_SK_UNIT_ATTENTION << 16 | 0x3f0e);
	assert_int_equal(tur(f, &f->a, 0, NULL), ISD_SAM_GOOD);
	cdb[0] = 0xa0;          /* REPORT LUNS */
	put_be32(cdb + 6, sizeof(rl));
	assert_int_equal(scsi_cmd(f, &f->a, 0, cdb, sizeof(rl), true, NULL, rl, &len),
			 ISD_SAM_GOOD);
	assert_int_equal(get_be32(rl), 16);
	{
		struct isd_live_lun_stats ls[4];

		assert_int_equal(isd_live_lun_stats(f->rt, TA, ls, 4), 2);
		assert_string_equal(ls[1].spec, "ram:2M");
		assert_int_equal(ls[1].size, 2u << 20);
	}
	drain_ua(f, &f->a, 1);
	assert_int_equal(capacity(f, &f->a, 1), 2u << 20);
	/* TB's session saw nothing */
	assert_int_equal(tur(f, &f->b, 0, NULL), ISD_SAM_GOOD);

	/* a WRITE to LUN 1 waiting for its data when the LUN goes */
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0x2a;
	put_be16(cdb + 7, 2);
	memset(bhs, 0, sizeof(bhs));
	bhs[0] = ISD_OP_SCSI_CMD;
	bhs[1] = ISD_BHS_F | ISD_CMD_W | 1;
	put_be64(bhs + 8, isd_scsi_lun_encode(1));
	put_be32(bhs + 16, 0x500);
	put_be32(bhs + 20, 1024);
	put_be32(bhs + 24, f->a.cmdsn++);
	memcpy(bhs + 32, cdb, 16);
	fake_dm_inject(&f->a.fd, bhs, NULL, 0);
	assert_int_equal(f->a.fd.n_xfers, 1);
	assert_int_equal(isd_live_lun_remove(f->rt, TA, 1, f->err, sizeof(f->err)), 0);
	assert_int_equal(isd_live_lun_remove(f->rt, TA, 1, f->err, sizeof(f->err)), -ENOENT);
	assert_non_null(strstr(f->err, "no LUN 1"));
	assert_int_equal(model_node(f, TA)->lun_count, 1);
	/* new commands to it fail at once */
	assert_int_equal(tur(f, &f->a, 1, &sk), ISD_SAM_CHECK_CONDITION);
	assert_int_equal(sk, (uint32_t)ISD_SK_ILLEGAL_REQUEST << 16 | 0x2500);
	/* the one in flight finishes on the store, still open */
	{
		uint8_t data[1024];

		memset(data, 0x5a, sizeof(data));
		assert_int_equal(fake_dm_complete(&f->a.fd, data, 0), 0);
	}
	rsp = wait_pdu(f, &f->a);
	assert_non_null(rsp);
	assert_int_equal(isd_bhs_opcode(rsp->bhs), ISD_OP_SCSI_RSP);
	assert_int_equal(rsp->bhs[3], ISD_SAM_GOOD);
	isd_pdu_free(rsp);
	/* LUN 0 reports the removal too */
	assert_int_equal(tur(f, &f->a, 0, &sk), ISD_SAM_CHECK_CONDITION);
	assert_int_equal(sk, (uint32_t)ISD_SK_UNIT_ATTENTION << 16 | 0x3f0e);
	/* the last LUN cannot go */
	assert_int_equal(isd_live_lun_remove(f->rt, TA, 0, f->err, sizeof(f->err)), -EINVAL);
	assert_non_null(strstr(f->err, "no LUNs"));
	assert_int_equal(tur(f, &f->a, 0, NULL), ISD_SAM_GOOD);
}

static void
test_lun_resize(void **state)
{
	struct fx *f = *state;
	struct isd_target_lun_cfg l;
	char spec[128];
	uint32_t sk;
	struct stat st;
	int fd;

	/* ram cannot change size: said so, nothing changed */
	assert_int_equal(isd_live_lun_resize(f->rt, TA, 0, 2u << 20, f->err, sizeof(f->err)),
			 -ENOTSUP);
	assert_non_null(strstr(f->err, "cannot change while it runs"));
	assert_string_equal(model_node(f, TA)->luns[0].spec, "ram:1M");
	assert_int_equal(tur(f, &f->a, 0, NULL), ISD_SAM_GOOD);

	/* zero: any size; CAPACITY DATA HAS CHANGED */
	memset(&l, 0, sizeof(l));
	assert_int_equal(isd_target_lun_spec_parse("zero:1M", &l, f->err, sizeof(f->err)), 0);
	l.number = 2;
	assert_int_equal(isd_live_lun_add(f->rt, TA, &l, f->err, sizeof(f->err)), 0);
	drain_ua(f, &f->a, 2);
	assert_int_equal(isd_live_lun_resize(f->rt, TA, 2, 1000, f->err, sizeof(f->err)), -EINVAL);
	assert_int_equal(isd_live_lun_resize(f->rt, TA, 2, 3u << 20, f->err, sizeof(f->err)), 0);
	assert_int_equal(tur(f, &f->a, 2, &sk), ISD_SAM_CHECK_CONDITION);
	assert_int_equal(sk, (uint32_t)ISD_SK_UNIT_ATTENTION << 16 | 0x2a09);
	assert_int_equal(capacity(f, &f->a, 2), 3u << 20);
	assert_string_equal(model_node(f, TA)->luns[1].spec, "zero:3M");

	/* file: grows the file; a smaller size leaves the file alone */
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/iserd-live-XXXXXX");
	fd = mkstemp(f->tmp);
	assert_true(fd >= 0);
	close(fd);
	snprintf(spec, sizeof(spec), "file:%s,size=1M", f->tmp);
	memset(&l, 0, sizeof(l));
	assert_int_equal(isd_target_lun_spec_parse(spec, &l, f->err, sizeof(f->err)), 0);
	l.number = 3;
	assert_int_equal(isd_live_lun_add(f->rt, TA, &l, f->err, sizeof(f->err)), 0);
	drain_ua(f, &f->a, 3);
	assert_int_equal(isd_live_lun_resize(f->rt, TA, 3, 2u << 20, f->err, sizeof(f->err)), 0);
	assert_int_equal(stat(f->tmp, &st), 0);
	assert_int_equal(st.st_size, 2u << 20);
	drain_ua(f, &f->a, 3);
	assert_int_equal(capacity(f, &f->a, 3), 2u << 20);
	assert_int_equal(isd_live_lun_resize(f->rt, TA, 3, 512u << 10, f->err, sizeof(f->err)), 0);
	assert_int_equal(stat(f->tmp, &st), 0);
	assert_int_equal(st.st_size, 2u << 20);
	drain_ua(f, &f->a, 3);
	assert_int_equal(capacity(f, &f->a, 3), 512u << 10);
	snprintf(spec, sizeof(spec), "file:%s,size=512K", f->tmp);
	assert_string_equal(model_node(f, TA)->luns[2].spec, spec);
	assert_int_equal(isd_live_lun_resize(f->rt, TA, 9, 1u << 20, f->err, sizeof(f->err)),
			 -ENOENT);
	assert_int_equal(f->b.fd.n_sent, 0);
}

static void
test_lun_read_only(void **state)
{
	struct fx *f = *state;
	uint8_t cdb[16] = {0x2a}, bhs[ISD_BHS_LEN], data[512];
	struct isd_pdu *rsp;

	assert_int_equal(isd_live_lun_set_read_only(f->rt, TA, 0, true, f->err, sizeof(f->err)), 0);
	assert_true(model_node(f, TA)->luns[0].read_only);
	put_be16(cdb + 7, 1);
	memset(bhs, 0, sizeof(bhs));
	bhs[0] = ISD_OP_SCSI_CMD;
	bhs[1] = ISD_BHS_F | ISD_CMD_W | 1;
	put_be32(bhs + 16, 0x600);
	put_be32(bhs + 20, 512);
	put_be32(bhs + 24, f->a.cmdsn++);
	memcpy(bhs + 32, cdb, 16);
	memset(data, 1, sizeof(data));
	fake_dm_inject(&f->a.fd, bhs, data, sizeof(data));
	rsp = wait_pdu(f, &f->a);
	assert_non_null(rsp);
	assert_int_equal(rsp->bhs[3], ISD_SAM_CHECK_CONDITION);
	assert_int_equal(rsp->data[2 + 2] & 0xf, ISD_SK_DATA_PROTECT);
	isd_pdu_free(rsp);
	assert_int_equal(isd_live_lun_set_read_only(f->rt, TA, 0, false, f->err, sizeof(f->err)), 0);
	assert_false(model_node(f, TA)->luns[0].read_only);
	put_be32(bhs + 16, 0x601);
	put_be32(bhs + 24, f->a.cmdsn++);
	fake_dm_inject(&f->a.fd, bhs, data, sizeof(data));
	rsp = wait_pdu(f, &f->a);
	assert_non_null(rsp);
	assert_int_equal(rsp->bhs[3], ISD_SAM_GOOD);
	isd_pdu_free(rsp);
	assert_int_equal(isd_live_lun_set_read_only(f->rt, TA, 7, true, f->err, sizeof(f->err)),
			 -ENOENT);
}

/* ---- ACLs and CHAP ---- */

static void
test_acl_and_chap_new_logins_only(void **state)
{
	struct fx *f = *state;
	struct isd_target_ini_cfg ini;
	struct isd_auth_cfg auth;
	struct sess c;

	memset(&ini, 0, sizeof(ini));
	snprintf(ini.name, sizeof(ini.name), "%s", OTHER);
	assert_int_equal(isd_live_acl_add(f->rt, TA, &ini, f->err, sizeof(f->err)), 0);
	assert_int_equal(isd_live_acl_add(f->rt, TA, &ini, f->err, sizeof(f->err)), -EEXIST);
	snprintf(ini.name, sizeof(ini.name), "not a name");
	assert_int_equal(isd_live_acl_add(f->rt, TA, &ini, f->err, sizeof(f->err)), -EINVAL);
	assert_int_equal(model_node(f, TA)->acl_count, 1);
	/* INAME is no longer allowed: new logins refused, its session stays */
	assert_int_equal(sess_login(f, &c, INAME, TA, g_isid_c), ISD_LOGIN_STATUS_TGT_FORBIDDEN);
	sess_end(f, &c);
	assert_int_equal(tur(f, &f->a, 0, NULL), ISD_SAM_GOOD);
	assert_int_equal(sess_login(f, &c, OTHER, TA, g_isid_c), 0);
	sess_end(f, &c);
	/* per-initiator CHAP: a short secret is refused, nothing changed */
	memset(&auth, 0, sizeof(auth));
	auth.require_chap = true;
	snprintf(auth.chap.user, sizeof(auth.chap.user), "u");
	snprintf(auth.chap.secret, sizeof(auth.chap.secret), "tiny");
	assert_int_equal(isd_live_acl_set_auth(f->rt, TA, OTHER, &auth, f->err, sizeof(f->err)),
			 -EINVAL);
	assert_non_null(strstr(f->err, "secret"));
	assert_null(strstr(f->err, "tiny"));
	assert_int_equal(model_node(f, TA)->ini_count, 0);
	snprintf(auth.chap.secret, sizeof(auth.chap.secret), "a-long-enough-secret");
	assert_int_equal(isd_live_acl_set_auth(f->rt, TA, OTHER, &auth, f->err, sizeof(f->err)), 0);
	assert_int_equal(model_node(f, TA)->ini_count, 1);
	/* OTHER now needs CHAP: a login without it fails */
	assert_int_not_equal(sess_login(f, &c, OTHER, TA, g_isid_c), 0);
	sess_end(f, &c);
	/* cleared again */
	memset(&auth, 0, sizeof(auth));
	assert_int_equal(isd_live_acl_set_auth(f->rt, TA, OTHER, &auth, f->err, sizeof(f->err)), 0);
	assert_int_equal(model_node(f, TA)->ini_count, 0);
	assert_int_equal(sess_login(f, &c, OTHER, TA, g_isid_c), 0);
	sess_end(f, &c);
	/* the target's own CHAP */
	auth.require_chap = true;
	snprintf(auth.chap.user, sizeof(auth.chap.user), "t");
	snprintf(auth.chap.secret, sizeof(auth.chap.secret), "target-secret-1");
	assert_int_equal(isd_live_target_set_auth(f->rt, TA, &auth, f->err, sizeof(f->err)), 0);
	assert_true(model_node(f, TA)->auth.require_chap);
	assert_int_not_equal(sess_login(f, &c, OTHER, TA, g_isid_c), 0);
	sess_end(f, &c);
	/* remove the ACL entry: OTHER refused; the ACL is empty: everyone (with CHAP) */
	assert_int_equal(isd_live_acl_remove(f->rt, TA, OTHER, f->err, sizeof(f->err)), 0);
	assert_int_equal(isd_live_acl_remove(f->rt, TA, OTHER, f->err, sizeof(f->err)), -ENOENT);
	assert_int_equal(model_node(f, TA)->acl_count, 0);
	/* discovery CHAP */
	assert_int_equal(isd_live_discovery_set_auth(f->rt, &auth, f->err, sizeof(f->err)), 0);
	assert_true(isd_target_running_cfg(f->rt)->discovery_auth.require_chap);
	assert_int_not_equal(sess_login(f, &c, OTHER, NULL, g_isid_c), 0);
	sess_end(f, &c);
	/* all the while the session stayed */
	assert_int_equal(tur(f, &f->a, 0, NULL), ISD_SAM_GOOD);
	assert_int_equal(f->b.fd.n_sent, 0);
}

/* ---- sessions ---- */

static void
test_session_logout_and_drop(void **state)
{
	struct fx *f = *state;
	struct isd_pdu *pdu;

	assert_int_equal(isd_live_session_logout(f->rt, (uint16_t)(f->a.tsih + 1000), f->err,
						 sizeof(f->err)),
			 -ENOENT);
	assert_int_equal(isd_live_session_logout(f->rt, f->a.tsih, f->err, sizeof(f->err)), 0);
	pdu = fake_dm_pop(&f->a.fd);
	assert_non_null(pdu);
	assert_int_equal(isd_bhs_opcode(pdu->bhs), ISD_OP_ASYNC_MSG);
	assert_int_equal(pdu->bhs[36], 1);
	isd_pdu_free(pdu);
	assert_int_equal(isd_live_conn_drop(f->rt, f->b.tsih, 7, f->err, sizeof(f->err)), -ENOENT);
	assert_int_equal(isd_live_conn_drop(f->rt, f->b.tsih, 0, f->err, sizeof(f->err)), 0);
	assert_true(f->b.fd.terminate_called);
	assert_false(f->a.fd.terminate_called);
}

/* ---- reload ---- */

static void
copy_running(struct fx *f, struct isd_target_cfg *next)
{
	assert_int_equal(isd_target_cfg_copy(next, isd_target_running_cfg(f->rt)), 0);
}

static struct isd_target_node_cfg *
next_node(struct isd_target_cfg *c, const char *name)
{
	for (int i = 0; i < c->node_count; i++)
		if (strcmp(c->nodes[i].name, name) == 0)
			return &c->nodes[i];
	return NULL;
}

/* ALUA: refused without a group; a reload turns it on and changes a state; the
 * control call changes it back; each change is a unit attention on the LUN. */
static void
test_alua_state(void **state)
{
	struct fx *f = *state;
	struct isd_target_cfg next;
	struct isd_live_diff d;
	uint32_t sk;

	assert_int_equal(isd_live_lun_set_alua_state(f->rt, TA, 0, ISD_ALUA_STANDBY, f->err,
						     sizeof(f->err)),
			 -EINVAL);
	assert_non_null(strstr(f->err, "no alua_group"));
	copy_running(f, &next);
	next_node(&next, TA)->alua_group = 1;
	next_node(&next, TA)->alua_peers[0].group = 2;
	next_node(&next, TA)->alua_peers[0].rtpi = 2;
	next_node(&next, TA)->alua_peer_count = 1;
	assert_int_equal(isd_live_apply(f->rt, &next, &d, f->err, sizeof(f->err)), 0);
	isd_target_cfg_fini(&next);
	assert_int_equal(model_node(f, TA)->alua_group, 1);
	/* INQUIRY data (TPGS, VPD 0x83) changed under the session */
	assert_int_equal(tur(f, &f->a, 0, &sk), ISD_SAM_CHECK_CONDITION);
	assert_int_equal(sk, ISD_SK_UNIT_ATTENTION << 16 | 0x3f03);
	assert_int_equal(tur(f, &f->a, 0, NULL), ISD_SAM_GOOD);
	/* a reload that puts the LUN in standby */
	copy_running(f, &next);
	next_node(&next, TA)->luns[0].alua_state = ISD_ALUA_STANDBY;
	next_node(&next, TA)->luns[0].alua_state_set = true;
	assert_int_equal(isd_live_apply(f->rt, &next, &d, f->err, sizeof(f->err)), 0);
	isd_target_cfg_fini(&next);
	assert_int_equal(d.luns_changed, 1);
	assert_int_equal(tur(f, &f->a, 0, &sk), ISD_SAM_CHECK_CONDITION);
	assert_int_equal(sk, ISD_SK_UNIT_ATTENTION << 16 | 0x2a06);
	assert_int_equal(tur(f, &f->a, 0, &sk), ISD_SAM_CHECK_CONDITION);
	assert_int_equal(sk, ISD_SK_NOT_READY << 16 | 0x040b);
	/* the control call: back to active/optimized, kept in the model */
	assert_int_equal(isd_live_lun_set_alua_state(f->rt, TA, 0, ISD_ALUA_ACTIVE_OPTIMIZED,
						     f->err, sizeof(f->err)),
			 0);
	assert_true(model_node(f, TA)->luns[0].alua_state_set);
	assert_int_equal(model_node(f, TA)->luns[0].alua_state, ISD_ALUA_ACTIVE_OPTIMIZED);
	assert_int_equal(tur(f, &f->a, 0, &sk), ISD_SAM_CHECK_CONDITION);
	assert_int_equal(sk, ISD_SK_UNIT_ATTENTION << 16 | 0x2a06);
	assert_int_equal(tur(f, &f->a, 0, NULL), ISD_SAM_GOOD);
	/* read-only and the state in one reload: the second step must not read the
	 * model the first one replaced (the fuzz_ctl corpus found that) */
	copy_running(f, &next);
	next_node(&next, TA)->luns[0].read_only = true;
	next_node(&next, TA)->luns[0].alua_state = ISD_ALUA_ACTIVE_NON_OPTIMIZED;
	assert_int_equal(isd_live_apply(f->rt, &next, &d, f->err, sizeof(f->err)), 0);
	isd_target_cfg_fini(&next);
	assert_true(model_node(f, TA)->luns[0].read_only);
	assert_int_equal(model_node(f, TA)->luns[0].alua_state, ISD_ALUA_ACTIVE_NON_OPTIMIZED);
	assert_int_equal(tur(f, &f->a, 0, &sk), ISD_SAM_CHECK_CONDITION);
	assert_int_equal(sk, ISD_SK_UNIT_ATTENTION << 16 | 0x2a06);
	assert_int_equal(tur(f, &f->a, 0, NULL), ISD_SAM_GOOD);
	assert_int_equal(isd_live_lun_set_alua_state(f->rt, TA, 7, ISD_ALUA_STANDBY, f->err,
						     sizeof(f->err)),
			 -ENOENT);
	assert_int_equal(isd_live_lun_set_alua_state(f->rt, TA, 0, 4, f->err, sizeof(f->err)),
			 -EINVAL);
	/* the other target saw nothing */
	assert_int_equal(f->b.fd.n_sent, 0);
}

static void
test_apply_unchanged(void **state)
{
	struct fx *f = *state;
	struct isd_target_cfg next;
	struct isd_live_diff d;

	copy_running(f, &next);
	assert_int_equal(isd_live_apply(f->rt, &next, &d, f->err, sizeof(f->err)), 0);
	assert_int_equal(d.unchanged_targets, 2);
	assert_int_equal(d.targets_added + d.targets_removed + d.targets_changed, 0);
	assert_int_equal(d.luns_added + d.luns_removed + d.luns_changed + d.acl_changed, 0);
	assert_int_equal(d.globals_changed, 0);
	isd_target_cfg_fini(&next);
	assert_int_equal(f->a.fd.n_sent + f->b.fd.n_sent, 0);
	assert_int_equal(tur(f, &f->a, 0, NULL), ISD_SAM_GOOD);
}

static void
test_apply_changes(void **state)
{
	struct fx *f = *state;
	struct isd_target_cfg next;
	struct isd_target_node_cfg *a;
	struct isd_target_lun_cfg *l;
	struct isd_live_diff d;
	struct isd_pdu *pdu;
	struct sess c;

	copy_running(f, &next);
	/* TB goes, TC comes (TB's nodes entry reused) */
	a = next_node(&next, TB);
	snprintf(a->name, sizeof(a->name), "%s", TC);
	/* TA: a LUN more, an alias, an ACL entry with its own CHAP, ram:1M -> ram:2M */
	a = next_node(&next, TA);
	snprintf(a->alias, sizeof(a->alias), "renamed");
	l = isd_target_node_add_lun(a);
	assert_non_null(l);
	assert_int_equal(isd_target_lun_spec_parse("zero:8M", l, f->err, sizeof(f->err)), 0);
	l->number = 5;
	snprintf(l->origin, sizeof(l->origin), "test:5");
	assert_int_equal(isd_target_node_add_acl(a, INAME), 0);
	next.login_timeout_ms = 5000;
	assert_int_equal(isd_live_apply(f->rt, &next, &d, f->err, sizeof(f->err)), 0);
	assert_int_equal(d.targets_removed, 1);
	assert_int_equal(d.targets_added, 1);
	assert_int_equal(d.targets_changed, 1);
	assert_int_equal(d.luns_added, 1);
	assert_int_equal(d.acl_changed, 1);
	assert_int_equal(d.globals_changed, 1);
	assert_int_equal(isd_target_running_cfg(f->rt)->login_timeout_ms, 5000);
	assert_non_null(model_node(f, TC));
	assert_null(model_node(f, TB));
	assert_string_equal(model_node(f, TA)->alias, "renamed");
	/* TB's session is asked to log out; TA's keeps running (the new LUN's UA) */
	pdu = fake_dm_pop(&f->b.fd);
	assert_non_null(pdu);
	assert_int_equal(isd_bhs_opcode(pdu->bhs), ISD_OP_ASYNC_MSG);
	isd_pdu_free(pdu);
	assert_int_equal(f->a.fd.n_sent, 0);
	assert_int_equal(drain_ua(f, &f->a, 0), 1);
	drain_ua(f, &f->a, 5);
	assert_int_equal(capacity(f, &f->a, 5), 8u << 20);
	assert_int_equal(sess_login(f, &c, INAME, TC, g_isid_c), 0);
	sess_end(f, &c);

	/* a LUN's store changes: reopened (the session sees REPORTED LUNS CHANGED) */
	l = &next_node(&next, TA)->luns[0];
	assert_int_equal(isd_target_lun_spec_parse("ram:2M", l, f->err, sizeof(f->err)), 0);
	assert_int_equal(isd_live_apply(f->rt, &next, &d, f->err, sizeof(f->err)), 0);
	assert_int_equal(d.luns_changed, 1);
	assert_int_equal(d.unchanged_targets, 1);
	drain_ua(f, &f->a, 0);
	assert_int_equal(capacity(f, &f->a, 0), 2u << 20);
	isd_target_cfg_fini(&next);
}

static void
test_apply_portals(void **state)
{
	struct fx *f = *state;
	struct isd_target_cfg next;
	struct isd_target_portal_spec *ps;
	struct isd_live_diff d;
	char why[128];

	/* a portal more, and TB bound to it alone */
	copy_running(f, &next);
	ps = isd_target_cfg_add_portal(&next);
	assert_non_null(ps);
	assert_int_equal(isd_target_portal_parse("tcp://127.0.0.2:0", ps, why, sizeof(why)), 0);
	ps->tpgt = -1;
	snprintf(ps->origin, sizeof(ps->origin), "test");
	if (isd_live_apply(f->rt, &next, &d, f->err, sizeof(f->err)) != 0)
		fail_msg("apply: %s", f->err);
	assert_int_equal(d.portals_added, 1);
	assert_int_equal(d.unchanged_targets, 2);
	assert_int_equal(isd_target_running_cfg(f->rt)->portal_count, 2);
	assert_int_equal(f->a.fd.n_sent + f->b.fd.n_sent, 0);
	/* its placement changes in place: no portal added or removed */
	isd_target_cfg_fini(&next);
	copy_running(f, &next);
	snprintf(next.portals[1].reactors, sizeof(next.portals[1].reactors), "0");
	if (isd_live_apply(f->rt, &next, &d, f->err, sizeof(f->err)) != 0)
		fail_msg("apply: %s", f->err);
	assert_int_equal(d.portals_changed, 1);
	assert_int_equal(d.portals_added + d.portals_removed, 0);
	assert_string_equal(isd_target_running_cfg(f->rt)->portals[1].reactors, "0");
	/* one reactor runs: reactor 1 is refused, and nothing changes */
	snprintf(next.portals[1].reactors, sizeof(next.portals[1].reactors), "0-1");
	assert_int_equal(isd_live_apply(f->rt, &next, &d, f->err, sizeof(f->err)), -EINVAL);
	assert_non_null(strstr(f->err, "reactor 1 does not run"));
	assert_string_equal(isd_target_running_cfg(f->rt)->portals[1].reactors, "0");
	next.portals[1].reactors[0] = '\0';
	if (isd_live_apply(f->rt, &next, &d, f->err, sizeof(f->err)) != 0)
		fail_msg("apply: %s", f->err);
	assert_int_equal(d.portals_changed, 1);
	assert_string_equal(isd_target_running_cfg(f->rt)->portals[1].reactors, "");
	/* and back: the portal goes, sessions stay */
	isd_target_cfg_fini(&next);
	copy_running(f, &next);
	next.portal_count = 1;
	if (isd_live_apply(f->rt, &next, &d, f->err, sizeof(f->err)) != 0)
		fail_msg("apply: %s", f->err);
	assert_int_equal(d.portals_removed, 1);
	assert_int_equal(isd_target_running_cfg(f->rt)->portal_count, 1);
	isd_target_cfg_fini(&next);
	assert_int_equal(tur(f, &f->a, 0, NULL), ISD_SAM_GOOD);
	assert_int_equal(tur(f, &f->b, 0, NULL), ISD_SAM_GOOD);
}

static void
test_apply_refused(void **state)
{
	struct fx *f = *state;
	struct isd_target_cfg next;
	struct isd_live_diff d;

	copy_running(f, &next);
	snprintf(next.user, sizeof(next.user), "nobody");
	next_node(&next, TA)->alias[0] = 'x';
	assert_int_equal(isd_live_apply(f->rt, &next, &d, f->err, sizeof(f->err)), -EINVAL);
	assert_non_null(strstr(f->err, "user cannot change"));
	assert_string_equal(model_node(f, TA)->alias, "");
	isd_target_cfg_fini(&next);

	copy_running(f, &next);
	snprintf(next.control_socket, sizeof(next.control_socket), "/tmp/elsewhere.sock");
	assert_int_equal(isd_live_apply(f->rt, &next, &d, f->err, sizeof(f->err)), -EINVAL);
	assert_non_null(strstr(f->err, "control_socket"));
	isd_target_cfg_fini(&next);

	/* the reactor threads are started once: restart-only */
	copy_running(f, &next);
	next.reactors = 4;
	assert_int_equal(isd_live_apply(f->rt, &next, &d, f->err, sizeof(f->err)), -EINVAL);
	assert_non_null(strstr(f->err, "reactors cannot change while iserd runs"));
	isd_target_cfg_fini(&next);
	copy_running(f, &next);
	snprintf(next.reactor_cpus, sizeof(next.reactor_cpus), "0-1");
	assert_int_equal(isd_live_apply(f->rt, &next, &d, f->err, sizeof(f->err)), -EINVAL);
	assert_non_null(strstr(f->err, "reactor_cpus cannot change"));
	isd_target_cfg_fini(&next);

	/* invalid: a duplicate LUN; nothing changed, one error */
	copy_running(f, &next);
	{
		struct isd_target_node_cfg *a = next_node(&next, TA);
		struct isd_target_lun_cfg *l = isd_target_node_add_lun(a);

		*l = a->luns[0];
		snprintf(a->alias, sizeof(a->alias), "nope");
	}
	assert_int_equal(isd_live_apply(f->rt, &next, &d, f->err, sizeof(f->err)), -EINVAL);
	assert_non_null(strstr(f->err, "duplicate LUN"));
	assert_null(strchr(f->err, '\n'));
	assert_string_equal(model_node(f, TA)->alias, "");
	assert_int_equal(model_node(f, TA)->lun_count, 1);
	isd_target_cfg_fini(&next);
	assert_int_equal(f->a.fd.n_sent + f->b.fd.n_sent, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_target_add, setup, teardown),
		cmocka_unit_test_setup_teardown(test_target_remove_refused_then_forced, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_target_remove_logout_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_target_remove_idle_freed_at_once, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lun_add_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lun_resize, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lun_read_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alua_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acl_and_chap_new_logins_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_logout_and_drop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apply_unchanged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apply_changes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apply_portals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apply_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
