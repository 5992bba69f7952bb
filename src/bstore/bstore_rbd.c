/*
 * rbd: backing store: a Ceph RBD image through librbd's C API,
 * rbd:POOL/IMAGE[@SNAP][,conf=FILE][,id=CLIENT][,ro] (docs/ceph.md).
 *
 * Opening connects to the cluster and opens the image, and blocks (LUN
 * creation, at start or from the control socket); it is bounded by the
 * client's mount and op timeouts, set to ISD_RBD_TIMEOUT_S unless the
 * configuration file sets its own. Everything after that is asynchronous:
 * reads, writes, flushes and discards are librbd aio requests whose
 * completions carry no callback. librbd instead writes the image's eventfd
 * (rbd_set_image_notification) when one completes, and the reactor, watching
 * that eventfd, collects them with rbd_poll_io_events and runs the owners'
 * callbacks on its own thread: never on a librbd thread, never inside the
 * submitting call.
 *
 * FUA is the write followed by an rbd_aio_flush before the command
 * completes: with librbd's cache on, a completed write may still be in the
 * client's memory, and the flush is what puts it on the OSDs.
 *
 * A resize made outside (`rbd resize`) reaches librbd's update watcher on a
 * librbd thread; that thread reads the new size and writes the same eventfd,
 * and the reactor takes the size and tells the owner (size_changed), which
 * raises CAPACITY DATA HAS CHANGED. A resize asked of iserd (lun.resize)
 * only grows: shrinking an image would delete its tail, which is
 * `rbd resize --allow-shrink`'s decision, not a target's.
 *
 * With lock=exclusive the store takes the image's exclusive lock at open
 * when nobody holds it, through librbd's managed lock (rbd_lock_acquire):
 * librbd then never hands the lock to another client that asks for it, so
 * the owner keeps it until it closes the image or is fenced. A helper
 * thread (rs_lock_thread) does what may block: every second it asks librbd
 * whether this client still owns the lock, and it runs a takeover (break the
 * owner's lock, which blocklists the owner's client, then acquire). It hands
 * what it learnt to the reactor through the same eventfd; the reactor sets
 * bs.lock and tells the owner (lock_changed). A store that owned the lock
 * and lost it was fenced (nothing here releases it while the store is
 * open): it stays ISD_BSTORE_LOCK_FENCED and refuses writes at submission,
 * while Ceph itself refuses the blocklisted client's writes already queued.
 *
 * Collected by the reactor it was opened on (bs.reactor), used from every
 * reactor: with several reactors (src/reactor) a request may be submitted on
 * any of them, and its callback must run on that one (bstore.h), while
 * librbd's completions all reach bs.reactor through the one eventfd. So each
 * request keeps the reactor it was submitted on (isd_bstore_reactor_here),
 * and when that is not the collecting thread's, the collector finishes what
 * librbd had to say (the FUA flush, the miscompare offset, a map copied out)
 * and posts the callback to the submitter with a message embedded in the
 * request (no allocation on the data path), which delivers it there under
 * the monitor held at submission. I/O, COMPARE AND WRITE, WRITE SAME, the
 * allocation map and the persistent reservation requests all do; what the
 * store raises by itself (size_changed, pr_changed, lock_changed) still
 * runs on bs.reactor.
 *
 * What submitters on several threads share: the count of requests in
 * librbd (inflight_n, atomic: the close waits until it is 0), the
 * reservation requests' list (pr_mu), the map queue (map_mu) and its
 * counters (atomic). A completion posted to another reactor has left
 * librbd, so closing the image does not wait for it; its message may still
 * be on the way when the store is closed (posted just before, or the
 * submitter paused at a barrier), and waiting for it there could deadlock
 * (the submitter may be the closing thread itself, or stopped). So instead
 * each posted message holds a reference on the store's memory (refs): the
 * close tears down the image, the cluster and the threads at once, marks
 * the store shut, and frees the struct only when the last message has run;
 * a message that finds the store shut frees its request and calls nothing
 * back (a closed store calls nothing back, as before). The owner still
 * closes the store on bs.reactor, or with the other reactors idle, as every
 * store requires (the eventfd is registered there).
 *
 * The watcher's fields and the lock thread's (under lock_mu, or atomic) are
 * the other state shared with threads.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <sys/uio.h>
#include <unistd.h>

#include <rados/librados.h>
#include <rbd/features.h>
#include <rbd/librbd.h>

#include "bstore/bstore.h"
#include "reactor/reactor.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

/* Seconds a connect, a monitor command or an OSD request may take. */
#define ISD_RBD_TIMEOUT_S "30"
/* librbd refuses more iovecs than this; beyond it the data goes through a bounce buffer. */
#define RBD_MAX_IOV 1024
/* Completions taken per rbd_poll_io_events call. */
#define RBD_POLL_BATCH 32

/*
 * An allocation map request scans at most this many objects of the image
 * (256 of 4 MiB: 1 GiB): rbd_diff_iterate2 lists each object's snapshots on
 * its OSD, so one GET LBA STATUS costs that many OSD reads at most, and the
 * initiator asks again from where the answer ended.
 */
#define RBD_MAP_SCAN_OBJECTS 256
/* Map requests queued per image (one runs at a time); beyond: BUSY. */
#define RBD_MAP_QUEUE_MAX 16

/* Name limits: far above what Ceph users write, low enough for one log line. */
#define RBD_NAME_MAX 96

extern const struct isd_bstore_kind isd_bstore_kind_rbd;

/* The parts of a spec; canon holds them joined again. */
struct rbd_spec {
	char pool[RBD_NAME_MAX + 1];
	char image[RBD_NAME_MAX + 1];
	char snap[RBD_NAME_MAX + 1];            /* "" for the image itself */
	char conf[ISD_BSTORE_PATH_MAX];         /* "" for librados's default search */
	char id[RBD_NAME_MAX + 1];              /* "" for client.admin */
	bool ro;
	bool lock;                              /* lock=exclusive */
};

enum rbd_op {
	ROP_READ,
	ROP_WRITE,
	ROP_FLUSH,
	ROP_DISCARD,
	ROP_CAW,
	ROP_WRITE_SAME,
};

struct rbd_bs;
struct rbd_preq;
struct rbd_pevent;
struct rbd_mapreq;

struct rbd_req {
	struct rbd_bs *rb;
	struct isd_reactor *r;          /* submitted on: the callback runs there */
	struct isd_reactor_msg msg;     /* the callback, posted to r */
	int status;                     /* for the posted callback */
	atomic_bool published;          /* req_publish, req_collect */
	enum rbd_op op;
	bool fua;               /* a write that still owes its flush */
	uint64_t off;                   /* where it starts, for the miscompare offset */
	uint64_t caw_mismatch;          /* librbd's: the image offset of a miscompare */
	uint64_t *mismatch;             /* the caller's: that offset from off */
	isd_bstore_cb cb;
	void *arg;
	struct isd_monitor *mon;        /* held at submission */
	rbd_completion_t comp;
	/* more iovecs than librbd takes: the data lives here, copied in or out */
	void *bounce;
	size_t len;
	const struct iovec *iov;        /* the caller's, for the copy out of bounce */
	int iovcnt;
	struct rbd_req *done_next;      /* on rb->caw_done */
};

struct rbd_bs {
	struct isd_bstore bs;
	rados_t cluster;
	rados_ioctx_t io;
	rbd_image_t image;
	int efd;
	bool fd_added;
	bool watching;
	uint64_t watch_handle;
	unsigned dispatching;           /* inside rs_dispatch: destroy waits for it */
	bool closing;                   /* destroyed from a callback: rs_dispatch frees */
	_Atomic unsigned inflight_n;    /* I/O requests in librbd, from every reactor */
	/* 1 for the open store, 1 per callback posted and not yet run: the last frees rb */
	_Atomic unsigned refs;
	atomic_bool shut;               /* closed: posted callbacks are dropped */
	/*
	 * COMPARE AND WRITE completions, pushed by librbd's thread (see
	 * rs_caw_cb), taken by the reactor.
	 */
	_Atomic(struct rbd_req *) caw_done;
	bool caw_ok;                    /* librbd may compare and write (no fancy striping) */
	bool map_ordered;               /* no fancy striping: diff extents come in image order */
	uint64_t obj_size;              /* bytes per object */
	/* written by the watcher on librbd's thread, read on the reactor */
	_Atomic uint64_t watched_size;
	atomic_bool size_noticed;
	/* shared persistent reservations (rs_pr_*): none for a snapshot or ro */
	bool pr_on;
	char pr_oid[RBD_NAME_MAX + 16];
	uint64_t pr_cookie;             /* the watch on pr_oid, while pr_watch_live */
	bool pr_watch_live;             /* pr_cookie is a watch librados still holds */
	uint64_t pr_self;               /* our client id: our own notifies are acked at once */
	pthread_mutex_t pr_mu;          /* pr_inflight: submitters on any reactor */
	TAILQ_HEAD(, rbd_preq) pr_inflight;
	/* pushed by librados's threads, taken by the reactor (rs_take_pr) */
	_Atomic(struct rbd_preq *) pr_done;
	_Atomic(struct rbd_pevent *) pr_events;
	/* lock=exclusive: the lock thread and what it shares with the reactor */
	bool locking;
	bool lock_thread_on;
	pthread_t lock_thread;
	pthread_mutex_t lock_mu;
	pthread_cond_t lock_cv;
	bool lock_stop;                 /* under lock_mu: the thread ends */
	bool takeover_asked;            /* under lock_mu: the reactor asked for one */
	bool takeover_busy;             /* under lock_mu: asked and not yet reported */
	bool takeover_done;             /* under lock_mu: takeover_rc/why to report */
	int takeover_rc;
	char takeover_why[192];
	_Atomic uint8_t lock_seen;      /* enum isd_bstore_lock, as the thread last saw it */
	atomic_bool lock_noticed;       /* lock_seen or takeover_done changed */
	atomic_bool fenced;             /* a request failed as blocklisted */
	bool lock_reported;             /* reactor: the owner was told the state once */
	/*
	 * The allocation map (rs_get_map): a thread of its own, started at the
	 * first request, runs librbd's synchronous rbd_diff_iterate2 one request
	 * at a time; the reactor takes the answers (rs_take_map).
	 */
	bool map_thread_on;
	pthread_t map_thread;
	pthread_mutex_t map_mu;
	pthread_cond_t map_cv;
	bool map_stop;                  /* under map_mu: the thread ends */
	TAILQ_HEAD(, rbd_mapreq) map_queue;     /* under map_mu: not started yet */
	_Atomic unsigned map_pending;   /* submitted, not yet answered */
	_Atomic(struct rbd_mapreq *) map_done;  /* pushed by the thread, taken by the reactor */
	/* reactor: what the map requests cost, logged when the store closes */
	uint64_t map_scans, map_scanned_bytes;
	_Atomic uint64_t map_refused;   /* counted by submitters on any reactor */
};

/*
 * One allocation map request. The thread fills runs[] (its own copy, handed
 * to the caller's on the reactor) from rbd_diff_iterate2's callbacks, which
 * librbd may make from its own threads while the map thread waits: mu.
 */
