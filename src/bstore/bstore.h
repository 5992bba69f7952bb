/*
 * Backing stores: where a logical unit's blocks live. Each kind (ram:, file:,
 * dev:, ...) is a struct isd_bstore_kind found by its scheme in a registry the
 * build generates from the list ISD_BSTORE_KINDS in CMakeLists.txt, so that
 * nothing above this layer names a kind.
 * All I/O is asynchronous: the callback runs once, from the reactor, never
 * inside the submitting call (so the SCSI layer's stack never recurses).
 *
 * A store may be used from every reactor of one group (src/reactor): the
 * callback of a request runs on the reactor of the thread that submitted it,
 * under the monitor (util/monitor.h) that thread held when it submitted, so
 * that the owner's state is guarded at completion as it was at submission:
 * a store records isd_monitor_current() in each request and calls back
 * through isd_bstore_deliver().
 */
#ifndef ISD_BSTORE_H
#define ISD_BSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "util/monitor.h"

struct isd_reactor;
struct isd_bstore;

/*
 * status 0 or -errno; -ESHUTDOWN: the store was fenced off its medium (a
 * cluster lock taken by another gateway), this gateway can no longer reach it.
 */
typedef void (*isd_bstore_cb)(void *arg, int status);

static inline void
isd_bstore_deliver(struct isd_monitor *mon, isd_bstore_cb cb, void *arg, int status)
{
	isd_monitor_enter(mon);
	cb(arg, status);
	isd_monitor_leave(mon);
}

/* One run of a store's allocation map (get_map). */
struct isd_bstore_run {
	uint64_t off;                   /* bytes */
	uint64_t len;
	bool mapped;                    /* false: deallocated (reads as zeros with discard_zeroes) */
};

struct isd_bstore_ops {
	const char *name;
	int (*read)(struct isd_bstore *bs, const struct iovec *iov, int iovcnt, uint64_t offset,
		    isd_bstore_cb cb, void *arg);
	int (*write)(struct isd_bstore *bs, const struct iovec *iov, int iovcnt, uint64_t offset,
		     bool fua, isd_bstore_cb cb, void *arg);
	int (*flush)(struct isd_bstore *bs, isd_bstore_cb cb, void *arg);
	/* Deallocate (UNMAP); the range then reads as zeros. */
	int (*discard)(struct isd_bstore *bs, uint64_t offset, uint64_t len, isd_bstore_cb cb,
		       void *arg);
	void (*destroy)(struct isd_bstore *bs);
	/*
	 * Optional: makes the store size bytes long while it runs (a LUN resize).
	 * 0, or -errno with a one-line reason in why; NULL: the kind cannot.
	 */
	int (*resize)(struct isd_bstore *bs, uint64_t size, char *why, size_t whylen);
	/*
	 * Optional: COMPARE AND WRITE done by the store, atomic against every
	 * writer of the medium (for RBD: other gateways of the same image too,
	 * which the SCSI layer's own gate cannot see). When the len bytes at
	 * offset equal cmp, data is written there. The callback gets 0; -EILSEQ
	 * on a miscompare, with *mismatch (the caller keeps it valid until then)
	 * set to the offset of the first differing byte from offset; or -errno.
	 * -ENOTSUP at submission: not for this range, the caller reads, compares
	 * and writes itself. NULL: never.
	 */
	int (*compare_and_write)(struct isd_bstore *bs, const void *cmp, const void *data,
				 size_t len, uint64_t offset, bool fua, uint64_t *mismatch,
				 isd_bstore_cb cb, void *arg);
	/*
	 * Optional: WRITE SAME done by the store in one request: the len bytes at
	 * offset (a multiple of plen) become the plen-byte pattern repeated.
	 * -ENOTSUP at submission, or NULL: the caller writes the pattern itself.
	 */
	int (*write_same)(struct isd_bstore *bs, const void *pattern, size_t plen, uint64_t offset,
			  uint64_t len, bool fua, isd_bstore_cb cb, void *arg);
	/*
	 * Optional, all four or none: persistent reservation state shared by
	 * every gateway of the medium (RBD: a RADOS object beside the image,
	 * docs/ceph.md). The store keeps opaque bytes; the SCSI layer encodes
	 * them (pr_share.c) and must treat what it loads as untrusted.
	 *
	 * pr_load: reads the state; at the callback *data (malloc'd, the caller
	 * frees it; NULL when empty), *len and *ver (the version to pass to
	 * pr_commit; 0: there is no state yet) are set, or status is -errno.
	 * pr_commit: replaces the state only if it is still at version ver;
	 * -ESTALE at the callback when another gateway changed it since; on
	 * success *newver is the version written (0: the store cannot say).
	 * pr_notify: sends msg to every other gateway's pr_changed and calls
	 * back once each has acknowledged it (pr_ack), -ETIMEDOUT when some did
	 * not in time.
	 * pr_ack: acknowledges the notification with that token.
	 */
	int (*pr_load)(struct isd_bstore *bs, void **data, size_t *len, uint64_t *ver,
		       isd_bstore_cb cb, void *arg);
	int (*pr_commit)(struct isd_bstore *bs, const void *data, size_t len, uint64_t ver,
			 uint64_t *newver, isd_bstore_cb cb, void *arg);
	int (*pr_notify)(struct isd_bstore *bs, const void *msg, size_t len, isd_bstore_cb cb,
			 void *arg);
	void (*pr_ack)(struct isd_bstore *bs, uint64_t token);
	/*
	 * Optional, for a store shared by several gateways under a cluster lock
	 * (lock != ISD_BSTORE_LOCK_NONE): starts taking the lock over from its
	 * owner, fencing that owner first so that it can never write again (RBD:
	 * the owner's client is blocklisted). Never blocks: the outcome reaches
	 * lock_changed. 0 when started, -EALREADY when this store owns the lock,
	 * -EBUSY when a takeover is under way, -ENOTSUP without a lock, with a
	 * one-line reason in why.
	 */
	int (*takeover)(struct isd_bstore *bs, char *why, size_t whylen);
	/*
	 * Optional: the allocation map (GET LBA STATUS). At the callback, with
	 * status 0, runs[0..*n) (1 <= *n <= max) are consecutive byte ranges,
	 * the first starting at offset, each mapped or deallocated; they may
	 * cover less than len: the store bounds the work of one call, and stops
	 * when runs is full. The caller keeps runs and n valid until the
	 * callback. -ENOTSUP at submission, or NULL: the store cannot tell, the
	 * caller reports the range mapped. -EAGAIN: too many under way.
	 */
	int (*get_map)(struct isd_bstore *bs, uint64_t offset, uint64_t len,
		       struct isd_bstore_run *runs, unsigned max, unsigned *n, isd_bstore_cb cb,
		       void *arg);
};

