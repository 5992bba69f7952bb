/*
 * The context: configuration, errors and logging, and the event-loop entry
 * points (get_fd / which_events / next_timeout_ms / service).
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "initiator/init_int.h"
#include "util/log.h"

const char *
iserd_version(void)
{
	return "0.1.0";
}

const char *
iserd_escape(char *dst, size_t len, const char *src)
{
	if (dst == NULL || len < 4)
		return "";
	return isd_log_escape_str(dst, len, src);
}

uint64_t
isd_init_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void
isd_init_log(struct isd_ictx *c, enum iserd_log_level lvl, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (c->log_fn == NULL || lvl > c->log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->log_fn(lvl, msg, c->log_arg);
}

void
isd_init_set_error(struct isd_ictx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	isd_init_log(c, ISERD_LOG_DEBUG, "error: %s", c->err);
}

static bool
name_ok(const char *n)
{
	size_t i, len = strlen(n);

	if (len == 0 || len >= ISERD_NAME_MAX)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)n[i];

		if (ch <= 0x20 || ch >= 0x7f)
			return false;
	}
	return true;
}

int
iserd_context_create(const char *initiator_name, struct iserd_context **out)
{
	struct iserd_context *pub;
	struct isd_ictx *c;

	if (out == NULL)
		return -EINVAL;
	*out = NULL;
	if (initiator_name == NULL)
		initiator_name = ISD_INIT_DEFAULT_NAME;
	if (!name_ok(initiator_name))
		return -EINVAL;
	pub = calloc(1, sizeof(*pub));
	if (pub == NULL)
		return -ENOMEM;
	c = &pub->c;
	snprintf(c->initiator_name, sizeof(c->initiator_name), "%s", initiator_name);
	c->log_level = ISERD_LOG_WARN;
	c->hd_pref = ISERD_DIGEST_NONE;
	c->dd_pref = ISERD_DIGEST_NONE;
	c->queue_depth = 128;
	c->reconnect = ISERD_RECONNECT_OFF;
	c->reconnect_max = 30;
	c->reconnect_interval_ms = 1000;
	c->login_timeout_ms = 15000;
	c->chap_algs = ISD_INIT_CHAP_OFFER_MASK;
	c->state = ISD_ICTX_IDLE;
	c->cid = 0;
	TAILQ_INIT(&c->reqs);
	TAILQ_INIT(&c->waiting);
	TAILQ_INIT(&c->sent);
	isd_params_init_defaults(&c->params);
	isd_text_buf_init(&c->login_reply);
	*out = pub;
	return 0;
}

void
iserd_context_destroy(struct iserd_context *pub)
{
	struct isd_ictx *c;

	if (pub == NULL)
		return;
	c = &pub->c;
	isd_init_x_disconnect(c);
	/* Callbacks run from here may not submit anything new. */
	c->state = ISD_ICTX_FAILED;
	c->reconnect = ISERD_RECONNECT_OFF;
	isd_init_set_error(c, "context destroyed");
	isd_init_tasks_conn_lost(c, -ECANCELED, false);
	isd_init_fail_reqs(c, -ECANCELED);
	isd_init_slots_free(c);
	isd_text_buf_fini(&c->login_reply);
	free(c->login_text);
	isd_init_x_fini(c);
	/* Best effort: scrub the secrets. */
	memset(c->chap_secret, 0, sizeof(c->chap_secret));
	memset(c->mchap_secret, 0, sizeof(c->mchap_secret));
	memset(c->url.password, 0, sizeof(c->url.password));
	memset(c->url.target_password, 0, sizeof(c->url.target_password));
	free(pub);
}

void
iserd_set_log_fn(struct iserd_context *pub, iserd_log_fn fn, void *arg)
{
	pub->c.log_fn = fn;
	pub->c.log_arg = arg;
}

void
iserd_set_log_level(struct iserd_context *pub, enum iserd_log_level level)
{
	pub->c.log_level = level;
}

const char *
iserd_get_error(const struct iserd_context *pub)
{
	return pub->c.err;
}

int
iserd_set_chap(struct iserd_context *pub, const char *user, const char *secret)
{
	struct isd_ictx *c = &pub->c;

	if (user == NULL || user[0] == '\0') {
		c->chap_user[0] = '\0';
		c->chap_secret[0] = '\0';
		return 0;
	}
	if (secret == NULL || strlen(user) >= sizeof(c->chap_user) ||
	    strlen(secret) >= sizeof(c->chap_secret))
		return -EINVAL;
	snprintf(c->chap_user, sizeof(c->chap_user), "%s", user);
	snprintf(c->chap_secret, sizeof(c->chap_secret), "%s", secret);
	return 0;
}

int
iserd_set_mutual_chap(struct iserd_context *pub, const char *user, const char *secret)
{
	struct isd_ictx *c = &pub->c;

	if (user == NULL || user[0] == '\0') {
		c->mchap_user[0] = '\0';
		c->mchap_secret[0] = '\0';
		return 0;
	}
	if (secret == NULL || strlen(user) >= sizeof(c->mchap_user) ||
	    strlen(secret) >= sizeof(c->mchap_secret))
		return -EINVAL;
	snprintf(c->mchap_user, sizeof(c->mchap_user), "%s", user);
	snprintf(c->mchap_secret, sizeof(c->mchap_secret), "%s", secret);
	return 0;
}

