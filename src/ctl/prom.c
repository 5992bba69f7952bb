/*
 * Statistics in the Prometheus text exposition format (version 0.0.4): the
 * core's process counters, each datamover's counters by name, and per
 * target, per LUN and per session the I/O statistics of util/iostats.h. The
 * metric names and labels are documented in docs/iserd.md ("Statistics and
 * metrics"); scripts and dashboards depend on them, so they only grow.
 *
 * Every sample of one metric family must follow its HELP and TYPE lines, so
 * the figures are first copied out of the running target (all on the reactor
 * thread, so they are one consistent picture) and then written family by
 * family.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bstore/bstore.h"
#include "ctl/control.h"
#include "ctl/ctl.h"
#include "dm/dm_kind.h"
#include "reactor/reactor.h"
#include "scsi/scsi.h"
#include "server/live.h"
#include "server/target.h"
#include "util/mem.h"

/* ---- output buffer ---- */

struct pbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void __attribute__((format(printf, 2, 3)))
pb_printf(struct pbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->p != NULL ? b->p + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		{
			size_t ncap = b->cap ? b->cap * 2 : 16384;
			char *np;

			while (ncap - b->len <= (size_t)n)
				ncap *= 2;
			np = realloc(b->p, ncap);
			if (np == NULL) {
				b->oom = true;
				return;
			}
			b->p = np;
			b->cap = ncap;
		}
	}
}