struct rbd_mapreq {
	struct rbd_bs *rb;
	struct isd_reactor *r;          /* submitted on: the callback runs there */
	struct isd_reactor_msg msg;     /* the callback, posted to r */
	uint64_t off, end;              /* the range scanned: at most RBD_MAP_SCAN_OBJECTS */
	isd_bstore_cb cb;
	void *arg;
	struct isd_monitor *mon;        /* held at submission */
	struct isd_bstore_run *out;     /* the caller's */
	unsigned *out_n;
	pthread_mutex_t mu;
	uint64_t pos;                   /* under mu: described up to here */
	bool full;                      /* under mu: runs is full, the rest is not described */
	unsigned n, max;                /* under mu */
	int status;
	TAILQ_ENTRY(rbd_mapreq) link;
	struct rbd_mapreq *done_next;
	struct isd_bstore_run runs[];   /* max */
};

enum rbd_pkind {
	PREQ_LOAD,
	PREQ_COMMIT,
	PREQ_NOTIFY,
	PREQ_WATCH,     /* a new watch after the old one broke */
	PREQ_UNWATCH,   /* the broken one */
};

/* A RADOS request of the reservation state. */
struct rbd_preq {
	struct rbd_bs *rb;
	struct isd_reactor *r;          /* submitted on: the callback runs there */
	struct isd_reactor_msg msg;     /* the callback, posted to r */
	int status;                     /* for the posted callback */
	atomic_bool published;          /* preq_publish, rs_take_pr */
	bool tracked;                   /* in rb->pr_inflight (preq_publish) */
	enum rbd_pkind kind;
	uint64_t ver;                   /* load, commit: the object's version */
	uint64_t cookie;                /* watch: the new handle */
	uint64_t *out_newver;           /* commit: the version written */
	rados_completion_t comp;
	rados_read_op_t rop;
	rados_write_op_t wop;
	isd_bstore_cb cb;
	void *arg;
	struct isd_monitor *mon;        /* held at submission */
	/* load */
	char *buf;
	size_t nread;
	int prval;
	void **out_data;
	size_t *out_len;
	uint64_t *out_ver;
	/* notify */
	char *reply;
	size_t reply_len;
	TAILQ_ENTRY(rbd_preq) link;
	struct rbd_preq *done_next;
};

/* A notify from another gateway (or a watch error: msg NULL), for the reactor. */
struct rbd_pevent {
	struct rbd_pevent *next;
	uint64_t token;
	size_t len;
	unsigned char msg[];
};

/* ---- the spec ---- */

/* Pool, image, snapshot and client names: letters, digits, '.', '_', '-'. */
static bool
rs_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > RBD_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* An absolute path of printable characters (it is logged and kept in the spec). */
static bool
rs_path_ok(const char *s, size_t len)
{
	if (len == 0 || len >= ISD_BSTORE_PATH_MAX || s[0] != '/')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c >= 0x7f)
			return false;
	}
	return true;
}

/*
 * Splits rest ("POOL/IMAGE[@SNAP][,opt...]") into sp. The messages quote
 * only what passed the character checks, never the raw text, and they say
 * the syntax.
 */
static int
rs_spec_split(const char *rest, struct rbd_spec *sp, char *why, size_t whylen)
{
	const char *end = strchr(rest, ',');
	size_t nlen = end ? (size_t)(end - rest) : strlen(rest);
	const char *slash = memchr(rest, '/', nlen);
	const char *at = memchr(rest, '@', nlen);
	const char *img, *o;
	size_t plen, ilen;
	bool have_conf = false, have_id = false, have_ro = false, have_lock = false;

	memset(sp, 0, sizeof(*sp));
	if (nlen == 0) {
		isd_seterr(why, whylen, "%s", "rbd: needs POOL/IMAGE, e.g. rbd:rbd/disk1");
		return -EINVAL;
	}
	if (slash == NULL) {
		isd_seterr(why, whylen, "%s",
			   "rbd: needs POOL/IMAGE[@SNAP] (no '/' before the options)");
		return -EINVAL;
	}
	plen = (size_t)(slash - rest);
	if (!rs_name_ok(rest, plen)) {
		isd_seterr(why, whylen,
			   "rbd: bad pool name (1 to %d of A-Z a-z 0-9 . _ -)", RBD_NAME_MAX);
		return -EINVAL;
	}
	memcpy(sp->pool, rest, plen);
	img = slash + 1;
	if (at != NULL && at < img) {
		isd_seterr(why, whylen, "%s", "rbd: '@SNAP' goes after the image name");
		return -EINVAL;
	}
	ilen = at ? (size_t)(at - img) : nlen - plen - 1;
	if (!rs_name_ok(img, ilen)) {
		isd_seterr(why, whylen,
			   "rbd: bad image name (1 to %d of A-Z a-z 0-9 . _ -; namespaces are "
			   "not supported)",
			   RBD_NAME_MAX);
		return -EINVAL;
	}
	memcpy(sp->image, img, ilen);
	if (at != NULL) {
		size_t slen = nlen - plen - 1 - ilen - 1;

		if (!rs_name_ok(at + 1, slen)) {
			isd_seterr(why, whylen,
				   "rbd: bad snapshot name (1 to %d of A-Z a-z 0-9 . _ -)",
				   RBD_NAME_MAX);
			return -EINVAL;
		}
		memcpy(sp->snap, at + 1, slen);
		/* a snapshot cannot be written, whatever the spec says */
		sp->ro = true;
	}
	for (o = end; o != NULL; o = end) {
		size_t olen;

		o++;
		end = strchr(o, ',');
		olen = end ? (size_t)(end - o) : strlen(o);
		if (olen > 5 && strncmp(o, "conf=", 5) == 0) {
			if (have_conf || !rs_path_ok(o + 5, olen - 5)) {
				isd_seterr(why, whylen, "%s",
					   have_conf ? "rbd: conf= given twice"
						     : "rbd: conf= needs an absolute path of "
						       "printable characters without ','");
				return -EINVAL;
			}
			memcpy(sp->conf, o + 5, olen - 5);
			have_conf = true;
		} else if (olen > 3 && strncmp(o, "id=", 3) == 0) {
			if (have_id) {
				isd_seterr(why, whylen, "%s", "rbd: id= given twice");
				return -EINVAL;
			}
			if (olen > 10 && strncmp(o + 3, "client.", 7) == 0) {
				isd_seterr(why, whylen, "%s",
					   "rbd: id= takes the name after 'client.', e.g. "
					   "id=iserd");
				return -EINVAL;
			}
			if (!rs_name_ok(o + 3, olen - 3)) {
				isd_seterr(why, whylen,
					   "rbd: bad client id (1 to %d of A-Z a-z 0-9 . _ -)",
					   RBD_NAME_MAX);
				return -EINVAL;
			}
			memcpy(sp->id, o + 3, olen - 3);
			have_id = true;
		} else if (olen > 5 && strncmp(o, "lock=", 5) == 0) {
			bool excl = olen == 14 && strncmp(o + 5, "exclusive", 9) == 0;
			bool none = olen == 9 && strncmp(o + 5, "none", 4) == 0;

			if (have_lock || (!excl && !none)) {
				isd_seterr(why, whylen, "%s",
					   have_lock ? "rbd: lock= given twice"
						     : "rbd: lock= takes exclusive or none");
				return -EINVAL;
			}
			sp->lock = excl;
			have_lock = true;
		} else if (olen == 2 && strncmp(o, "ro", 2) == 0) {
			if (have_ro) {
				isd_seterr(why, whylen, "%s", "rbd: ro given twice");
				return -EINVAL;
			}
			sp->ro = true;
			have_ro = true;
		} else {
			/* the option is not quoted: it may hold anything */
			isd_seterr(why, whylen, "%s",
				   "rbd: unknown or empty option (conf=FILE, id=CLIENT, "
				   "lock=exclusive|none or ro)");
			return -EINVAL;
		}
	}
	if (sp->lock && sp->ro) {
		/* a reader needs no lock, and a snapshot cannot be locked */
		isd_seterr(why, whylen, "%s",
			   "rbd: lock=exclusive is for a writable image (not with ro or @SNAP)");
		return -EINVAL;
	}
	return 0;
}

static int
rs_parse(const char *rest, struct isd_bstore_spec *out, char *why, size_t whylen)
{
	struct rbd_spec *sp = malloc(sizeof(*sp));
	int n, rc;

	if (sp == NULL)
		return -ENOMEM;
	rc = rs_spec_split(rest, sp, why, whylen);
	if (rc == 0) {
		/* canonical: fixed order, no ",ro" (read_only travels on its own) */
		n = snprintf(out->canon, sizeof(out->canon), "rbd:%s/%s%s%s%s%s%s%s%s", sp->pool,
			     sp->image, sp->snap[0] ? "@" : "", sp->snap,
			     sp->conf[0] ? ",conf=" : "", sp->conf, sp->id[0] ? ",id=" : "",
			     sp->id, sp->lock ? ",lock=exclusive" : "");
		if (n < 0 || (size_t)n >= sizeof(out->canon)) {
			isd_seterr(why, whylen, "%s", "rbd: spec too long");
			rc = -EINVAL;
		}
	}
	if (rc == 0) {
		out->kind = &isd_bstore_kind_rbd;
		out->path[0] = '\0';
		out->size = 0;
		out->read_only = out->read_only || sp->ro;
	}
	free(sp);
	return rc;
}

/* The conf file, when named, must be readable; the cluster is not asked here. */
static int
rs_check(const struct isd_bstore_spec *spec, char *why, size_t whylen)
{
	struct rbd_spec *sp = malloc(sizeof(*sp));
	int rc;

	if (sp == NULL)
		return -ENOMEM;
	rc = rs_spec_split(spec->canon + 4, sp, why, whylen);
	if (rc == 0 && sp->conf[0] != '\0' && access(sp->conf, R_OK) < 0) {
		rc = -errno;
		isd_seterr(why, whylen, "conf %s: %s", sp->conf, strerror(-rc));
	}
	free(sp);
	return rc;
}

/* ---- I/O ---- */

static void rs_dispatch(struct rbd_bs *rb);

/* The struct's memory: freed by the last of the open store and its posted callbacks. */
static void
rs_unref(struct rbd_bs *rb)
{
	if (atomic_fetch_sub_explicit(&rb->refs, 1, memory_order_acq_rel) == 1)
		free(rb);
}

/*
 * A request submitted on r finishes on the collecting thread: false when
 * that is r (the caller calls back now), true when fn(arg) was posted to r
 * with m, holding a reference on rb until it has run.
 */
static bool
rs_post(struct rbd_bs *rb, struct isd_reactor *r, struct isd_reactor_msg *m, isd_task_cb fn,
	void *arg)
{
	if (r == isd_bstore_reactor_here(&rb->bs))
		return false;
	atomic_fetch_add_explicit(&rb->refs, 1, memory_order_relaxed);
	m->cb = fn;
	m->arg = arg;
	isd_reactor_post(r, m);
	return true;
}

/*
 * A request goes from its submitter's thread to the collector's through
 * librbd (or librados), whose own synchronization ThreadSanitizer does not
 * see (not instrumented, std::atomic). With one reactor both are the same
 * thread; with several, the submitter publishes the request with a release
 * store just before handing it to librbd and the collector takes it with an
 * acquire load of the same field: what the C library orders anyway, made
 * visible, so that the request's fields are not reported as a race. One
 * uncontended atomic store and load per request.
 */
static inline void
req_publish(struct rbd_req *req)
{
	atomic_store_explicit(&req->published, true, memory_order_release);
}

static inline void
req_collect(struct rbd_req *req)
{
	(void)atomic_load_explicit(&req->published, memory_order_acquire);
}

static void
req_free(struct rbd_req *req)
{
	free(req->bounce);
	isd_mem_free(req);
}