int
iserd_set_chap_algs(struct iserd_context *pub, const char *algs)
{
	unsigned int mask = 0;
	char buf[64], *save = NULL, *tok;

	if (algs == NULL) {
		pub->c.chap_algs = ISD_INIT_CHAP_OFFER_MASK;
		return 0;
	}
	if (strlen(algs) >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, algs, strlen(algs) + 1);
	for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		int alg = isd_chap_alg_from_name(tok);

		if (alg < 0)
			return -EINVAL;
		mask |= ISD_CHAP_ALG_BIT(alg);
	}
	if (mask == 0)
		return -EINVAL;
	pub->c.chap_algs = mask;
	return 0;
}

int
iserd_set_digests(struct iserd_context *pub, enum iserd_digest header, enum iserd_digest data)
{
	if ((unsigned)header > ISERD_DIGEST_NONE_CRC32C ||
	    (unsigned)data > ISERD_DIGEST_NONE_CRC32C)
		return -EINVAL;
	pub->c.hd_pref = header;
	pub->c.dd_pref = data;
	return 0;
}

int
iserd_set_queue_depth(struct iserd_context *pub, uint32_t depth)
{
	if (depth < 1 || depth > 4096)
		return -EINVAL;
	if (pub->c.slots != NULL)
		return -EBUSY;
	pub->c.queue_depth = depth;
	return 0;
}

void
iserd_set_reconnect(struct iserd_context *pub, enum iserd_reconnect mode, uint32_t max_attempts,
		    uint32_t interval_ms)
{
	pub->c.reconnect = mode;
	pub->c.reconnect_max = max_attempts ? max_attempts : 30;
	pub->c.reconnect_interval_ms = interval_ms ? interval_ms : 1000;
}

void
iserd_set_nop(struct iserd_context *pub, uint32_t interval_ms, uint32_t timeout_ms)
{
	pub->c.nop_interval_ms = interval_ms;
	pub->c.nop_timeout_ms = timeout_ms ? timeout_ms : interval_ms * 2;
}

void
iserd_set_login_timeout(struct iserd_context *pub, uint32_t timeout_ms)
{
	pub->c.login_timeout_ms = timeout_ms ? timeout_ms : 15000;
}

int
iserd_get_fd(const struct iserd_context *pub)
{
	const struct isd_ictx *c = &pub->c;

	return isd_init_x_get_fd(c);
}

int
iserd_which_events(const struct iserd_context *pub)
{
	const struct isd_ictx *c = &pub->c;

	return isd_init_x_which_events(c);
}

static int
ms_until(uint64_t now, uint64_t at)
{
	uint64_t d;

	if (at <= now)
		return 0;
	d = (at - now + 999999) / 1000000;
	return d > 1000000 ? 1000000 : (int)d;
}

int
iserd_next_timeout_ms(const struct iserd_context *pub)
{
	const struct isd_ictx *c = &pub->c;
	uint64_t now = isd_init_now_ns();
	int best = -1, t;

	if (c->pending_fail != 0)
		return 0;
	switch (c->state) {
	case ISD_ICTX_CONNECTING:
	case ISD_ICTX_LOGIN:
	case ISD_ICTX_LOGOUT:
		best = ms_until(now, c->login_deadline_ns);
		break;
	case ISD_ICTX_RECONNECT_WAIT:
		best = ms_until(now, c->reconnect_at_ns);
		break;
	case ISD_ICTX_FFP:
		if (c->nop_interval_ms > 0) {
			uint64_t at = c->last_rx_ns + (uint64_t)c->nop_interval_ms * 1000000ull;

			if (c->nop_sent_ns != 0)
				at = c->last_rx_ns + (uint64_t)c->nop_timeout_ms * 1000000ull;
			t = ms_until(now, at);
			best = t;
		}
		break;
	default:
		break;
	}
	t = isd_init_x_next_timeout_ms(c);
	if (t >= 0 && (best < 0 || t < best))
		best = t;
	return best;
}

int
iserd_service(struct iserd_context *pub, int revents)
{
	struct isd_ictx *c = &pub->c;
	int rc;

	c->in_service = true;
	if (c->pending_fail != 0) {
		rc = c->pending_fail;
		c->pending_fail = 0;
		isd_init_conn_failed(c, rc);
	}
	isd_init_x_service(c, revents);
	isd_init_timers(c);
	c->in_service = false;
	if (c->state == ISD_ICTX_FAILED)
		return -ECONNRESET;
	return 0;
}

bool
iserd_is_logged_in(const struct iserd_context *pub)
{
	return pub->c.state == ISD_ICTX_FFP;
}

uint16_t
iserd_get_login_status(const struct iserd_context *pub)
{
	return pub->c.login_status;
}

const char *
iserd_login_status_str(uint16_t status)
{
	return isd_login_status_str(status);
}

uint32_t
iserd_get_reconnect_count(const struct iserd_context *pub)
{
	return pub->c.reconnects;
}

int
iserd_get_negotiated(const struct iserd_context *pub, struct iserd_negotiated *out)
{
	const struct isd_ictx *c = &pub->c;

	if (!c->ever_logged_in)
		return -ENOTCONN;
	*out = c->neg;
	return 0;
}
