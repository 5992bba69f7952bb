/* The TCP datamover as a registered kind (dm_kind.h): tcp://ADDR[:PORT]. */
#include "dm/dm_kind.h"
#include "dm/tcp/tcp.h"

static const struct isd_dm_knob g_knobs[] = {
    {.name = "max_tx_queue_bytes",
     .min = ISD_TCP_TXQ_MIN,
     .max = ISD_TCP_TXQ_MAX,
     .dflt = ISD_TCP_TXQ_DEFAULT},
};

static int
tcp_configure(const int64_t *v)
{
	return isd_tcp_set_max_tx_queue((uint64_t)v[0]);
}

static int
tcp_listen(struct isd_iscsi_tgt *t, struct isd_reactor *r, const char *host, uint16_t port,
	   uint16_t tpgt, void **portal, char *err, size_t err_len)
{
	struct isd_tcp_portal *p;
	int rc = isd_tcp_portal_listen(t, r, host, port, tpgt, &p, err, err_len);

	if (rc == 0)
		*portal = p;
	return rc;
}

static uint16_t
tcp_port(const void *portal)
{
	return isd_tcp_portal_port(portal);
}

static void
tcp_place(void *portal, const struct isd_reactor_mask *in)
{
	isd_tcp_portal_place(portal, in);
}

static void
tcp_close(void *portal)
{
	isd_tcp_portal_close(portal);
}

const struct isd_dm_kind isd_dm_kind_tcp = {
    .scheme = "tcp",
    .transport = ISD_TRANSPORT_TCP,
    .knobs = g_knobs,
    .knob_count = (int)(sizeof(g_knobs) / sizeof(g_knobs[0])),
    .configure = tcp_configure,
    .listen = tcp_listen,
    .port = tcp_port,
    .place = tcp_place,
    .close = tcp_close,
    .stats = isd_tcp_stats_list,
};