/* A request that never reached librbd, or was dropped by the close. */
static void
req_drop(struct rbd_req *req)
{
	atomic_fetch_sub_explicit(&req->rb->inflight_n, 1, memory_order_relaxed);
	req_free(req);
}

/* On the submitter's reactor: the callback the collector posted. */
static void
req_posted(void *arg)
{
	struct rbd_req *req = arg;
	struct rbd_bs *rb = req->rb;
	isd_bstore_cb cb = req->cb;
	void *cb_arg = req->arg;
	struct isd_monitor *mon = req->mon;
	int status = req->status;
	/* closed since it was posted: nothing is called back */
	bool shut = atomic_load_explicit(&rb->shut, memory_order_acquire);

	req_free(req);
	if (!shut)
		isd_bstore_deliver(mon, cb, cb_arg, status);
	rs_unref(rb);
}

static void
req_finish(struct rbd_req *req, int status)
{
	struct rbd_bs *rb = req->rb;
	isd_bstore_cb cb = req->cb;
	void *arg = req->arg;
	struct isd_monitor *mon = req->mon;

	/* out of librbd: the close no longer waits for it */
	atomic_fetch_sub_explicit(&rb->inflight_n, 1, memory_order_relaxed);
	req->status = status;
	if (rs_post(rb, req->r, &req->msg, req_posted, req))
		return;
	req_free(req);
	isd_bstore_deliver(mon, cb, arg, status);
}

static int
iov_len(const struct iovec *iov, int iovcnt, size_t *out)
{
	size_t len = 0;

	if (iovcnt <= 0)
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > SIZE_MAX - len)
			return -EINVAL;
		len += iov[i].iov_len;
	}
	*out = len;
	return 0;
}

static struct rbd_req *
req_alloc(struct rbd_bs *rb, enum rbd_op op, isd_bstore_cb cb, void *arg)
{
	struct rbd_req *req = isd_mem_zalloc(sizeof(*req));

	if (req == NULL)
		return NULL;
	req->rb = rb;
	req->op = op;
	req->cb = cb;
	req->arg = arg;
	req->mon = isd_monitor_current();
	req->r = isd_bstore_reactor_here(&rb->bs);
	/* no callback: the completion is collected by rbd_poll_io_events on the reactor */
	if (rbd_aio_create_completion(req, NULL, &req->comp) < 0) {
		isd_mem_free(req);
		return NULL;
	}
	/* counted before librbd has it: its completion may be collected at once */
	atomic_fetch_add_explicit(&rb->inflight_n, 1, memory_order_relaxed);
	return req;
}

/* Keeps req counted in flight, or drops it when librbd refused it at once. */
static int
req_submitted(struct rbd_bs *rb, struct rbd_req *req, int rc)
{
	(void)rb;
	if (rc < 0) {
		rbd_aio_release(req->comp);
		req_drop(req);
		return rc;
	}
	return 0;
}

static int
rs_range_ok(struct isd_bstore *bs, uint64_t off, uint64_t len)
{
	return off <= bs->size && len <= bs->size - off;
}

static int
rs_rw(struct isd_bstore *bs, enum rbd_op op, const struct iovec *iov, int iovcnt, uint64_t off,
       bool fua, isd_bstore_cb cb, void *arg)
{
	struct rbd_bs *rb = (struct rbd_bs *)bs;
	struct rbd_req *req;
	size_t len;
	int rc;

	if (op == ROP_WRITE && bs->read_only)
		return -EROFS;
	if (op == ROP_WRITE && isd_bstore_lock_state(bs) == ISD_BSTORE_LOCK_FENCED)
		return -ESHUTDOWN;
	if (iov_len(iov, iovcnt, &len) < 0 || !rs_range_ok(bs, off, len))
		return -EINVAL;
	req = req_alloc(rb, op, cb, arg);
	if (req == NULL)
		return -ENOMEM;
	req->fua = fua;
	req->len = len;
	if (iovcnt > RBD_MAX_IOV) {
		size_t at = 0;

		req->bounce = malloc(len ? len : 1);
		if (req->bounce == NULL) {
			rbd_aio_release(req->comp);
			req_drop(req);
			return -ENOMEM;
		}
		req->iov = iov;
		req->iovcnt = iovcnt;
		if (op == ROP_WRITE) {
			for (int i = 0; i < iovcnt; i++) {
				memcpy((char *)req->bounce + at, iov[i].iov_base, iov[i].iov_len);
				at += iov[i].iov_len;
			}
			req_publish(req);
			rc = rbd_aio_write(rb->image, off, len, req->bounce, req->comp);
		} else {
			req_publish(req);
			rc = rbd_aio_read(rb->image, off, len, req->bounce, req->comp);
		}
	} else if (op == ROP_WRITE) {
		req_publish(req);
		rc = rbd_aio_writev(rb->image, iov, iovcnt, off, req->comp);
	} else {
		req_publish(req);
		rc = rbd_aio_readv(rb->image, iov, iovcnt, off, req->comp);
	}
	return req_submitted(rb, req, rc);
}

static int
rs_read(struct isd_bstore *bs, const struct iovec *iov, int iovcnt, uint64_t off,
	 isd_bstore_cb cb, void *arg)
{
	return rs_rw(bs, ROP_READ, iov, iovcnt, off, false, cb, arg);
}

static int
rs_write(struct isd_bstore *bs, const struct iovec *iov, int iovcnt, uint64_t off, bool fua,
	  isd_bstore_cb cb, void *arg)
{
	return rs_rw(bs, ROP_WRITE, iov, iovcnt, off, fua, cb, arg);
}

static int
rs_flush(struct isd_bstore *bs, isd_bstore_cb cb, void *arg)
{
	struct rbd_bs *rb = (struct rbd_bs *)bs;
	struct rbd_req *req = req_alloc(rb, ROP_FLUSH, cb, arg);

	if (req == NULL)
		return -ENOMEM;
	req_publish(req);
	return req_submitted(rb, req, rbd_aio_flush(rb->image, req->comp));
}

static int
rs_discard(struct isd_bstore *bs, uint64_t off, uint64_t len, isd_bstore_cb cb, void *arg)
{
	struct rbd_bs *rb = (struct rbd_bs *)bs;
	struct rbd_req *req;

	if (bs->read_only)
		return -EROFS;
	if (isd_bstore_lock_state(bs) == ISD_BSTORE_LOCK_FENCED)
		return -ESHUTDOWN;
	if (!rs_range_ok(bs, off, len))
		return -EINVAL;
	req = req_alloc(rb, ROP_DISCARD, cb, arg);
	if (req == NULL)
		return -ENOMEM;
	req_publish(req);
	return req_submitted(rb, req, rbd_aio_discard(rb->image, off, len, req->comp));
}

/*
 * librbd 16's rbd_aio_compare_and_write never posts its completion to the
 * image's event socket (it is submitted as not "native async"), so this one
 * request has a callback: on librbd's thread it pushes the request on a
 * lock-free list and wakes the reactor through the same eventfd; the
 * reactor finishes it like the others (rs_dispatch).
 */
static void
rs_caw_cb(rbd_completion_t c, void *arg)
{
	struct rbd_req *req = arg;
	struct rbd_bs *rb = req->rb;
	struct rbd_req *head = atomic_load_explicit(&rb->caw_done, memory_order_relaxed);
	uint64_t one = 1;

	(void)c;
	do {
		req->done_next = head;
	} while (!atomic_compare_exchange_weak_explicit(&rb->caw_done, &head, req,
							memory_order_release,
							memory_order_relaxed));
	if (write(rb->efd, &one, sizeof(one)) < 0) {
		/* the counter is full: the reactor has a wakeup pending anyway */
	}
}

/*
 * librbd compares and writes atomically on the OSD (a cmpext and a write in
 * one object operation), which is what makes it atomic for every gateway of
 * the image. It takes only a range within one 512-byte sector (one block of
 * a 512-byte LU: what VMware's ATS sends); anything else is left to the
 * SCSI layer's read, compare and write.
 */
static int
rs_compare_and_write(struct isd_bstore *bs, const void *cmp, const void *data, size_t len,
		     uint64_t off, bool fua, uint64_t *mismatch, isd_bstore_cb cb, void *arg)
{
	struct rbd_bs *rb = (struct rbd_bs *)bs;
	struct rbd_req *req;
	ssize_t rc;

	if (bs->read_only)
		return -EROFS;
	if (isd_bstore_lock_state(bs) == ISD_BSTORE_LOCK_FENCED)
		return -ESHUTDOWN;
	if (len == 0 || !rs_range_ok(bs, off, len))
		return -EINVAL;
	if (!rb->caw_ok || off % 512 + len > 512)
		return -ENOTSUP;
	req = isd_mem_zalloc(sizeof(*req));
	if (req == NULL)
		return -ENOMEM;
	req->rb = rb;
	req->op = ROP_CAW;
	req->cb = cb;
	req->arg = arg;
	req->mon = isd_monitor_current();
	req->r = isd_bstore_reactor_here(bs);
	req->fua = fua;
	req->off = off;
	req->len = len;
	req->mismatch = mismatch;
	if (rbd_aio_create_completion(req, rs_caw_cb, &req->comp) < 0) {
		isd_mem_free(req);
		return -ENOMEM;
	}
	atomic_fetch_add_explicit(&rb->inflight_n, 1, memory_order_relaxed);
	req_publish(req);
	rc = rbd_aio_compare_and_write(rb->image, off, len, cmp, data, req->comp,
				       &req->caw_mismatch, 0);
	return req_submitted(rb, req, rc < 0 ? (int)rc : 0);
}

static int
rs_write_same(struct isd_bstore *bs, const void *pattern, size_t plen, uint64_t off,
	      uint64_t len, bool fua, isd_bstore_cb cb, void *arg)
{
	struct rbd_bs *rb = (struct rbd_bs *)bs;
	struct rbd_req *req;

	if (bs->read_only)
		return -EROFS;
	if (isd_bstore_lock_state(bs) == ISD_BSTORE_LOCK_FENCED)
		return -ESHUTDOWN;
	if (plen == 0 || len == 0 || len % plen != 0 || len > SIZE_MAX || !rs_range_ok(bs, off, len))
		return -EINVAL;
	req = req_alloc(rb, ROP_WRITE_SAME, cb, arg);
	if (req == NULL)
		return -ENOMEM;
	req->fua = fua;
	req_publish(req);
	return req_submitted(rb, req,
			     rbd_aio_writesame(rb->image, off, (size_t)len, pattern, plen,
					       req->comp, 0));
}

/* ---- shared persistent reservation state ---- */

/*
 * The state lives in one RADOS object beside the image, "<image>.iserd-pr"
 * in its pool, whose whole content the SCSI layer writes. Every update is
 * one write operation guarded by the object version read with the state
 * (assert_version; exclusive create when there was none), so two gateways
 * changing it at once cannot both succeed: the loser gets -ESTALE, reloads
 * and redoes its command. Every gateway watches the object; the writer
 * notifies the others and waits for their acknowledgments (each acks once it
 * has reloaded and fenced, see pr.c). librados calls back on its own threads:
 * those only push onto lock-free lists and write the image's eventfd, and the
 * reactor finishes the requests (rs_take_pr), as for COMPARE AND WRITE.
 */

/* Largest state accepted: 128 registrations of two 255-byte names, with room. */
#define RBD_PR_MAX (128 * 1024)
/* How long a notify waits for the other gateways' acknowledgments. */
#define RBD_PR_NOTIFY_MS 10000

