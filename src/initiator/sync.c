/*
 * Blocking twins of the asynchronous calls: each submits, then runs a poll()
 * loop on the context until its own callback ran (other callbacks of the
 * context run meanwhile, as they would in the caller's loop).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "initiator/init_int.h"

struct sync_state {
	bool done;
	int status;
	void *data;
};

static void
sync_cb(struct iserd_context *ctx, int status, void *data, void *arg)
{
	struct sync_state *s = arg;

	(void)ctx;
	s->done = true;
	s->status = status;
	s->data = data;
}

static int
run_until(struct iserd_context *pub, struct sync_state *s)
{
	while (!s->done) {
		struct pollfd p;
		int to = iserd_next_timeout_ms(pub), n, rc;

		p.fd = iserd_get_fd(pub);
		p.events = (short)iserd_which_events(pub);
		p.revents = 0;
		if (p.fd < 0 && to < 0)
			return -ENOTCONN; /* nothing left that could complete it */
		n = poll(&p, p.fd >= 0 ? 1 : 0, to);
		if (n < 0 && errno != EINTR)
			return -errno;
		rc = iserd_service(pub, n > 0 ? p.revents : 0);
		if (rc < 0 && !s->done)
			return rc;
	}
	return 0;
}

int
iserd_connect_sync(struct iserd_context *pub, const struct iserd_url *url,
		   enum iserd_session_type type)
{
	struct sync_state s = {0};
	int rc = iserd_connect_async(pub, url, type, sync_cb, &s);

	if (rc < 0)
		return rc;
	rc = run_until(pub, &s);
	return rc < 0 ? rc : s.status;
}

int
iserd_logout_sync(struct iserd_context *pub)
{
	struct sync_state s = {0};
	int rc = iserd_logout_async(pub, sync_cb, &s);

	if (rc < 0)
		return rc;
	rc = run_until(pub, &s);
	return rc < 0 ? rc : s.status;
}

int
iserd_discover_sync(struct iserd_context *pub, struct iserd_discovery **out)
{
	struct sync_state s = {0};
	int rc = iserd_discover_async(pub, sync_cb, &s);

	*out = NULL;
	if (rc < 0)
		return rc;
	rc = run_until(pub, &s);
	if (rc < 0)
		return rc;
	*out = s.data;
	return s.status;
}

int
iserd_nop_sync(struct iserd_context *pub)
{
	struct sync_state s = {0};
	int rc = iserd_nop_async(pub, sync_cb, &s);

	if (rc < 0)
		return rc;
	rc = run_until(pub, &s);
	return rc < 0 ? rc : s.status;
}

int
iserd_task_sync(struct iserd_context *pub, struct iserd_task *t)
{
	struct sync_state s = {0};
	int rc = iserd_task_submit(pub, t, sync_cb, &s);

	if (rc < 0)
		return rc;
	rc = run_until(pub, &s);
	if (rc < 0)
		return rc;
	if (s.status < 0)
		return s.status;
	if (t->response != 0 ||
	    (t->status != ISERD_STATUS_GOOD && t->status != ISERD_STATUS_CONDITION_MET)) {
		char what[400];

		iserd_task_result_str(t, what, sizeof(what));
		isd_init_set_error(&pub->c, "%s", what);
		return -EREMOTEIO;
	}
	return 0;
}

int
iserd_task_abort_sync(struct iserd_context *pub, struct iserd_task *t)
{
	struct sync_state s = {0};
	int rc = iserd_task_abort_async(pub, t, sync_cb, &s);

	if (rc < 0)
		return rc;
	rc = run_until(pub, &s);
	return rc < 0 ? rc : s.status;
}

int
iserd_lun_reset_sync(struct iserd_context *pub, uint64_t lun)
{
	struct sync_state s = {0};
	int rc = iserd_lun_reset_async(pub, lun, sync_cb, &s);

	if (rc < 0)
		return rc;
	rc = run_until(pub, &s);
	return rc < 0 ? rc : s.status;
}