/* Where a store stands with the cluster lock that guards its medium. */
enum isd_bstore_lock {
	ISD_BSTORE_LOCK_NONE = 0,       /* no lock: the store writes whenever asked */
	ISD_BSTORE_LOCK_OWNER,          /* this gateway holds the lock */
	ISD_BSTORE_LOCK_OTHER,          /* another gateway holds it (or nobody): no writes */
	ISD_BSTORE_LOCK_FENCED,         /* taken away by a takeover: fenced for good */
};

struct isd_bstore {
	const struct isd_bstore_ops *ops;
	struct isd_reactor *reactor;
	uint64_t size;                  /* bytes */
	/*
	 * Direct I/O (O_DIRECT): offsets and lengths must be multiples of
	 * min_block, so a LU's block size must be one (1 = any). Buffers aligned
	 * to mem_align (0 or 1 = any) go to the device as they are; the store
	 * copies a less aligned one through its own.
	 */
	uint32_t min_block;
	uint32_t mem_align;
	bool read_only;
	bool can_discard;
	bool discard_zeroes;            /* a discarded range reads back as zeros (LBPRZ) */
	/* Bytes a discard frees whole, from offset 0 (an RBD object); 0: any block. A
	 * discard of less is still done (zeroed), it only frees nothing. */
	uint64_t discard_granularity;
	/* Non-NULL when the whole store is one memory region (RAM): the SCSI layer
	 * may point data-in straight at it (zero copy) and iSER may register it. */
	void *mem_base;
	/* Set by whoever registers mem_base for RDMA: the pages are pinned by the
	 * adapter, so discard must zero them in place, never drop them. */
	bool mem_pinned;
	char desc[128];                 /* "ram:1G", "file:/path" for logs */
	/* completions queued by isd_bstore_complete_later, per reactor (bstore.c) */
	struct isd_bstore_later *_Atomic later;
	/*
	 * Set by the owner, optional: called on the reactor after the store saw
	 * its size change outside iserd (an RBD image resized with `rbd resize`);
	 * size already holds the new size. Never called from the store's own
	 * resize op, whose caller knows.
	 */
	void (*size_changed)(void *arg, struct isd_bstore *bs);
	void *size_changed_arg;
	/*
	 * Set by the owner when the store has pr_load: called on the reactor
	 * when another gateway changed the shared reservation state, with its
	 * message (msg NULL, len 0: the store may have missed changes, reload).
	 * The owner must call pr_ack(token) once it has applied the change
	 * (token 0: nothing to acknowledge).
	 */
	void (*pr_changed)(void *arg, struct isd_bstore *bs, const void *msg, size_t len,
			   uint64_t token);
	void *pr_changed_arg;
	/*
	 * enum isd_bstore_lock; set by the store at open and on its reactor, read
	 * from any (a write's fencing check): through isd_bstore_lock_state and
	 * isd_bstore_lock_set only.
	 */
	uint8_t lock;
	/*
	 * Set by the owner, optional: called on the reactor after lock changed
	 * (this gateway took the lock, or lost it), so that the owner can follow
	 * it (ALUA states).
	 */
	void (*lock_changed)(void *arg, struct isd_bstore *bs);
	void *lock_changed_arg;
};