static void
rs_wake(struct rbd_bs *rb)
{
	uint64_t one = 1;

	if (write(rb->efd, &one, sizeof(one)) < 0) {
		/* the counter is full: the reactor has a wakeup pending anyway */
	}
}

/* librados's thread: a PR request completed. */
static void
rs_pr_cb(rados_completion_t c, void *arg)
{
	struct rbd_preq *req = arg;
	struct rbd_bs *rb = req->rb;
	struct rbd_preq *head = atomic_load_explicit(&rb->pr_done, memory_order_relaxed);

	(void)c;
	do {
		req->done_next = head;
	} while (!atomic_compare_exchange_weak_explicit(&rb->pr_done, &head, req,
							memory_order_release,
							memory_order_relaxed));
	rs_wake(rb);
}

/*
 * Just before a reservation request goes to librados: as req_publish, and
 * into pr_inflight. Its completion may be taken on the image's reactor
 * (rs_take_pr, which unlinks it) before the submitting call has returned
 * when that runs on another reactor, so it is linked before, not after.
 */
static inline void
preq_publish(struct rbd_bs *rb, struct rbd_preq *req)
{
	pthread_mutex_lock(&rb->pr_mu);
	TAILQ_INSERT_TAIL(&rb->pr_inflight, req, link);
	req->tracked = true;
	pthread_mutex_unlock(&rb->pr_mu);
	atomic_store_explicit(&req->published, true, memory_order_release);
}

static void
preq_free(struct rbd_preq *req)
{
	if (req->rop != NULL)
		rados_release_read_op(req->rop);
	if (req->wop != NULL)
		rados_release_write_op(req->wop);
	if (req->reply != NULL)
		rados_buffer_free(req->reply);
	free(req->buf);
	free(req);
}

static struct rbd_preq *
preq_alloc(struct rbd_bs *rb, enum rbd_pkind kind, isd_bstore_cb cb, void *arg)
{
	struct rbd_preq *req = calloc(1, sizeof(*req));

	if (req == NULL)
		return NULL;
	req->rb = rb;
	req->kind = kind;
	req->cb = cb;
	req->arg = arg;
	req->mon = isd_monitor_current();
	req->r = isd_bstore_reactor_here(&rb->bs);
	if (rados_aio_create_completion(req, rs_pr_cb, NULL, &req->comp) < 0) {
		free(req);
		return NULL;
	}
	return req;
}

/* After the submission: a request librados refused (it will not complete) is
 * unlinked and freed here. */
static int
preq_submitted(struct rbd_bs *rb, struct rbd_preq *req, int rc)
{
	if (rc < 0) {
		if (req->tracked) {
			pthread_mutex_lock(&rb->pr_mu);
			TAILQ_REMOVE(&rb->pr_inflight, req, link);
			pthread_mutex_unlock(&rb->pr_mu);
		}
		rados_aio_release(req->comp);
		preq_free(req);
		return rc;
	}
	return 0;
}

static int
rs_pr_load(struct isd_bstore *bs, void **data, size_t *len, uint64_t *ver, isd_bstore_cb cb,
	   void *arg)
{
	struct rbd_bs *rb = (struct rbd_bs *)bs;
	struct rbd_preq *req;

	if (!rb->pr_on)
		return -ENOTSUP;
	req = preq_alloc(rb, PREQ_LOAD, cb, arg);
	if (req == NULL)
		return -ENOMEM;
	req->buf = malloc(RBD_PR_MAX);
	req->rop = rados_create_read_op();
	if (req->buf == NULL || req->rop == NULL)
		return preq_submitted(rb, req, -ENOMEM);
	req->out_data = data;
	req->out_len = len;
	req->out_ver = ver;
	rados_read_op_read(req->rop, 0, RBD_PR_MAX, req->buf, &req->nread, &req->prval);
	preq_publish(rb, req);
	return preq_submitted(rb, req,
			      rados_aio_read_op_operate(req->rop, rb->io, req->comp, rb->pr_oid, 0));
}

static int
rs_pr_commit(struct isd_bstore *bs, const void *data, size_t len, uint64_t ver,
	     uint64_t *newver, isd_bstore_cb cb, void *arg)
{
	struct rbd_bs *rb = (struct rbd_bs *)bs;
	struct rbd_preq *req;

	if (!rb->pr_on)
		return -ENOTSUP;
	if (len > RBD_PR_MAX)
		return -EFBIG;
	req = preq_alloc(rb, PREQ_COMMIT, cb, arg);
	if (req == NULL)
		return -ENOMEM;
	req->out_newver = newver;
	req->wop = rados_create_write_op();
	if (req->wop == NULL)
		return preq_submitted(rb, req, -ENOMEM);
	if (ver == 0)
		rados_write_op_create(req->wop, LIBRADOS_CREATE_EXCLUSIVE, NULL);
	else
		rados_write_op_assert_version(req->wop, ver);
	/* write_full copies the data at submission */
	rados_write_op_write_full(req->wop, data, len);
	preq_publish(rb, req);
	return preq_submitted(rb, req,
			      rados_aio_write_op_operate(req->wop, rb->io, req->comp, rb->pr_oid,
							 NULL, 0));
}

static int
rs_pr_notify(struct isd_bstore *bs, const void *msg, size_t len, isd_bstore_cb cb, void *arg)
{
	struct rbd_bs *rb = (struct rbd_bs *)bs;
	struct rbd_preq *req;

	if (!rb->pr_on)
		return -ENOTSUP;
	if (len > RBD_PR_MAX)
		return -EFBIG;
	req = preq_alloc(rb, PREQ_NOTIFY, cb, arg);
	if (req == NULL)
		return -ENOMEM;
	preq_publish(rb, req);
	return preq_submitted(rb, req,
			      rados_aio_notify(rb->io, rb->pr_oid, req->comp, msg, (int)len,
					       RBD_PR_NOTIFY_MS, &req->reply, &req->reply_len));
}

/*
 * librados only sends the acknowledgment (the notifier collects it); it does
 * not wait for an answer, so the reactor may call it.
 */
static void
rs_pr_ack(struct isd_bstore *bs, uint64_t token)
{
	struct rbd_bs *rb = (struct rbd_bs *)bs;
	int rc;

	if (!rb->pr_on || token == 0)
		return;
	rc = rados_notify_ack(rb->io, rb->pr_oid, token, rb->pr_cookie, NULL, 0);
	if (rc < 0)
		isd_log_warn("%s: cannot acknowledge a reservation change: %s", rb->bs.desc,
			     strerror(-rc));
}

static void
rs_push_event(struct rbd_bs *rb, struct rbd_pevent *ev)
{
	struct rbd_pevent *head = atomic_load_explicit(&rb->pr_events, memory_order_relaxed);

	do {
		ev->next = head;
	} while (!atomic_compare_exchange_weak_explicit(&rb->pr_events, &head, ev,
							memory_order_release,
							memory_order_relaxed));
	rs_wake(rb);
}

/* librados's thread: another gateway (or we) changed the state. */
static void
rs_pr_watch_cb(void *arg, uint64_t notify_id, uint64_t handle, uint64_t notifier_id, void *data,
	       size_t data_len)
{
	struct rbd_bs *rb = arg;
	struct rbd_pevent *ev;

	if (notifier_id == rb->pr_self || data_len > RBD_PR_MAX) {
		/* our own change is applied already; an oversized one is no message of ours */
		rados_notify_ack(rb->io, rb->pr_oid, notify_id, handle, NULL, 0);
		return;
	}
	ev = malloc(sizeof(*ev) + data_len);
	if (ev == NULL) {
		rados_notify_ack(rb->io, rb->pr_oid, notify_id, handle, NULL, 0);
		return;
	}
	ev->token = notify_id;
	ev->len = data_len;
	if (data_len > 0)
		memcpy(ev->msg, data, data_len);
	rs_push_event(rb, ev);
}

/*
 * librados's thread: the watch broke (the OSD restarted, the connection
 * dropped) and notifies may have been missed. The owner reloads; the watch
 * is re-established on the reactor (rs_take_pr) with a blocking call, bounded
 * by the op timeout, which happens only after such a failure.
 */
static void
rs_pr_watch_err(void *arg, uint64_t cookie, int err)
{
	struct rbd_bs *rb = arg;
	struct rbd_pevent *ev = malloc(sizeof(*ev));

	(void)cookie;
	(void)err;
	if (ev == NULL)
		return;
	ev->token = 0;
	ev->len = SIZE_MAX;     /* marks the watch error */
	rs_push_event(rb, ev);
}

/*
 * On the submitter's reactor: the answer into the caller's places (kept
 * until now, so that a store closed meanwhile writes nothing there), then
 * the callback; the request goes.
 */
static void
preq_deliver(struct rbd_preq *req)
{
	if (req->kind == PREQ_LOAD && req->status == 0) {
		*req->out_data = NULL;
		*req->out_len = req->nread;
		*req->out_ver = req->ver;
		if (req->nread > 0) {
			*req->out_data = req->buf;
			req->buf = NULL;
		}
	} else if (req->kind == PREQ_COMMIT && req->status == 0) {
		*req->out_newver = req->ver;
	}
	isd_bstore_deliver(req->mon, req->cb, req->arg, req->status);
	preq_free(req);
}

static void
preq_posted(void *arg)
{
	struct rbd_preq *req = arg;
	struct rbd_bs *rb = req->rb;

	if (atomic_load_explicit(&rb->shut, memory_order_acquire))
		preq_free(req);
	else
		preq_deliver(req);
	rs_unref(rb);
}

static void
preq_done(struct rbd_preq *req)
{
	struct rbd_bs *rb = req->rb;
	int r = rados_aio_get_return_value(req->comp);
	uint64_t ver = rados_aio_get_version(req->comp);

	rados_aio_release(req->comp);
	pthread_mutex_lock(&rb->pr_mu);
	TAILQ_REMOVE(&rb->pr_inflight, req, link);
	pthread_mutex_unlock(&rb->pr_mu);
	if (rb->closing) {
		/* a new watch that came up while closing would call into a freed store */
		if (req->kind == PREQ_WATCH && r == 0)
			rados_unwatch2(rb->io, req->cookie);
		preq_free(req);
		return;
	}
	if (req->kind == PREQ_WATCH) {
		if (r < 0) {
			isd_log_err("%s: cannot watch the reservation state again: %s", rb->bs.desc,
				    strerror(r < -4095 ? EIO : -r));
		} else {
			rb->pr_cookie = req->cookie;
			rb->pr_watch_live = true;
			/* what changed while there was no watch: the owner reloads */
			if (rb->bs.pr_changed != NULL)
				rb->bs.pr_changed(rb->bs.pr_changed_arg, &rb->bs, NULL, 0, 0);
		}
		preq_free(req);
		return;
	}
	if (req->kind == PREQ_UNWATCH) {
		preq_free(req);
		return;
	}
	if (req->kind == PREQ_LOAD) {
		/* a load: no object yet is the empty state at version 0 */
		if (r == -ENOENT) {
			r = 0;
			ver = 0;
			req->nread = 0;
		} else if (r == 0 && req->prval < 0) {
			r = req->prval;
		}
		if (r == 0 && req->nread >= RBD_PR_MAX)
			r = -EFBIG;
	} else if (req->kind == PREQ_COMMIT) {
		/* the version moved (either way) or the object appeared: redo */
		if (r == -ERANGE || r == -EOVERFLOW || r == -EEXIST)
			r = -ESTALE;
	}
	if (r > 0)
		r = 0;
	req->status = r < -4095 ? -EIO : r;
	req->ver = ver;
	if (rs_post(rb, req->r, &req->msg, preq_posted, req))
		return;
	preq_deliver(req);
}