static void
pb_family(struct pbuf *b, const char *name, const char *type, const char *help)
{
	pb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* ---- label values ---- */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one. */
static size_t
utf8_len(const unsigned char *s)
{
	size_t n;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates, beyond U+10FFFF */
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void
isd_ctl_prom_label_escape(char *dst, size_t cap, const char *src)
{
	const unsigned char *s = (const unsigned char *)(src != NULL ? src : "");
	size_t o = 0;

	if (cap == 0)
		return;
	while (*s != '\0') {
		char tmp[8];
		size_t n = utf8_len(s), tn;

		if (*s == '\\' || *s == '"') {
			tmp[0] = '\\';
			tmp[1] = (char)*s;
			tn = 2;
			n = 1;
		} else if (*s == '\n') {
			memcpy(tmp, "\\n", 2);
			tn = 2;
			n = 1;
		} else if (n == 0 || *s < 0x20 || *s == 0x7f) {
			/* the text \xNN: its backslash escaped as the format wants */
			snprintf(tmp, sizeof(tmp), "\\\\x%02x", *s);
			tn = 5;
			n = 1;
		} else {
			memcpy(tmp, s, n);
			tn = n;
		}
		if (o + tn >= cap)
			break;
		memcpy(dst + o, tmp, tn);
		o += tn;
		s += n;
	}
	dst[o] = '\0';
}

/* ---- what is copied out of the running target ---- */

struct lun_rec {
	struct isd_live_lun_stats st;
	char labels[ISD_NAME_MAX * 2 + 64];
};

struct tgt_rec {
	char labels[ISD_NAME_MAX * 2 + 32];
	struct isd_io_stats io;
};

struct sess_rec {
	char labels[ISD_NAME_MAX * 4 + 256];
	bool discovery;
	struct isd_live_session s;
};

struct snap {
	struct isd_target_running *rt;
	struct tgt_rec *tgts;
	int ntgts, tgt_cap;
	struct lun_rec *luns;
	int nluns, lun_cap;
	struct sess_rec *sess;
	int nsess, sess_cap;
	struct isd_live_lun_stats *tmp;         /* ISD_SCSI_MAX_LUNS, reused per target */
	bool oom;
};

static void *
grow(void *arr, int *cap, int need, size_t elem)
{
	int ncap = *cap ? *cap : 8;
	void *p;

	if (need <= *cap)
		return arr;
	while (ncap < need)
		ncap *= 2;
	p = realloc(arr, (size_t)ncap * elem);
	if (p != NULL)
		*cap = ncap;
	return p;
}

static void
snap_node(void *arg, struct isd_tnode *node)
{
	struct snap *sn = arg;
	char name[ISD_NAME_MAX * 2];
	struct tgt_rec *t;
	void *p;
	int n;

	if (sn->oom)
		return;
	p = grow(sn->tgts, &sn->tgt_cap, sn->ntgts + 1, sizeof(*sn->tgts));
	if (p == NULL) {
		sn->oom = true;
		return;
	}
	sn->tgts = p;
	t = &sn->tgts[sn->ntgts];
	if (isd_live_target_stats(sn->rt, node->name, &t->io) < 0)
		return;
	isd_ctl_prom_label_escape(name, sizeof(name), node->name);
	snprintf(t->labels, sizeof(t->labels), "target=\"%s\"", name);
	sn->ntgts++;
	n = isd_live_lun_stats(sn->rt, node->name, sn->tmp, ISD_SCSI_MAX_LUNS);
	if (n > ISD_SCSI_MAX_LUNS)
		n = ISD_SCSI_MAX_LUNS;
	if (n <= 0)
		return;
	p = grow(sn->luns, &sn->lun_cap, sn->nluns + n, sizeof(*sn->luns));
	if (p == NULL) {
		sn->oom = true;
		return;
	}
	sn->luns = p;
	for (int i = 0; i < n; i++) {
		struct lun_rec *l = &sn->luns[sn->nluns++];

		l->st = sn->tmp[i];
		snprintf(l->labels, sizeof(l->labels), "target=\"%s\",lun=\"%u\"", name,
			 l->st.lun);
	}
}

static const char *
transport_name(enum isd_transport t)
{
	return t == ISD_TRANSPORT_ISER ? "iser" : "tcp";
}

static void
snap_session(void *arg, const struct isd_live_session *s)
{
	struct snap *sn = arg;
	char tgt[ISD_NAME_MAX * 2], ini[ISD_NAME_MAX * 2];
	struct sess_rec *r;
	void *p;

	if (sn->oom)
		return;
	p = grow(sn->sess, &sn->sess_cap, sn->nsess + 1, sizeof(*sn->sess));
	if (p == NULL) {
		sn->oom = true;
		return;
	}
	sn->sess = p;
	r = &sn->sess[sn->nsess++];
	r->s = *s;
	r->discovery = s->discovery;
	isd_ctl_prom_label_escape(tgt, sizeof(tgt), s->target);
	isd_ctl_prom_label_escape(ini, sizeof(ini), s->initiator);
	/* tsih tells two sessions of one initiator apart; the rest says whose it is */
	snprintf(r->labels, sizeof(r->labels),
		 "tsih=\"%u\",target=\"%s\",initiator=\"%s\",isid=\"%s\"", s->tsih, tgt, ini,
		 s->isid);
}

static void
snap_free(struct snap *sn)
{
	free(sn->tgts);
	free(sn->luns);
	free(sn->sess);
	free(sn->tmp);
}

/* ---- families ---- */

struct io_owner {
	const char *labels;
	const struct isd_io_stats *io;
};

/* The I/O families of one kind of owner: prefix "iserd_lun", "iserd_target"... */
static void
render_io(struct pbuf *b, const char *prefix, const char *what, const struct io_owner *o,
	  int n, bool xcopy)
{
	char name[96], help[256];

	snprintf(name, sizeof(name), "%s_commands_total", prefix);
	snprintf(help, sizeof(help),
		 "%s: SCSI commands completed, by direction (read, write, other), failed ones "
		 "included.", what);
	pb_family(b, name, "counter", help);
	for (int i = 0; i < n; i++)
		for (int d = 0; d < ISD_IO_DIRS; d++)
			pb_printf(b, "%s{%s,dir=\"%s\"} %llu\n", name, o[i].labels,
				  isd_io_dir_names[d], (unsigned long long)o[i].io->cmds[d]);

	snprintf(name, sizeof(name), "%s_bytes_total", prefix);
	snprintf(help, sizeof(help),
		 "%s: data bytes moved by commands that ended GOOD, by direction (read: sent to "
		 "the initiator, write: taken from it).", what);
	pb_family(b, name, "counter", help);
	for (int i = 0; i < n; i++)
		for (int d = 0; d < ISD_IO_DIRS; d++)
			pb_printf(b, "%s{%s,dir=\"%s\"} %llu\n", name, o[i].labels,
				  isd_io_dir_names[d], (unsigned long long)o[i].io->bytes[d]);

	snprintf(name, sizeof(name), "%s_errors_total", prefix);
	snprintf(help, sizeof(help), "%s: SCSI commands that did not end GOOD, by class.", what);
	pb_family(b, name, "counter", help);
	for (int i = 0; i < n; i++)
		for (int e = 0; e < ISD_IO_ERRS; e++)
			pb_printf(b, "%s{%s,class=\"%s\"} %llu\n", name, o[i].labels,
				  isd_io_err_names[e], (unsigned long long)o[i].io->errors[e]);

	/* EXTENDED COPY is counted where it runs, by LUN (and target), not by session */
	if (xcopy) {
		snprintf(name, sizeof(name), "%s_xcopy_bytes_total", prefix);
		snprintf(help, sizeof(help),
			 "%s: data bytes EXTENDED COPY commands moved inside the target (never "
			 "over the wire; not in the bytes_total family).", what);
		pb_family(b, name, "counter", help);
		for (int i = 0; i < n; i++)
			pb_printf(b, "%s{%s} %llu\n", name, o[i].labels,
				  (unsigned long long)o[i].io->xcopy_bytes);
	}

	snprintf(name, sizeof(name), "%s_in_flight", prefix);
	snprintf(help, sizeof(help), "%s: SCSI commands started and not yet completed.", what);
	pb_family(b, name, "gauge", help);
	for (int i = 0; i < n; i++)
		pb_printf(b, "%s{%s} %u\n", name, o[i].labels, o[i].io->in_flight);

	snprintf(name, sizeof(name), "%s_latency_seconds", prefix);
	snprintf(help, sizeof(help),
		 "%s: latency of SCSI commands, arrival to completion (buckets are powers of "
		 "two microseconds).", what);
	pb_family(b, name, "histogram", help);
	for (int i = 0; i < n; i++) {
		uint64_t acc = 0;

		for (int k = 0; k < ISD_IO_LAT_BUCKETS - 1; k++) {
			acc += o[i].io->lat[k];
			pb_printf(b, "%s_bucket{%s,le=\"%.6f\"} %llu\n", name, o[i].labels,
				  (double)isd_io_stats_bucket_us(k) / 1e6,
				  (unsigned long long)acc);
		}
		acc += o[i].io->lat[ISD_IO_LAT_BUCKETS - 1];
		pb_printf(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, o[i].labels,
			  (unsigned long long)acc);
		pb_printf(b, "%s_sum{%s} %.9f\n", name, o[i].labels,
			  (double)o[i].io->lat_sum_ns / 1e9);
		pb_printf(b, "%s_count{%s} %llu\n", name, o[i].labels, (unsigned long long)acc);
	}
}

static void
render_process(struct pbuf *b, struct isd_target_running *rt)
{
	struct isd_iscsi_stats st;

	isd_target_get_stats(rt, &st);
	/* refusals by limit, named after the limit (docs/iserd.md "Limits") */
	struct isd_stat refused[16];
	int nref = isd_iscsi_refused_list(&st, refused, 16);

	pb_family(b, "iserd_build_info", "gauge", "The iserd version running (always 1).");
	pb_printf(b, "iserd_build_info{version=\"%s\"} 1\n", ISD_VERSION);
	pb_family(b, "iserd_sessions", "gauge", "iSCSI sessions alive (discovery included).");
	pb_printf(b, "iserd_sessions %llu\n", (unsigned long long)st.sessions);
	pb_family(b, "iserd_connections", "gauge",
		  "Connections alive, in login or full feature phase.");
	pb_printf(b, "iserd_connections %llu\n", (unsigned long long)st.connections);
	pb_family(b, "iserd_login_connections", "gauge", "Connections in the login phase.");
	pb_printf(b, "iserd_login_connections %llu\n", (unsigned long long)st.login_connections);
	pb_family(b, "iserd_tasks", "gauge", "SCSI command tasks alive, all sessions.");
	pb_printf(b, "iserd_tasks %llu\n", (unsigned long long)st.tasks);
	pb_family(b, "iserd_logins_total", "counter", "Logins that completed, by result.");
	pb_printf(b, "iserd_logins_total{result=\"ok\"} %llu\n", (unsigned long long)st.logins_ok);
	pb_printf(b, "iserd_logins_total{result=\"failed\"} %llu\n",
		  (unsigned long long)st.logins_failed);
	pb_family(b, "iserd_rejects_sent_total", "counter", "Reject PDUs sent.");
	pb_printf(b, "iserd_rejects_sent_total %llu\n", (unsigned long long)st.rejects_sent);
	pb_family(b, "iserd_copied_bytes_total", "counter",
		  "Payload bytes copied into staging buffers on the data path.");
	pb_printf(b, "iserd_copied_bytes_total %llu\n", (unsigned long long)st.bytes_copied);
	pb_family(b, "iserd_placed_bytes_total", "counter",
		  "Write payload bytes copied from a receive buffer straight into a RAM LUN "
		  "(the store write itself).");
	pb_printf(b, "iserd_placed_bytes_total %llu\n", (unsigned long long)st.bytes_placed);
	pb_family(b, "iserd_cmdsn_dropped_total", "counter",
		  "Requests dropped outside the CmdSN window or as a duplicate CmdSN.");
	pb_printf(b, "iserd_cmdsn_dropped_total %llu\n", (unsigned long long)st.cmdsn_dropped);
	pb_family(b, "iserd_control_clients_refused_total", "counter",
		  "Control socket clients turned away: more than 16 were connected.");
	pb_printf(b, "iserd_control_clients_refused_total %llu\n",
		  (unsigned long long)isd_ctl_clients_refused());
	{
		struct isd_mem_stats ms;

		isd_mem_get_stats(&ms);
		pb_family(b, "iserd_block_cache_requests_total", "counter",
			  "Data-path blocks (tasks, PDUs, send items, store requests, buffers) "
			  "asked of the per-thread block cache.");
		pb_printf(b, "iserd_block_cache_requests_total %llu\n",
			  (unsigned long long)ms.allocs);
		pb_family(b, "iserd_block_cache_malloc_calls_total", "counter",
			  "Of those, the ones the cache passed to malloc: flat once the "
			  "working set is cached.");
		pb_printf(b, "iserd_block_cache_malloc_calls_total %llu\n",
			  (unsigned long long)ms.sys_allocs);
		pb_family(b, "iserd_direct_io_bounces_total", "counter",
			  "Direct I/O requests (file:,direct and dev:) copied through a "
			  "bounce buffer because their data was not aligned as the device asks.");
		pb_printf(b, "iserd_direct_io_bounces_total %llu\n",
			  (unsigned long long)isd_bstore_direct_bounces());
		pb_family(b, "iserd_block_cache_bytes", "gauge",
			  "Bytes kept on the block cache's free lists, all threads.");
		pb_printf(b, "iserd_block_cache_bytes %llu\n",
			  (unsigned long long)ms.cached_bytes);
	}
	{
		/* the reactors of the daemon's group: placement and loop counters */
		struct isd_reactor_group *g = isd_target_reactor_group(rt);
		unsigned nr = g != NULL ? isd_reactor_group_size(g) : 0;

		if (nr > 0) {
			pb_family(b, "iserd_reactors", "gauge",
				  "Reactor threads (event loops) iserd runs (reactors).");
			pb_printf(b, "iserd_reactors %u\n", nr);
			pb_family(b, "iserd_reactor_connections", "gauge",
				  "Connections placed on each reactor (TCP and iSER: the least "
				  "loaded at accept).");
			for (unsigned i = 0; i < nr; i++)
				pb_printf(b, "iserd_reactor_connections{reactor=\"%u\"} %u\n", i,
					  isd_reactor_conns(isd_reactor_group_get(g, i)));
			pb_family(b, "iserd_reactor_turns_total", "counter",
				  "Iterations of each reactor's loop.");
			for (unsigned i = 0; i < nr; i++) {
				struct isd_reactor_stats rs;

				isd_reactor_get_stats(isd_reactor_group_get(g, i), &rs);
				pb_printf(b, "iserd_reactor_turns_total{reactor=\"%u\"} %llu\n", i,
					  (unsigned long long)rs.turns);
			}
			pb_family(b, "iserd_reactor_sleeps_total", "counter",
				  "Waits of each reactor's loop that could block.");
			for (unsigned i = 0; i < nr; i++) {
				struct isd_reactor_stats rs;

				isd_reactor_get_stats(isd_reactor_group_get(g, i), &rs);
				pb_printf(b, "iserd_reactor_sleeps_total{reactor=\"%u\"} %llu\n", i,
					  (unsigned long long)rs.sleeps);
			}
			pb_family(b, "iserd_reactor_messages_total", "counter",
				  "Messages posted to each reactor from other threads (or itself) "
				  "that it ran.");
			for (unsigned i = 0; i < nr; i++) {
				struct isd_reactor_stats rs;

				isd_reactor_get_stats(isd_reactor_group_get(g, i), &rs);
				pb_printf(b, "iserd_reactor_messages_total{reactor=\"%u\"} %llu\n",
					  i, (unsigned long long)rs.msgs);
			}
			pb_family(b, "iserd_reactor_poll_seconds", "gauge",
				  "How long each reactor spins after work before it sleeps "
				  "(adaptive mode: grows while sleeps are cut short).");
			for (unsigned i = 0; i < nr; i++) {
				struct isd_reactor_stats rs;

				isd_reactor_get_stats(isd_reactor_group_get(g, i), &rs);
				pb_printf(b, "iserd_reactor_poll_seconds{reactor=\"%u\"} %.6f\n",
					  i, (double)rs.poll_us / 1e6);
			}
		}
	}
	pb_family(b, "iserd_refused_total", "counter",
		  "Connections, logins, PDUs or buffers refused at a limit, by the limit's name.");
	for (int i = 0; i < nref && i < 16; i++)
		pb_printf(b, "iserd_refused_total{limit=\"%s\"} %llu\n", refused[i].name,
			  (unsigned long long)refused[i].value);

	/* each datamover's own counters: names differ by kind, some are totals and some
	 * current values, so they share one gauge family keyed by datamover and name */
	pb_family(b, "iserd_datamover_stat", "gauge",
		  "A datamover's own counters by name (docs/iserd.md lists them).");
	for (unsigned k = 0; k < isd_dm_kind_count; k++) {
		struct isd_stat sv[64];
		int n;

		if (isd_dm_kinds[k]->stats == NULL)
			continue;
		n = isd_dm_kinds[k]->stats(sv, (int)(sizeof(sv) / sizeof(sv[0])));
		for (int i = 0; i < n && i < (int)(sizeof(sv) / sizeof(sv[0])); i++)
			pb_printf(b, "iserd_datamover_stat{datamover=\"%s\",name=\"%s\"} %llu\n",
				  isd_dm_kinds[k]->scheme, sv[i].name,
				  (unsigned long long)sv[i].value);
	}
}

int
isd_ctl_prometheus(struct isd_target_running *rt, char **out, size_t *len)
{
	struct snap sn;
	struct pbuf b;
	struct io_owner *own = NULL;
	int nown;

	memset(&sn, 0, sizeof(sn));
	memset(&b, 0, sizeof(b));
	*out = NULL;
	*len = 0;
	sn.rt = rt;
	sn.tmp = calloc(ISD_SCSI_MAX_LUNS, sizeof(*sn.tmp));
	if (sn.tmp == NULL)
		return -ENOMEM;
	isd_iscsi_tgt_for_each_node(isd_target_core(rt), snap_node, &sn);
	isd_live_sessions(rt, snap_session, &sn);
	nown = sn.ntgts > sn.nluns ? sn.ntgts : sn.nluns;
	nown = nown > sn.nsess ? nown : sn.nsess;
	own = calloc((size_t)(nown > 0 ? nown : 1), sizeof(*own));
	if (sn.oom || own == NULL)
		goto oom;

	render_process(&b, rt);

	for (int i = 0; i < sn.ntgts; i++)
		own[i] = (struct io_owner){sn.tgts[i].labels, &sn.tgts[i].io};
	render_io(&b, "iserd_target", "Per target (its LUNs and LUNs that do not exist)",
		  own, sn.ntgts, true);

	pb_family(&b, "iserd_lun_size_bytes", "gauge", "Size of the LUN.");
	for (int i = 0; i < sn.nluns; i++)
		pb_printf(&b, "iserd_lun_size_bytes{%s} %llu\n", sn.luns[i].labels,
			  (unsigned long long)sn.luns[i].st.size);
	pb_family(&b, "iserd_lun_block_size_bytes", "gauge", "Logical block size of the LUN.");
	for (int i = 0; i < sn.nluns; i++)
		pb_printf(&b, "iserd_lun_block_size_bytes{%s} %u\n", sn.luns[i].labels,
			  sn.luns[i].st.block_size);
	pb_family(&b, "iserd_lun_read_only", "gauge", "1 when the LUN is read-only.");
	for (int i = 0; i < sn.nluns; i++)
		pb_printf(&b, "iserd_lun_read_only{%s} %d\n", sn.luns[i].labels,
			  sn.luns[i].st.read_only ? 1 : 0);
	{
		/* only LUNs of targets with ALUA: elsewhere there is no state to report */
		bool any = false;

		for (int i = 0; i < sn.nluns; i++)
			any |= sn.luns[i].st.alua_group != 0;
		if (any)
			pb_family(&b, "iserd_lun_alua_state", "gauge",
				  "ALUA access state of the LUN on this gateway, as SPC-5 codes "
				  "it: 0 active/optimized, 1 active/non-optimized, 2 standby, "
				  "3 unavailable, 15 transitioning.");
		for (int i = 0; i < sn.nluns; i++)
			if (sn.luns[i].st.alua_group != 0)
				pb_printf(&b, "iserd_lun_alua_state{%s,group=\"%u\"} %u\n",
					  sn.luns[i].labels, sn.luns[i].st.alua_group,
					  sn.luns[i].st.alua_state);
	}
	for (int i = 0; i < sn.nluns; i++)
		own[i] = (struct io_owner){sn.luns[i].labels, &sn.luns[i].st.io};
	render_io(&b, "iserd_lun", "Per LUN", own, sn.nluns, true);

	pb_family(&b, "iserd_session_info", "gauge",
		  "One per session logged in (always 1): its transport, peer and age in the "
		  "labels and iserd_session_age_seconds.");
	for (int i = 0; i < sn.nsess; i++) {
		char peer[160];

		isd_ctl_prom_label_escape(peer, sizeof(peer), sn.sess[i].s.peer_addr);
		pb_printf(&b,
			  "iserd_session_info{%s,discovery=\"%s\",transport=\"%s\",peer=\"%s\"} 1\n",
			  sn.sess[i].labels, sn.sess[i].discovery ? "true" : "false",
			  transport_name(sn.sess[i].s.transport), peer);
	}
	pb_family(&b, "iserd_session_age_seconds", "gauge", "Time since the session logged in.");
	for (int i = 0; i < sn.nsess; i++)
		pb_printf(&b, "iserd_session_age_seconds{%s} %.3f\n", sn.sess[i].labels,
			  (double)sn.sess[i].s.age_ms / 1000.0);
	nown = 0;
	for (int i = 0; i < sn.nsess; i++) {
		/* a discovery session runs no SCSI command */
		if (!sn.sess[i].discovery)
			own[nown++] = (struct io_owner){sn.sess[i].labels, &sn.sess[i].s.io};
	}
	render_io(&b, "iserd_session", "Per session", own, nown, false);
	if (b.oom)
		goto oom;
	free(own);
	snap_free(&sn);
	if (b.p == NULL) {
		b.p = strdup("");
		if (b.p == NULL)
			return -ENOMEM;
	}
	*out = b.p;
	*len = b.len;
	return 0;

oom:
	free(own);
	free(b.p);
	snap_free(&sn);
	return -ENOMEM;
}