/* bs->lock, read on any reactor while the store's own may change it. */
static inline uint8_t
isd_bstore_lock_state(const struct isd_bstore *bs)
{
	return __atomic_load_n(&bs->lock, __ATOMIC_RELAXED);
}

static inline void
isd_bstore_lock_set(struct isd_bstore *bs, uint8_t state)
{
	__atomic_store_n(&bs->lock, state, __ATOMIC_RELAXED);
}

#define ISD_BSTORE_SPEC_MAX 4200       /* "file:" + PATH_MAX + ",size=..." */
#define ISD_BSTORE_PATH_MAX 4096

struct isd_bstore_kind;

/*
 * A backing spec parsed by its kind: what a configuration keeps, what the
 * check and create hooks take. Fields a kind has no use for stay zero.
 */
struct isd_bstore_spec {
	const struct isd_bstore_kind *kind;
	char canon[ISD_BSTORE_SPEC_MAX];        /* canonical spec, "ram:1G", without ",ro" */
	char path[ISD_BSTORE_PATH_MAX];         /* file or device path, "" for none */
	uint64_t size;                  /* bytes; 0 = the store's own size */
	bool read_only;
};

/*
 * One kind of backing store. A kind is declared in its own source as
 * `const struct isd_bstore_kind isd_bstore_kind_<scheme>` and registered by
 * adding <scheme> to ISD_BSTORE_KINDS in CMakeLists.txt (see docs/iserd.md,
 * "Adding a backing store").
 */
struct isd_bstore_kind {
	const char *scheme;             /* "ram": specs are "ram:..." */
	const char *usage;              /* syntax for messages and --help: "ram:SIZE" */
	const char *help;               /* a few words for --help (under 30 columns) */
	const char *product;            /* default INQUIRY product id, at most 16 chars */
	/*
	 * Thin provisioned whatever the store says; when false the LU is thin
	 * only if the opened store can discard (a device without discard is
	 * not offered UNMAP).
	 */
	bool thin;
	/*
	 * The spec never holds a size: the store has its own (a block device, an
	 * RBD image), so a resize changes the store and leaves the spec alone.
	 */
	bool own_size;
	/*
	 * Parses what follows "scheme:" into out (kind and canon included).
	 * 0, or -EINVAL with a one-line reason in why.
	 */
	int (*parse)(const char *rest, struct isd_bstore_spec *out, char *why, size_t whylen);
	/*
	 * Optional: says whether the store could be opened, without opening or
	 * allocating anything (--check, and before create for the OS's own
	 * words). 0 or -errno with the reason, without the spec, in why.
	 */
	int (*check)(const struct isd_bstore_spec *spec, char *why, size_t whylen);
	/* Opens the store on r. 0, or -errno with a one-line reason in err. */
	int (*create)(struct isd_reactor *r, const struct isd_bstore_spec *spec,
		      struct isd_bstore **out, char *err, size_t err_len);
};

/* The registered kinds in ISD_BSTORE_KINDS order (generated: bstore_kinds.c). */
extern const struct isd_bstore_kind *const isd_bstore_kinds[];
extern const unsigned isd_bstore_kind_count;