/*
 * After a watch error: drops the broken watch and makes a new one, both
 * asynchronous; once the new one is there the owner reloads (preq_done).
 */
static void
rs_pr_rewatch(struct rbd_bs *rb)
{
	struct rbd_preq *un = preq_alloc(rb, PREQ_UNWATCH, NULL, NULL);
	struct rbd_preq *w = preq_alloc(rb, PREQ_WATCH, NULL, NULL);

	/* the broken watch is dropped once: unwatching it twice frees it twice in librados */
	if (un != NULL && rb->pr_watch_live) {
		rb->pr_watch_live = false;
		preq_publish(rb, un);
		(void)preq_submitted(rb, un, rados_aio_unwatch(rb->io, rb->pr_cookie, un->comp));
	} else if (un != NULL) {
		rados_aio_release(un->comp);
		preq_free(un);
	}
	if (w != NULL)
		preq_publish(rb, w);
	if (w == NULL || preq_submitted(rb, w,
					rados_aio_watch2(rb->io, rb->pr_oid, w->comp, &w->cookie,
							 rs_pr_watch_cb, rs_pr_watch_err, 0,
							 rb)) < 0)
		isd_log_err("%s: cannot watch the reservation state again", rb->bs.desc);
}

static void
rs_take_pr(struct rbd_bs *rb)
{
	struct rbd_preq *req = atomic_exchange_explicit(&rb->pr_done, NULL, memory_order_acquire);
	struct rbd_pevent *ev = atomic_exchange_explicit(&rb->pr_events, NULL,
							  memory_order_acquire);
	struct rbd_preq *rfifo = NULL;
	struct rbd_pevent *efifo = NULL;

	while (req != NULL) {
		struct rbd_preq *next = req->done_next;

		req->done_next = rfifo;
		rfifo = req;
		req = next;
	}
	while (rfifo != NULL) {
		struct rbd_preq *next = rfifo->done_next;

		(void)atomic_load_explicit(&rfifo->published, memory_order_acquire);
		preq_done(rfifo);
		rfifo = next;
	}
	while (ev != NULL) {
		struct rbd_pevent *next = ev->next;

		ev->next = efifo;
		efifo = ev;
		ev = next;
	}
	while (efifo != NULL) {
		struct rbd_pevent *next = efifo->next;
		bool broke = efifo->len == SIZE_MAX;

		if (rb->closing) {
			/* nothing to do */
		} else if (broke) {
			isd_log_warn("%s: the watch on the reservation state broke: re-watching, "
				     "reloading", rb->bs.desc);
			rs_pr_rewatch(rb);
		} else if (rb->bs.pr_changed != NULL) {
			rb->bs.pr_changed(rb->bs.pr_changed_arg, &rb->bs,
					  efifo->len ? efifo->msg : NULL, efifo->len, efifo->token);
		} else {
			rs_pr_ack(&rb->bs, efifo->token);
		}
		free(efifo);
		efifo = next;
	}
}

/* Blocking: at open (and after a broken watch). */
static int
rs_pr_watch(struct rbd_bs *rb)
{
	rados_write_op_t op = rados_create_write_op();
	int rc;

	if (op == NULL)
		return -ENOMEM;
	/* one cannot watch what does not exist: an empty object is the empty state */
	rados_write_op_create(op, LIBRADOS_CREATE_IDEMPOTENT, NULL);
	rc = rados_write_op_operate(op, rb->io, rb->pr_oid, NULL, 0);
	rados_release_write_op(op);
	if (rc < 0)
		return rc;
	rc = rados_watch2(rb->io, rb->pr_oid, &rb->pr_cookie, rs_pr_watch_cb, rs_pr_watch_err, rb);
	rb->pr_watch_live = rc == 0;
	return rc;
}

/* ---- the exclusive lock (lock=exclusive) ---- */

/* The reactor learnt that the cluster fenced this client: the thread reports it. */
static void
rs_lock_fenced(struct rbd_bs *rb)
{
	if (atomic_exchange(&rb->fenced, true))
		return;
	pthread_mutex_lock(&rb->lock_mu);
	pthread_cond_signal(&rb->lock_cv);
	pthread_mutex_unlock(&rb->lock_mu);
}

/*
 * Lock thread: where this client stands. Owning the lock once and not any
 * more means it was broken (the store never releases it while open), so
 * that is FENCED, for good: the client is blocklisted and can write nothing.
 */
static uint8_t
rs_lock_probe(struct rbd_bs *rb, uint8_t before)
{
	int owner = 0, rc;

	if (before == ISD_BSTORE_LOCK_FENCED || atomic_load(&rb->fenced))
		return ISD_BSTORE_LOCK_FENCED;
	rc = rbd_is_exclusive_lock_owner(rb->image, &owner);
	if (rc == -ESHUTDOWN)
		return ISD_BSTORE_LOCK_FENCED;
	if (rc < 0)
		return before;
	if (owner)
		return ISD_BSTORE_LOCK_OWNER;
	return before == ISD_BSTORE_LOCK_OWNER ? ISD_BSTORE_LOCK_FENCED : ISD_BSTORE_LOCK_OTHER;
}

/*
 * Lock thread: takes the lock over. The owners' locks are broken first;
 * with rbd_blocklist_on_break_lock (Ceph's default) librbd blocklists each
 * owner's client on the OSDs before the lock goes, so a frozen owner that
 * wakes up can no longer write anything, even what it had queued. Then the
 * lock is acquired through the managed lock, like at open.
 */
static int
rs_lock_takeover(struct rbd_bs *rb, char *why, size_t whylen)
{
	char *owners[8];
	size_t n = sizeof(owners) / sizeof(owners[0]);
	rbd_lock_mode_t mode;
	unsigned broken = 0;
	int rc;

	rc = rbd_lock_get_owners(rb->image, &mode, owners, &n);
	if (rc == -ENOENT) {
		n = 0;
	} else if (rc < 0) {
		isd_seterr(why, whylen, "cannot list the lock's owners: %s", strerror(-rc));
		return rc;
	}
	for (size_t i = 0; i < n; i++) {
		rc = rbd_lock_break(rb->image, RBD_LOCK_MODE_EXCLUSIVE, owners[i]);
		/* ENOENT: the owner let go meanwhile, which is as good */
		if (rc < 0 && rc != -ENOENT) {
			rbd_lock_get_owners_cleanup(owners, n);
			isd_seterr(why, whylen, "cannot break the owner's lock: %s", strerror(-rc));
			return rc;
		}
		broken++;
	}
	if (n > 0)
		rbd_lock_get_owners_cleanup(owners, n);
	rc = rbd_lock_acquire(rb->image, RBD_LOCK_MODE_EXCLUSIVE);
	if (rc < 0) {
		isd_seterr(why, whylen, "broke %u lock%s, cannot acquire it: %s", broken,
			   broken == 1 ? "" : "s", strerror(-rc));
		return rc;
	}
	isd_seterr(why, whylen, "took the lock over (%u owner%s fenced)", broken,
		   broken == 1 ? "" : "s");
	return 0;
}

/* Polls ownership every second, runs the takeovers the reactor asks for. */
static void *
rs_lock_thread(void *arg)
{
	struct rbd_bs *rb = arg;
	uint8_t seen = atomic_load(&rb->lock_seen);

	/* the state found at open goes to the owner too (rs_take_lock) */
	atomic_store(&rb->lock_noticed, true);
	rs_wake(rb);
	pthread_mutex_lock(&rb->lock_mu);
	while (!rb->lock_stop) {
		bool wake = false;
		uint8_t now;

		if (rb->takeover_asked) {
			char why[sizeof(rb->takeover_why)] = "";
			int rc;

			rb->takeover_asked = false;
			pthread_mutex_unlock(&rb->lock_mu);
			rc = rs_lock_takeover(rb, why, sizeof(why));
			pthread_mutex_lock(&rb->lock_mu);
			rb->takeover_rc = rc;
			snprintf(rb->takeover_why, sizeof(rb->takeover_why), "%s", why);
			rb->takeover_done = true;
			wake = true;
		}
		pthread_mutex_unlock(&rb->lock_mu);
		now = rs_lock_probe(rb, seen);
		if (now != seen) {
			seen = now;
			atomic_store(&rb->lock_seen, now);
			wake = true;
		}
		if (wake) {
			atomic_store(&rb->lock_noticed, true);
			rs_wake(rb);
		}
		pthread_mutex_lock(&rb->lock_mu);
		if (!rb->lock_stop && !rb->takeover_asked && !atomic_load(&rb->fenced)) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&rb->lock_cv, &rb->lock_mu, &ts);
		} else if (!rb->lock_stop && !rb->takeover_asked && seen == ISD_BSTORE_LOCK_FENCED) {
			/* nothing changes any more: wait for the end */
			pthread_cond_wait(&rb->lock_cv, &rb->lock_mu);
		}
	}
	pthread_mutex_unlock(&rb->lock_mu);
	return NULL;
}

static const char *
rs_lock_name(uint8_t lock)
{
	switch (lock) {
	case ISD_BSTORE_LOCK_OWNER:
		return "owns the exclusive lock";
	case ISD_BSTORE_LOCK_OTHER:
		return "does not own the exclusive lock";
	case ISD_BSTORE_LOCK_FENCED:
		return "lost the exclusive lock: fenced (this client is blocklisted)";
	default:
		return "takes no lock";
	}
}

/* Reactor: what the lock thread learnt; tells the owner when it changed. */
static void
rs_take_lock(struct rbd_bs *rb)
{
	uint8_t now;

	if (!rb->locking || !atomic_exchange(&rb->lock_noticed, false))
		return;
	pthread_mutex_lock(&rb->lock_mu);
	if (rb->takeover_done) {
		rb->takeover_done = false;
		rb->takeover_busy = false;
		if (rb->takeover_rc < 0)
			isd_log_err("%s: takeover failed: %s", rb->bs.desc, rb->takeover_why);
		else
			isd_log_info("%s: %s", rb->bs.desc, rb->takeover_why);
	}
	pthread_mutex_unlock(&rb->lock_mu);
	now = atomic_load(&rb->lock_seen);
	/*
	 * The first report, even of the state found at open, lets the owner
	 * record it where it keeps states (the LU took it at open already).
	 */
	if (now == isd_bstore_lock_state(&rb->bs) && rb->lock_reported)
		return;
	rb->lock_reported = true;
	isd_log_info("%s: this gateway %s", rb->bs.desc, rs_lock_name(now));
	isd_bstore_lock_set(&rb->bs, now);
	if (rb->bs.lock_changed != NULL)
		rb->bs.lock_changed(rb->bs.lock_changed_arg, &rb->bs);
}

static int
rs_takeover_op(struct isd_bstore *bs, char *why, size_t whylen)
{
	struct rbd_bs *rb = (struct rbd_bs *)bs;
	int rc = 0;

	if (!rb->locking) {
		isd_seterr(why, whylen, "%s takes no lock (lock=exclusive)", bs->desc);
		return -ENOTSUP;
	}
	if (isd_bstore_lock_state(bs) == ISD_BSTORE_LOCK_OWNER) {
		isd_seterr(why, whylen, "%s: this gateway owns the lock already", bs->desc);
		return -EALREADY;
	}
	if (isd_bstore_lock_state(bs) == ISD_BSTORE_LOCK_FENCED) {
		/* the cluster refuses this client for good: only a new one can */
		isd_seterr(why, whylen,
			   "%s: this gateway was fenced; remove and add the LUN again (or "
			   "restart iserd) for a new Ceph client",
			   bs->desc);
		return -EPERM;
	}
	pthread_mutex_lock(&rb->lock_mu);
	if (rb->takeover_busy) {
		isd_seterr(why, whylen, "%s: a takeover is under way", bs->desc);
		rc = -EBUSY;
	} else {
		rb->takeover_busy = true;
		rb->takeover_asked = true;
		pthread_cond_signal(&rb->lock_cv);
	}
	pthread_mutex_unlock(&rb->lock_mu);
	return rc;
}

/* ---- the allocation map (GET LBA STATUS) ---- */

/*
 * librbd's thread (or the map thread): one extent of data, in ascending
 * order (librbd's OrderedThrottle hands the objects' answers back in order,
 * and without fancy striping an object's extents are in image order). The
 * gap before it is deallocated. When runs is full, the iteration is stopped
 * (a negative return): the runs so far hold, up to pos.
 */
static int
rs_map_cb(uint64_t off, size_t len, int exists, void *arg)
{
	struct rbd_mapreq *mq = arg;
	uint64_t end;
	int rc = 0;

	if (!exists || len == 0)
		return 0;       /* a hole is what the gaps say already */
	pthread_mutex_lock(&mq->mu);
	end = off + len;
	if (end > mq->end)
		end = mq->end;
	if (off < mq->pos)
		off = mq->pos;  /* not expected: never describe a byte twice */
	if (mq->full) {
		rc = -ECANCELED;
	} else if (off < end) {
		struct isd_bstore_run *last = mq->n ? &mq->runs[mq->n - 1] : NULL;

		if (off > mq->pos) {
			if (mq->n == mq->max) {
				mq->full = true;
				rc = -ECANCELED;
				goto out;
			}
			mq->runs[mq->n++] = (struct isd_bstore_run){ mq->pos, off - mq->pos, false };
			last = &mq->runs[mq->n - 1];
			mq->pos = off;
		}
		if (last != NULL && last->mapped) {
			last->len += end - off;
		} else if (mq->n == mq->max) {
			mq->full = true;
			rc = -ECANCELED;
			goto out;
		} else {
			mq->runs[mq->n++] = (struct isd_bstore_run){ off, end - off, true };
		}
		mq->pos = end;
	}
out:
	pthread_mutex_unlock(&mq->mu);
	return rc;
}

/* The map thread: one request. */
static void
rs_map_run(struct rbd_bs *rb, struct rbd_mapreq *mq)
{
	int rc = rbd_diff_iterate2(rb->image, NULL, mq->off, mq->end - mq->off, 1, 0, rs_map_cb, mq);

	pthread_mutex_lock(&mq->mu);
	if (rc == -ECANCELED && mq->full)
		rc = 0;
	if (rc == 0 && !mq->full && mq->pos < mq->end && mq->n < mq->max) {
		/* the tail after the last extent: deallocated */
		mq->runs[mq->n++] = (struct isd_bstore_run){ mq->pos, mq->end - mq->pos, false };
		mq->pos = mq->end;
	}
	if (rc == 0 && mq->n == 0)
		rc = -EIO;      /* cannot happen: max >= 1 and the range is not empty */
	mq->status = rc < -4095 ? -EIO : rc;
	pthread_mutex_unlock(&mq->mu);
}

static void *
rs_map_thread(void *arg)
{
	struct rbd_bs *rb = arg;

	pthread_mutex_lock(&rb->map_mu);
	while (!rb->map_stop) {
		struct rbd_mapreq *mq = TAILQ_FIRST(&rb->map_queue);
		struct rbd_mapreq *head;

		if (mq == NULL) {
			pthread_cond_wait(&rb->map_cv, &rb->map_mu);
			continue;
		}
		TAILQ_REMOVE(&rb->map_queue, mq, link);
		pthread_mutex_unlock(&rb->map_mu);
		/* bounded by the scan cap and the OSD op timeout */
		rs_map_run(rb, mq);
		head = atomic_load_explicit(&rb->map_done, memory_order_relaxed);
		do {
			mq->done_next = head;
		} while (!atomic_compare_exchange_weak_explicit(&rb->map_done, &head, mq,
								memory_order_release,
								memory_order_relaxed));
		rs_wake(rb);
		pthread_mutex_lock(&rb->map_mu);
	}
	pthread_mutex_unlock(&rb->map_mu);
	return NULL;
}

static void
mapreq_free(struct rbd_mapreq *mq)
{
	pthread_mutex_destroy(&mq->mu);
	free(mq);
}

/* On the submitter's reactor: the answer the collector copied out and posted. */
static void
mapreq_posted(void *arg)
{
	struct rbd_mapreq *mq = arg;
	struct rbd_bs *rb = mq->rb;
	isd_bstore_cb cb = mq->cb;
	void *cb_arg = mq->arg;
	struct isd_monitor *mon = mq->mon;
	int status = mq->status;
	bool shut = atomic_load_explicit(&rb->shut, memory_order_acquire);

	mapreq_free(mq);
	if (!shut)
		isd_bstore_deliver(mon, cb, cb_arg, status);
	rs_unref(rb);
}

/* Reactor: the answers of the map thread, in the order they were made. */
static void
rs_take_map(struct rbd_bs *rb)
{
	struct rbd_mapreq *mq = atomic_exchange_explicit(&rb->map_done, NULL,
							 memory_order_acquire);
	struct rbd_mapreq *fifo = NULL;

	while (mq != NULL) {
		struct rbd_mapreq *next = mq->done_next;

		mq->done_next = fifo;
		fifo = mq;
		mq = next;
	}
	while (fifo != NULL) {
		struct rbd_mapreq *next = fifo->done_next;
		isd_bstore_cb cb = fifo->cb;
		void *cb_arg = fifo->arg;
		struct isd_monitor *mon = fifo->mon;
		int status = fifo->status;

		atomic_fetch_sub_explicit(&rb->map_pending, 1, memory_order_relaxed);
		if (!rb->closing) {
			rb->map_scans++;
			if (status == 0) {
				rb->map_scanned_bytes += fifo->pos - fifo->off;
				memcpy(fifo->out, fifo->runs, fifo->n * sizeof(fifo->runs[0]));
				*fifo->out_n = fifo->n;
			}
			if (rs_post(rb, fifo->r, &fifo->msg, mapreq_posted, fifo)) {
				fifo = next;
				continue;
			}
		}
		mapreq_free(fifo);
		if (!rb->closing)
			isd_bstore_deliver(mon, cb, cb_arg, status);
		fifo = next;
	}
}

static int
rs_get_map(struct isd_bstore *bs, uint64_t off, uint64_t len, struct isd_bstore_run *runs,
	   unsigned max, unsigned *n, isd_bstore_cb cb, void *arg)
{
	struct rbd_bs *rb = (struct rbd_bs *)bs;
	struct rbd_mapreq *mq;
	uint64_t cap;
	int rc;

	/* with fancy striping the extents do not come in image order */
	if (!rb->map_ordered)
		return -ENOTSUP;
	if (max == 0 || len == 0 || !rs_range_ok(bs, off, len))
		return -EINVAL;
	/* submitters on several reactors: counted first, given back when refused */
	if (atomic_fetch_add_explicit(&rb->map_pending, 1, memory_order_relaxed) >=
	    RBD_MAP_QUEUE_MAX) {
		atomic_fetch_sub_explicit(&rb->map_pending, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&rb->map_refused, 1, memory_order_relaxed);
		return -EAGAIN;
	}
	mq = calloc(1, sizeof(*mq) + (size_t)max * sizeof(mq->runs[0]));
	if (mq == NULL) {
		atomic_fetch_sub_explicit(&rb->map_pending, 1, memory_order_relaxed);
		return -ENOMEM;
	}
	/* one scan covers whole objects from the object of off, at most the cap */
	cap = RBD_MAP_SCAN_OBJECTS * rb->obj_size - off % rb->obj_size;
	mq->rb = rb;
	mq->off = off;
	mq->end = off + (len < cap ? len : cap);
	mq->pos = off;
	mq->max = max;
	mq->cb = cb;
	mq->arg = arg;
	mq->mon = isd_monitor_current();
	mq->r = isd_bstore_reactor_here(bs);
	mq->out = runs;
	mq->out_n = n;
	pthread_mutex_init(&mq->mu, NULL);
	pthread_mutex_lock(&rb->map_mu);
	/* started by the first request, whichever reactor it came from */
	if (!rb->map_thread_on) {
		rc = -pthread_create(&rb->map_thread, NULL, rs_map_thread, rb);
		if (rc < 0) {
			pthread_mutex_unlock(&rb->map_mu);
			mapreq_free(mq);
			atomic_fetch_sub_explicit(&rb->map_pending, 1, memory_order_relaxed);
			return rc == -EAGAIN ? -ENOMEM : rc;
		}
		rb->map_thread_on = true;
	}
	TAILQ_INSERT_TAIL(&rb->map_queue, mq, link);
	pthread_cond_signal(&rb->map_cv);
	pthread_mutex_unlock(&rb->map_mu);
	return 0;
}

/* Teardown: the thread ends after the request it runs; what is left is dropped. */
static void
rs_map_stop(struct rbd_bs *rb)
{
	struct rbd_mapreq *mq;

	if (rb->map_thread_on) {
		pthread_mutex_lock(&rb->map_mu);
		rb->map_stop = true;
		pthread_cond_signal(&rb->map_cv);
		pthread_mutex_unlock(&rb->map_mu);
		pthread_join(rb->map_thread, NULL);
		rb->map_thread_on = false;
	}
	rs_take_map(rb);
	while ((mq = TAILQ_FIRST(&rb->map_queue)) != NULL) {
		TAILQ_REMOVE(&rb->map_queue, mq, link);
		mapreq_free(mq);
	}
	if (rb->map_scans > 0)
		isd_log_info("%s: allocation map: %" PRIu64 " scans of %" PRIu64
			     " bytes, %" PRIu64 " refused (queue full)",
			     rb->bs.desc, rb->map_scans, rb->map_scanned_bytes,
			     (uint64_t)atomic_load(&rb->map_refused));
}

/* One completion collected from librbd: finish its request, or go on to the FUA flush. */
static void
req_done(struct rbd_req *req, ssize_t r)
{
	struct rbd_bs *rb = req->rb;
	int rc;

	if (r == -EILSEQ && req->op == ROP_CAW) {
		/*
		 * SCSI wants the offset from the start of the compare. librbd means
		 * to give the image offset of the byte, but 16.2 gives the image
		 * offset of the object's start plus that offset: both are taken.
		 */
		uint64_t m = req->caw_mismatch;
		uint64_t obj = req->off - req->off % rb->obj_size;

		if (m >= req->off && m - req->off < req->len)
			*req->mismatch = m - req->off;
		else if (m >= obj && m - obj < req->len)
			*req->mismatch = m - obj;
		else
			*req->mismatch = 0;
		req_finish(req, -EILSEQ);
		return;
	}
	if (r < 0) {
		/* Ceph's EBLOCKLISTED is ESHUTDOWN: this client was fenced */
		if (r == -ESHUTDOWN && rb->locking)
			rs_lock_fenced(rb);
		req_finish(req, r < -4095 ? -EIO : (int)r);
		return;
	}
	if (req->op == ROP_READ && req->bounce != NULL) {
		size_t at = 0;

		for (int i = 0; i < req->iovcnt; i++) {
			memcpy(req->iov[i].iov_base, (char *)req->bounce + at, req->iov[i].iov_len);
			at += req->iov[i].iov_len;
		}
	}
	if ((req->op == ROP_WRITE || req->op == ROP_CAW || req->op == ROP_WRITE_SAME) && req->fua) {
		/* the data is written; the command completes when it is also flushed */
		req->fua = false;
		req->op = ROP_FLUSH;
		if (rbd_aio_create_completion(req, NULL, &req->comp) < 0) {
			req_finish(req, -ENOMEM);
			return;
		}
		rc = rbd_aio_flush(rb->image, req->comp);
		if (rc < 0) {
			rbd_aio_release(req->comp);
			req_finish(req, rc);
		}
		return;
	}
	req_finish(req, 0);
}