/* The kind whose "scheme:" starts spec, or NULL. */
const struct isd_bstore_kind *isd_bstore_kind_find(const char *spec);
/*
 * Parses a whole spec ("ram:1G", "file:/x,ro") with its kind's parser. An
 * unknown scheme gives -EINVAL and "expected ram:SIZE, ... or dev:PATH[,ro]".
 */
int isd_bstore_spec_parse(const char *spec, struct isd_bstore_spec *out, char *why,
			  size_t whylen);
/*
 * The usage strings of all kinds joined by sep, the last two by last_sep:
 * ("ram:SIZE, file:... or dev:PATH[,ro]"). Returns what snprintf would.
 */
int isd_bstore_kinds_usage(char *buf, size_t len, const char *sep, const char *last_sep);

/*
 * Opens a store from a spec: "ram:SIZE", "file:PATH[,size=SIZE][,ro]", "dev:PATH[,ro]",
 * or any other registered kind's. SIZE takes K/M/G/T suffixes (powers of
 * two). Errors: -EINVAL (bad spec, message in err), -ENOENT, -EACCES,
 * -ENOMEM... `err` gets a one-line reason.
 */
int isd_bstore_open(struct isd_reactor *r, const char *spec, struct isd_bstore **out,
		    char *err, size_t err_len);
/* Opens a parsed spec with its kind's create (callers wanting the OS's words run check first). */
int isd_bstore_open_spec(struct isd_reactor *r, const struct isd_bstore_spec *spec,
			 struct isd_bstore **out, char *err, size_t err_len);
void isd_bstore_close(struct isd_bstore *bs);
/*
 * Changes a store's size while it runs: file: grows the file when it is
 * shorter (never truncates it: a smaller size only stops using its tail),
 * dev: any size up to the device's own (re-read now, so that a grown device
 * is seen), zero: any size; ram: -ENOTSUP (its memory is mapped once and may
 * be registered for RDMA). 0 or -errno with a one-line reason in why.
 */
int isd_bstore_resize(struct isd_bstore *bs, uint64_t size, char *why, size_t whylen);
/* "1G" -> 1073741824; -EINVAL for garbage or overflow. */
int isd_parse_size(const char *s, uint64_t *out);

/* ---- helpers for the kinds ---- */

/*
 * The reactor of the calling thread (isd_reactor_current), or the one the
 * store was opened on when the thread runs none (a test driving a reactor by
 * hand): where a request's completion goes.
 */
struct isd_reactor *isd_bstore_reactor_here(const struct isd_bstore *bs);
/*
 * For a store whose work is done at submission (RAM, zero): runs cb(arg,
 * status) on the next turn of the calling thread's reactor. 0 or -ENOMEM.
 * isd_bstore_close() drops the ones still queued, so a kind's destroy need
 * not know about them.
 */
int isd_bstore_complete_later(struct isd_bstore *bs, int status, isd_bstore_cb cb, void *arg);


/* 1073741824 -> "1G": the largest exact suffix, so every spelling has one canonical form. */
void isd_bstore_size_format(uint64_t v, char *buf, size_t len);
/*
 * Direct I/O requests (file: and dev:) whose buffers were not aligned as the
 * device asks and went through a bounce buffer: one copy each. All stores
 * of the process together, since it started.
 */
uint64_t isd_bstore_direct_bounces(void);
/*
 * The whole of rest is a non-zero SIZE (ram:SIZE, zero:SIZE): fills out->size
 * and out->canon ("<scheme>:<canonical size>"). Errors name the scheme:
 * "ram: needs a size, e.g. ram:1G", "bad size '12Q' (use e.g. 512M, 1G)".
 */
int isd_bstore_parse_size_spec(const struct isd_bstore_kind *kind, const char *rest,
			       struct isd_bstore_spec *out, char *why, size_t whylen);

static inline int isd_bstore_read(struct isd_bstore *bs, const struct iovec *iov, int iovcnt,
				  uint64_t off, isd_bstore_cb cb, void *arg)
{
	return bs->ops->read(bs, iov, iovcnt, off, cb, arg);
}
static inline int isd_bstore_write(struct isd_bstore *bs, const struct iovec *iov, int iovcnt,
				   uint64_t off, bool fua, isd_bstore_cb cb, void *arg)
{
	return bs->ops->write(bs, iov, iovcnt, off, fua, cb, arg);
}

#endif