/* The image resized outside: take the size the watcher read, tell the owner. */
static void
rs_take_size(struct rbd_bs *rb)
{
	uint64_t size;

	if (!atomic_exchange(&rb->size_noticed, false))
		return;
	size = atomic_load(&rb->watched_size);
	if (size == 0 || size == rb->bs.size)
		return;
	isd_log_info("%s: the image is now %" PRIu64 " bytes (was %" PRIu64 ")", rb->bs.desc,
		     size, rb->bs.size);
	rb->bs.size = size;
	if (rb->bs.size_changed != NULL)
		rb->bs.size_changed(rb->bs.size_changed_arg, &rb->bs);
}

static void rs_teardown(struct rbd_bs *rb);

/* The COMPARE AND WRITEs librbd's thread pushed, finished in the order they completed. */
static void
rs_take_caw(struct rbd_bs *rb)
{
	struct rbd_req *req = atomic_exchange_explicit(&rb->caw_done, NULL, memory_order_acquire);
	struct rbd_req *fifo = NULL;

	while (req != NULL) {
		struct rbd_req *next = req->done_next;

		req->done_next = fifo;
		fifo = req;
		req = next;
	}
	while (fifo != NULL) {
		struct rbd_req *next = fifo->done_next;
		ssize_t r;

		/*
		 * rs_caw_cb pushed it but may not have returned: it still reads
		 * rb->efd and writes the eventfd after the push. librbd marks the
		 * completion complete only once its callback has returned; waiting
		 * for that (a moment at most: the push is the callback's last but
		 * one step) keeps rs_teardown from closing the eventfd and freeing
		 * rb under a callback still running on librbd's thread.
		 */
		rbd_aio_wait_for_complete(fifo->comp);
		req_collect(fifo);
		r = rbd_aio_get_return_value(fifo->comp);
		rbd_aio_release(fifo->comp);
		if (rb->closing) {
			req_drop(fifo);
		} else {
			req_done(fifo, r);
		}
		fifo = next;
	}
}

/*
 * The eventfd is read first, then the completions polled until librbd has
 * none: a completion posted after the read writes the eventfd again, so
 * none is left behind until the next event.
 */
static void
rs_dispatch(struct rbd_bs *rb)
{
	rbd_completion_t comps[RBD_POLL_BATCH];
	uint64_t v;
	int n;

	if (read(rb->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing new, a spurious wakeup; anything else cannot happen on an eventfd */
	}
	rb->dispatching++;
	rs_take_size(rb);
	rs_take_lock(rb);
	rs_take_caw(rb);
	rs_take_pr(rb);
	rs_take_map(rb);
	do {
		n = rbd_poll_io_events(rb->image, comps, RBD_POLL_BATCH);
		for (int i = 0; i < n; i++) {
			struct rbd_req *req = rbd_aio_get_arg(comps[i]);
			ssize_t r = rbd_aio_get_return_value(comps[i]);

			req_collect(req);
			rbd_aio_release(comps[i]);
			if (rb->closing) {
				/* destroyed by a callback: the rest are dropped with it */
				req_drop(req);
				continue;
			}
			req_done(req, r);
		}
	} while (n == RBD_POLL_BATCH);
	rb->dispatching--;
	if (rb->closing && rb->dispatching == 0)
		rs_teardown(rb);
}

static void
rs_event(void *arg, uint32_t events)
{
	(void)events;
	rs_dispatch(arg);
}

/* librbd's thread: the header changed (a resize, a snapshot...). Read the size there. */
static void
rs_watch_cb(void *arg)
{
	struct rbd_bs *rb = arg;
	uint64_t size = 0, one = 1;

	if (rbd_get_size(rb->image, &size) < 0)
		return;
	atomic_store(&rb->watched_size, size);
	atomic_store(&rb->size_noticed, true);
	if (write(rb->efd, &one, sizeof(one)) < 0) {
		/* the counter is full: the reactor has a wakeup pending anyway */
	}
}

/*
 * Grows the image (rbd_resize, a header update: quick). Shrinking would
 * delete the image's tail, so it is refused.
 */
static int
rs_resize_op(struct isd_bstore *bs, uint64_t size, char *why, size_t whylen)
{
	struct rbd_bs *rb = (struct rbd_bs *)bs;
	int rc;

	if (bs->read_only) {
		isd_seterr(why, whylen, "%s is read-only", bs->desc);
		return -EROFS;
	}
	if (size < bs->size) {
		isd_seterr(why, whylen,
			   "%s: iserd only grows RBD images (shrinking deletes data: use rbd "
			   "resize --allow-shrink, iserd follows)",
			   bs->desc);
		return -ENOTSUP;
	}
	rc = rbd_resize(rb->image, size);
	if (rc < 0) {
		isd_seterr(why, whylen, "%s: rbd_resize: %s", bs->desc, strerror(-rc));
		return rc;
	}
	bs->size = size;
	return 0;
}

/* Closes what is open; waits for requests still in librbd, dropping their callbacks. */
static void
rs_teardown(struct rbd_bs *rb)
{
	struct rbd_req *req;

	if (rb->lock_thread_on) {
		pthread_mutex_lock(&rb->lock_mu);
		rb->lock_stop = true;
		pthread_cond_signal(&rb->lock_cv);
		pthread_mutex_unlock(&rb->lock_mu);
		/* bounded by the op timeouts, like every librbd call it makes */
		pthread_join(rb->lock_thread, NULL);
		rb->lock_thread_on = false;
	}
	if (rb->watching)
		rbd_update_unwatch(rb->image, rb->watch_handle);
	/*
	 * What is finished from here on is dropped, not called back; so are
	 * callbacks already posted to other reactors that have not run yet.
	 */
	rb->closing = true;
	atomic_store_explicit(&rb->shut, true, memory_order_release);
	rs_map_stop(rb);
	if (rb->pr_on) {
		struct rbd_pevent *ev;

		if (rb->pr_watch_live) {
			rb->pr_watch_live = false;
			rados_unwatch2(rb->io, rb->pr_cookie);
		}
		rados_watch_flush(rb->cluster);
		for (;;) {
			rados_completion_t c = NULL;

			pthread_mutex_lock(&rb->pr_mu);
			if (!TAILQ_EMPTY(&rb->pr_inflight))
				c = TAILQ_FIRST(&rb->pr_inflight)->comp;
			pthread_mutex_unlock(&rb->pr_mu);
			if (c == NULL)
				break;
			rados_aio_wait_for_complete_and_cb(c);
			rs_take_pr(rb);
		}
		rs_take_pr(rb);
		ev = atomic_exchange(&rb->pr_events, NULL);
		while (ev != NULL) {
			struct rbd_pevent *next = ev->next;

			free(ev);
			ev = next;
		}
	}
	/* the requests still in librbd (posted completions have left it) */
	while (atomic_load(&rb->inflight_n) > 0) {
		rbd_completion_t c;
		struct pollfd pfd = { .fd = rb->efd, .events = POLLIN };

		rs_take_caw(rb);
		if (atomic_load(&rb->inflight_n) == 0)
			break;

		if (rbd_poll_io_events(rb->image, &c, 1) == 1) {
			req = rbd_aio_get_arg(c);
			rbd_aio_release(c);
			req_collect(req);
			req_drop(req);
			continue;
		}
		/* bounded by the OSD op timeout: librbd completes every request */
		if (poll(&pfd, 1, 1000) > 0) {
			uint64_t v;

			if (read(rb->efd, &v, sizeof(v)) < 0) {
				/* EAGAIN: polled again above */
			}
		}
	}
	if (rb->image != NULL)
		rbd_close(rb->image);
	if (rb->io != NULL)
		rados_ioctx_destroy(rb->io);
	if (rb->cluster != NULL)
		rados_shutdown(rb->cluster);
	if (rb->efd >= 0)
		close(rb->efd);
	pthread_cond_destroy(&rb->lock_cv);
	pthread_mutex_destroy(&rb->lock_mu);
	pthread_cond_destroy(&rb->map_cv);
	pthread_mutex_destroy(&rb->map_mu);
	pthread_mutex_destroy(&rb->pr_mu);
	/* the memory waits for the callbacks still posted (they only read shut and refs) */
	rs_unref(rb);
}

static void
rs_destroy(struct isd_bstore *bs)
{
	struct rbd_bs *rb = (struct rbd_bs *)bs;

	if (rb->fd_added) {
		isd_reactor_del_fd(bs->reactor, rb->efd);
		rb->fd_added = false;
	}
	if (rb->dispatching > 0) {
		/* from a callback rs_dispatch runs: it finishes the teardown */
		rb->closing = true;
		return;
	}
	rs_teardown(rb);
}

static const struct isd_bstore_ops rbd_ops = {
	.name = "rbd",
	.read = rs_read,
	.write = rs_write,
	.flush = rs_flush,
	.discard = rs_discard,
	.destroy = rs_destroy,
	.resize = rs_resize_op,
	.compare_and_write = rs_compare_and_write,
	.write_same = rs_write_same,
	.takeover = rs_takeover_op,
	.get_map = rs_get_map,
};

/* An image opened for writing also shares its persistent reservations. */
static const struct isd_bstore_ops rbd_pr_ops = {
	.name = "rbd",
	.read = rs_read,
	.write = rs_write,
	.flush = rs_flush,
	.discard = rs_discard,
	.destroy = rs_destroy,
	.resize = rs_resize_op,
	.compare_and_write = rs_compare_and_write,
	.write_same = rs_write_same,
	.pr_load = rs_pr_load,
	.pr_commit = rs_pr_commit,
	.pr_notify = rs_pr_notify,
	.pr_ack = rs_pr_ack,
	.takeover = rs_takeover_op,
	.get_map = rs_get_map,
};

/* ---- opening ---- */

/*
 * lock=exclusive at open: the lock is taken when nobody holds it; when a
 * gateway does, this one starts as not the owner (a takeover is what moves
 * the lock, never a request: the owner's managed lock refuses those).
 */
static int
rs_open_lock(struct rbd_bs *rb, char *err, size_t err_len)
{
	char *owners[8];
	size_t n = sizeof(owners) / sizeof(owners[0]);
	rbd_lock_mode_t mode;
	uint64_t features = 0;
	int rc;

	rc = rbd_get_features(rb->image, &features);
	if (rc < 0) {
		isd_seterr(err, err_len, "cannot read the image's features: %s", strerror(-rc));
		return rc;
	}
	if (!(features & RBD_FEATURE_EXCLUSIVE_LOCK)) {
		isd_seterr(err, err_len, "%s",
			   "lock=exclusive needs the image's exclusive-lock feature (rbd "
			   "feature enable POOL/IMAGE exclusive-lock)");
		return -EINVAL;
	}
	rc = rbd_lock_get_owners(rb->image, &mode, owners, &n);
	if (rc == 0 && n > 0) {
		rbd_lock_get_owners_cleanup(owners, n);
		isd_bstore_lock_set(&rb->bs, ISD_BSTORE_LOCK_OTHER);
		return 0;
	}
	if (rc < 0 && rc != -ENOENT) {
		isd_seterr(err, err_len, "cannot list the lock's owners: %s", strerror(-rc));
		return rc;
	}
	rc = rbd_lock_acquire(rb->image, RBD_LOCK_MODE_EXCLUSIVE);
	if (rc == 0) {
		isd_bstore_lock_set(&rb->bs, ISD_BSTORE_LOCK_OWNER);
	} else if (rc == -EROFS || rc == -EBUSY || rc == -EAGAIN) {
		/* another gateway was quicker */
		isd_bstore_lock_set(&rb->bs, ISD_BSTORE_LOCK_OTHER);
	} else {
		isd_seterr(err, err_len, "cannot acquire the exclusive lock: %s", strerror(-rc));
		return rc;
	}
	return 0;
}

/*
 * Connects and opens the image; every failure names its step. librados's
 * own messages stay out of iserd's log (log_to_stderr and err_to_stderr off
 * unless the conf file turns them on).
 */
static int
rs_open_image(struct rbd_bs *rb, const struct rbd_spec *sp, char *err, size_t err_len)
{
	/*
	 * Values set through the API outrank the conf file's, so the file is
	 * read first and a bound is set only where the file left Ceph's default
	 * (300 s to mount, no limit on monitor and OSD requests): a [client]
	 * section's own timeouts are kept. The rest is always set.
	 */
	static const struct {
		const char *name, *value;
		double ceph_default;    /* < 0: always set */
	} settings[] = {
		{ "client_mount_timeout", ISD_RBD_TIMEOUT_S, 300 },
		{ "rados_mon_op_timeout", ISD_RBD_TIMEOUT_S, 0 },
		{ "rados_osd_op_timeout", ISD_RBD_TIMEOUT_S, 0 },
		/* a partial-object discard is zeroed, not skipped: discard_zeroes holds */
		{ "rbd_skip_partial_discard", "false", -1 },
		/*
		 * Writes reach the messenger from the command's own buffer, without
		 * a copy, when librbd's cache is off (with rbd_cache_max_dirty > 0
		 * librbd copies anyway). Safe: every buffer handed to librbd stays
		 * valid and unchanged until its completion is collected on the
		 * reactor, and librbd holds that completion back until it dropped
		 * its last reference to the buffer (docs/ceph.md, "Copies").
		 */
		{ "rbd_disable_zero_copy_writes", "false", -1 },
		/* librados's lines stay out of iserd's log (a log_file still works) */
		{ "log_to_stderr", "false", -1 },
		{ "err_to_stderr", "false", -1 },
	};
	char name[RBD_NAME_MAX + 16], val[64];
	const char *snap = sp->snap[0] ? sp->snap : NULL;
	rbd_image_info_t info;
	uint64_t stripe_count = 0;
	int rc;

	snprintf(name, sizeof(name), "client.%s", sp->id[0] ? sp->id : "admin");
	rc = rados_create2(&rb->cluster, "ceph", name, 0);
	if (rc < 0) {
		rb->cluster = NULL;
		isd_seterr(err, err_len, "cannot create a Ceph client as %s: %s", name,
			   strerror(-rc));
		return rc;
	}
	rc = rados_conf_read_file(rb->cluster, sp->conf[0] ? sp->conf : NULL);
	if (rc < 0) {
		isd_seterr(err, err_len, "cannot read %s: %s",
			   sp->conf[0] ? sp->conf : "the default ceph.conf", strerror(-rc));
		return rc;
	}
	for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
		if (settings[i].ceph_default >= 0 &&
		    rados_conf_get(rb->cluster, settings[i].name, val, sizeof(val)) == 0 &&
		    strtod(val, NULL) != settings[i].ceph_default)
			continue;
		rc = rados_conf_set(rb->cluster, settings[i].name, settings[i].value);
		if (rc < 0) {
			isd_seterr(err, err_len, "cannot set %s: %s", settings[i].name,
				   strerror(-rc));
			return rc;
		}
	}
	rc = rados_connect(rb->cluster);
	if (rc < 0) {
		/* ENOENT here is the keyring librados looked for and did not find */
		isd_seterr(err, err_len, "cannot connect to the Ceph cluster as %s: %s%s", name,
			   strerror(-rc), rc == -ENOENT ? " (no keyring for it?)" : "");
		return rc;
	}
	rc = rados_ioctx_create(rb->cluster, sp->pool, &rb->io);
	if (rc < 0) {
		rb->io = NULL;
		isd_seterr(err, err_len, "pool %s: %s", sp->pool, strerror(-rc));
		return rc;
	}
	if (rb->bs.read_only)
		rc = rbd_open_read_only(rb->io, sp->image, &rb->image, snap);
	else
		rc = rbd_open(rb->io, sp->image, &rb->image, snap);
	if (rc < 0) {
		rb->image = NULL;
		isd_seterr(err, err_len, "image %s/%s%s%s: %s", sp->pool, sp->image,
			   snap ? "@" : "", snap ? snap : "", strerror(-rc));
		return rc;
	}
	rc = rbd_get_size(rb->image, &rb->bs.size);
	if (rc < 0) {
		isd_seterr(err, err_len, "cannot size the image: %s", strerror(-rc));
		return rc;
	}
	rc = rbd_stat(rb->image, &info, sizeof(info));
	if (rc == 0)
		rc = rbd_get_stripe_count(rb->image, &stripe_count);
	if (rc < 0) {
		isd_seterr(err, err_len, "cannot stat the image: %s", strerror(-rc));
		return rc;
	}
	/*
	 * librbd's COMPARE AND WRITE: a sector within one object; without fancy
	 * striping the object starts at a multiple of its size (the miscompare
	 * offset needs that).
	 */
	rb->obj_size = info.obj_size;
	rb->caw_ok = stripe_count <= 1 && info.obj_size >= 512 && info.obj_size % 512 == 0;
	rb->map_ordered = stripe_count <= 1 && info.obj_size > 0;
	/* a discard frees an object only when it covers all of it; with fancy
	 * striping an object's bytes are spread over an object set */
	rb->bs.discard_granularity = stripe_count <= 1 ? info.obj_size : info.obj_size * stripe_count;
	rb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (rb->efd < 0) {
		rc = -errno;
		isd_seterr(err, err_len, "eventfd: %s", strerror(-rc));
		return rc;
	}
	rc = rbd_set_image_notification(rb->image, rb->efd, EVENT_TYPE_EVENTFD);
	if (rc < 0) {
		isd_seterr(err, err_len, "cannot get completion events: %s", strerror(-rc));
		return rc;
	}
	rc = rbd_update_watch(rb->image, &rb->watch_handle, rs_watch_cb, rb);
	if (rc < 0) {
		isd_seterr(err, err_len, "cannot watch the image: %s", strerror(-rc));
		return rc;
	}
	rb->watching = true;
	if (!rb->bs.read_only && snap == NULL) {
		snprintf(rb->pr_oid, sizeof(rb->pr_oid), "%s.iserd-pr", sp->image);
		rb->pr_self = rados_get_instance_id(rb->cluster);
		rc = rs_pr_watch(rb);
		if (rc < 0) {
			isd_seterr(err, err_len, "cannot watch the reservation state %s: %s",
				   rb->pr_oid, strerror(-rc));
			return rc;
		}
		rb->pr_on = true;
	}
	if (rb->locking)
		return rs_open_lock(rb, err, err_len);
	return 0;
}

static int
rs_create(struct isd_reactor *r, const struct isd_bstore_spec *spec, struct isd_bstore **out,
	   char *err, size_t err_len)
{
	struct rbd_spec *sp = malloc(sizeof(*sp));
	struct rbd_bs *rb;
	char why[256] = "";
	int rc;

	if (sp == NULL)
		return -ENOMEM;
	rc = rs_spec_split(spec->canon + 4, sp, err, err_len);
	if (rc < 0) {
		free(sp);
		return rc;
	}
	rb = calloc(1, sizeof(*rb));
	if (rb == NULL) {
		free(sp);
		isd_seterr(err, err_len, "cannot allocate '%s'", spec->canon);
		return -ENOMEM;
	}
	rb->efd = -1;
	atomic_init(&rb->inflight_n, 0);
	atomic_init(&rb->refs, 1);
	atomic_init(&rb->shut, false);
	atomic_init(&rb->map_pending, 0);
	atomic_init(&rb->map_refused, 0);
	pthread_mutex_init(&rb->pr_mu, NULL);
	atomic_init(&rb->watched_size, 0);
	atomic_init(&rb->size_noticed, false);
	atomic_init(&rb->caw_done, NULL);
	TAILQ_INIT(&rb->pr_inflight);
	atomic_init(&rb->pr_done, NULL);
	atomic_init(&rb->pr_events, NULL);
	atomic_init(&rb->lock_seen, ISD_BSTORE_LOCK_NONE);
	atomic_init(&rb->lock_noticed, false);
	atomic_init(&rb->fenced, false);
	pthread_mutex_init(&rb->lock_mu, NULL);
	pthread_cond_init(&rb->lock_cv, NULL);
	pthread_mutex_init(&rb->map_mu, NULL);
	pthread_cond_init(&rb->map_cv, NULL);
	TAILQ_INIT(&rb->map_queue);
	atomic_init(&rb->map_done, NULL);
	rb->bs.ops = &rbd_ops;
	rb->bs.reactor = r;
	rb->bs.min_block = 1;
	rb->bs.read_only = spec->read_only || sp->ro;
	/* a read-only LU writes nothing, so it has nothing to fence */
	rb->locking = sp->lock && !rb->bs.read_only;
	/* RBD discards deallocate objects; a deallocated range reads as zeros */
	rb->bs.can_discard = true;
	rb->bs.discard_zeroes = true;
	snprintf(rb->bs.desc, sizeof(rb->bs.desc), "%.127s", spec->canon);
	rc = rs_open_image(rb, sp, why, sizeof(why));
	free(sp);
	if (rb->pr_on)
		rb->bs.ops = &rbd_pr_ops;
	if (rc == 0) {
		rc = isd_reactor_add_fd(r, rb->efd, EPOLLIN, rs_event, rb);
		if (rc < 0)
			isd_seterr(why, sizeof(why), "cannot watch the eventfd: %s", strerror(-rc));
		else
			rb->fd_added = true;
	}
	if (rc == 0 && rb->locking) {
		atomic_store(&rb->lock_seen, rb->bs.lock);
		rc = -pthread_create(&rb->lock_thread, NULL, rs_lock_thread, rb);
		if (rc < 0)
			isd_seterr(why, sizeof(why), "cannot start the lock thread: %s",
				   strerror(-rc));
		else
			rb->lock_thread_on = true;
	}
	if (rc < 0) {
		isd_seterr(err, err_len, "%s", why);
		rs_teardown(rb);
		return rc;
	}
	*out = &rb->bs;
	return 0;
}

const struct isd_bstore_kind isd_bstore_kind_rbd = {
	.scheme = "rbd",
	.usage = "rbd:POOL/IMAGE[@SNAP][,conf=FILE][,id=CLIENT][,lock=exclusive][,ro]",
	.help = "Ceph RBD image (librbd)",
	.product = "CEPH RBD",
	.thin = true,
	.own_size = true,
	.parse = rs_parse,
	.check = rs_check,
	.create = rs_create,
};
