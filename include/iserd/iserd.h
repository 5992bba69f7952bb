/**
 * @file iserd.h
 * @brief libiserd: an iSCSI initiator library (iSCSI over TCP, RFC 7143, and over
 * iSER, RFC 7145, behind the same API).
 *
 * The library runs inside the caller's event loop, the way libiscsi does:
 *
 * @code
 *	for (;;) {
 *		struct pollfd p = { .fd = iserd_get_fd(ctx), .events = iserd_which_events(ctx) };
 *		poll(&p, 1, iserd_next_timeout_ms(ctx));
 *		if (iserd_service(ctx, p.revents) < 0)
 *			break;
 *	}
 * @endcode
 *
 * The descriptor can change after a reconnect: ask iserd_get_fd() again on
 * every iteration. Every asynchronous call (`*_async`) takes a callback and a
 * callback argument. Rules (libuv's):
 *  - If the call returns an error (a negative errno), its callback never runs.
 *  - If it returns 0, the callback runs exactly once, later, from
 *    iserd_service() (or from iserd_context_destroy() with -ECANCELED), never
 *    inside the call itself.
 * Each `*_async` call has a blocking twin ending in `_sync` that runs its own
 * poll() loop on the context.
 *
 * Memory: the caller owns the context's callers' objects (tasks, buffers); the
 * library never frees them and never touches a task's buffer after its
 * callback ran. Data moves straight between the caller's buffers and the
 * socket (writev for Data-Out, readv at the Data-In BufferOffset): no bounce
 * buffers.
 *
 * Errors: functions return 0 or a negative errno; iserd_get_error() gives a
 * readable sentence about the last failure of the context. The library never
 * writes to stdout/stderr; set a log function with iserd_set_log_fn().
 *
 * A context is not thread-safe: use it from one thread (or lock around it).
 */
#ifndef ISERD_ISERD_H
#define ISERD_ISERD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define ISERD_EXPORT __attribute__((visibility("default")))
#else
#define ISERD_EXPORT
#endif

/** Library version as a string ("0.1.0"). */
ISERD_EXPORT const char *iserd_version(void);

/**
 * For printing what a target sent (target names and addresses from discovery,
 * the TargetAlias, any string of its data): copies src into dst with every
 * byte outside printable ASCII, and the backslash, written as \xNN, so that a
 * hostile target cannot forge output lines or send terminal escapes. Cut with
 * "..." when dst (len >= 4 bytes) is too short; NULL renders as "(null)".
 * @return dst.
 */
ISERD_EXPORT const char *iserd_escape(char *dst, size_t len, const char *src);

/* ------------------------------------------------------------------------ */
/* URLs                                                                     */
/* ------------------------------------------------------------------------ */

/** Transport named by a URL scheme. */
enum iserd_transport {
	ISERD_TRANSPORT_TCP = 0,  /**< iscsi:// : iSCSI over TCP */
	ISERD_TRANSPORT_ISER = 1, /**< iser:// : iSCSI Extensions for RDMA */
};

#define ISERD_HOST_MAX 256
#define ISERD_NAME_MAX 224 /**< iSCSI names are at most 223 bytes (RFC 7143 §4.2.7.1) */
#define ISERD_SECRET_MAX 256

/** A parsed URL: iscsi://[user[%password]@]host[:port][/target-iqn[/lun]][?args]. */
struct iserd_url {
	enum iserd_transport transport;
	char host[ISERD_HOST_MAX];   /**< name or address, IPv6 without brackets */
	uint16_t port;		     /**< 3260 when the URL names none */
	char target[ISERD_NAME_MAX]; /**< "" when absent */
	bool has_lun;
	uint64_t lun;
	char user[ISERD_SECRET_MAX];		/**< CHAP name, "" when absent */
	char password[ISERD_SECRET_MAX];	/**< CHAP secret (may contain '%', '@', ':') */
	char target_user[ISERD_SECRET_MAX];	/**< ?target_user= (mutual CHAP) */
	char target_password[ISERD_SECRET_MAX]; /**< ?target_password= (mutual CHAP) */
	int header_digest; /**< ?header_digest=: -1 unset, else enum iserd_digest */
	int data_digest;   /**< ?data_digest=: -1 unset, else enum iserd_digest */
};

/**
 * Parses a URL naming a LUN: scheme, host, target and LUN are all required.
 * @param str the URL, e.g. "iscsi://user%secret@[::1]:3260/iqn.2026-11.org.iserd:t0/0".
 * @param out filled on success.
 * @param err if not NULL, receives a one-line reason on failure.
 * @param err_len size of err.
 * @return 0, or -EINVAL (malformed URL; err says why).
 */
ISERD_EXPORT int iserd_url_parse_full(const char *str, struct iserd_url *out, char *err,
				      size_t err_len);
/**
 * Parses a URL naming a portal, for discovery: target and LUN are optional.
 * @return 0 or -EINVAL.
 */
ISERD_EXPORT int iserd_url_parse_portal(const char *str, struct iserd_url *out, char *err,
					size_t err_len);

/* ------------------------------------------------------------------------ */
/* Context                                                                  */
/* ------------------------------------------------------------------------ */

struct iserd_context;

/**
 * Generic completion callback.
 * @param ctx the context.
 * @param status 0 on success, or a negative errno (-ECONNRESET: the connection
 *        was lost; -ECANCELED: aborted or the context was destroyed;
 *        -EACCES: login refused; -EPROTO: the target broke the protocol;
 *        -ETIMEDOUT). iserd_get_error() says more.
 * @param data call-specific result (the task for SCSI commands, the
 *        discovery list for discovery, NULL otherwise).
 * @param cb_arg the argument given with the call.
 */
typedef void (*iserd_cb)(struct iserd_context *ctx, int status, void *data, void *cb_arg);

/** Log levels for iserd_set_log_fn(). */
enum iserd_log_level {
	ISERD_LOG_ERR = 0,
	ISERD_LOG_WARN = 1,
	ISERD_LOG_INFO = 2,
	ISERD_LOG_DEBUG = 3,
};
/** Log sink: one message without a trailing newline. */
typedef void (*iserd_log_fn)(enum iserd_log_level level, const char *msg, void *arg);

/**
 * Creates a context.
 * @param initiator_name our InitiatorName (iqn.…); NULL picks
 *        "iqn.2026-11.org.iserd:initiator".
 * @param out receives the context.
 * @return 0, -EINVAL (bad name), -ENOMEM.
 */
ISERD_EXPORT int iserd_context_create(const char *initiator_name, struct iserd_context **out);
/**
 * Closes the connection (without logout) and frees the context. Callbacks of
 * calls still pending run from here with -ECANCELED. NULL is accepted.
 */
ISERD_EXPORT void iserd_context_destroy(struct iserd_context *ctx);

/** Sets the log function (default: none, the library is silent). */
ISERD_EXPORT void iserd_set_log_fn(struct iserd_context *ctx, iserd_log_fn fn, void *arg);
/** Sets the level below which messages reach the log function (default ISERD_LOG_WARN). */
ISERD_EXPORT void iserd_set_log_level(struct iserd_context *ctx, enum iserd_log_level level);
/** The last error of the context as one sentence ("" if none). Valid until the next call. */
ISERD_EXPORT const char *iserd_get_error(const struct iserd_context *ctx);

/**
 * Sets the CHAP name and secret we answer the target's challenge with. An
 * empty or NULL user turns CHAP off. Takes effect at the next login.
 * @return 0 or -EINVAL (too long).
 */
ISERD_EXPORT int iserd_set_chap(struct iserd_context *ctx, const char *user, const char *secret);
/**
 * Enables mutual CHAP: we challenge the target and expect it to answer as
 * `user` with `secret`. Needs iserd_set_chap(). NULL turns it off.
 * @return 0 or -EINVAL.
 */
ISERD_EXPORT int iserd_set_mutual_chap(struct iserd_context *ctx, const char *user,
				       const char *secret);
/**
 * The CHAP algorithms we offer, comma separated, of "sha3-256", "sha256",
 * "sha1", "md5" (CHAP_A 8, 7, 6, 5; any order, any case). They are always
 * offered strongest first, and the target chooses; a target that chooses one
 * not offered is refused. Mutual CHAP uses the algorithm the target chose.
 * Default (and NULL): all four, "8,7,6,5". Takes effect at the next login.
 * @return 0 or -EINVAL (an unknown name, or none).
 */
ISERD_EXPORT int iserd_set_chap_algs(struct iserd_context *ctx, const char *algs);

/** Digest preferences, offered in this order. */
enum iserd_digest {
	ISERD_DIGEST_NONE = 0,	      /**< "None" */
	ISERD_DIGEST_CRC32C = 1,      /**< "CRC32C" (required) */
	ISERD_DIGEST_CRC32C_NONE = 2, /**< "CRC32C,None" (preferred) */
	ISERD_DIGEST_NONE_CRC32C = 3, /**< "None,CRC32C" */
};
/** Sets the HeaderDigest and DataDigest offers (default NONE for both). @return 0 or -EINVAL. */
ISERD_EXPORT int iserd_set_digests(struct iserd_context *ctx, enum iserd_digest header,
				   enum iserd_digest data);
/**
 * Sets the number of commands that may be outstanding at once (default 128,
 * 1..4096). Further submissions return -EAGAIN. Takes effect at connect.
 */
ISERD_EXPORT int iserd_set_queue_depth(struct iserd_context *ctx, uint32_t depth);

/** What to do when the connection of a logged-in session drops. */
enum iserd_reconnect {
	ISERD_RECONNECT_OFF = 0,   /**< fail outstanding commands, stay disconnected */
	ISERD_RECONNECT_FAIL = 1,  /**< reconnect and log in again; fail the commands outstanding
				    at the loss (new ones wait for the new login) */
	ISERD_RECONNECT_RETRY = 2, /**< reconnect and log in again; re-send outstanding commands */
};
/**
 * Sets the reconnect policy (default OFF).
 * @param max_attempts connection attempts before giving up (0: 30).
 * @param interval_ms pause between attempts (0: 1000).
 */
ISERD_EXPORT void iserd_set_reconnect(struct iserd_context *ctx, enum iserd_reconnect mode,
				      uint32_t max_attempts, uint32_t interval_ms);
/**
 * Keepalive: after interval_ms without any PDU from the target, send a
 * NOP-Out ping; after timeout_ms of silence, treat the connection as lost.
 * 0 turns it off (default). Target pings (NOP-In) are always answered.
 */
ISERD_EXPORT void iserd_set_nop(struct iserd_context *ctx, uint32_t interval_ms,
				uint32_t timeout_ms);
/** Bounds a login (connect included) to timeout_ms (default 15000). */
ISERD_EXPORT void iserd_set_login_timeout(struct iserd_context *ctx, uint32_t timeout_ms);

/* ------------------------------------------------------------------------ */
/* Event loop                                                               */
/* ------------------------------------------------------------------------ */

/** The descriptor to poll, or -1 while there is none (it changes across reconnects). */
ISERD_EXPORT int iserd_get_fd(const struct iserd_context *ctx);
/** The poll(2) events (POLLIN, POLLOUT) the context waits for. */
ISERD_EXPORT int iserd_which_events(const struct iserd_context *ctx);
/** Milliseconds until iserd_service() must be called even without events, or -1. */
ISERD_EXPORT int iserd_next_timeout_ms(const struct iserd_context *ctx);
/**
 * Does the work poll() reported (revents may be 0: then only timers run).
 * Completion callbacks run from here.
 * @return 0, or a negative errno when the context has failed for good
 *         (connection lost and not being re-established).
 */
ISERD_EXPORT int iserd_service(struct iserd_context *ctx, int revents);

/* ------------------------------------------------------------------------ */
/* Sessions                                                                 */
/* ------------------------------------------------------------------------ */

/** Session types. */
enum iserd_session_type {
	ISERD_SESSION_NORMAL = 0,    /**< a target's LUNs */
	ISERD_SESSION_DISCOVERY = 1, /**< SendTargets only */
};

/**
 * Connects to url's portal and logs in. For a normal session url->target
 * must be set. CHAP credentials and digest preferences found in the URL
 * override those set on the context.
 * @return 0 (cb runs later with 0, -ECONNREFUSED, -EACCES (login refused:
 *         iserd_get_login_status()), -ETIMEDOUT, -EPROTO…), -EINVAL, -EISCONN,
 *         -ENODEV/-EHOSTUNREACH (iser://: no RDMA device or route).
 */
ISERD_EXPORT int iserd_connect_async(struct iserd_context *ctx, const struct iserd_url *url,
				     enum iserd_session_type type, iserd_cb cb, void *cb_arg);
/** Blocking iserd_connect_async(). @return 0 or -errno. */
ISERD_EXPORT int iserd_connect_sync(struct iserd_context *ctx, const struct iserd_url *url,
				    enum iserd_session_type type);
/**
 * Logs out (close the session) and closes the connection. Outstanding
 * commands complete first or fail with -ECONNRESET.
 */
ISERD_EXPORT int iserd_logout_async(struct iserd_context *ctx, iserd_cb cb, void *cb_arg);
/** Blocking iserd_logout_async(). */
ISERD_EXPORT int iserd_logout_sync(struct iserd_context *ctx);
/** True while a session is in full feature phase. */
ISERD_EXPORT bool iserd_is_logged_in(const struct iserd_context *ctx);
/** Login status class/detail of the last login response (0 = success). */
ISERD_EXPORT uint16_t iserd_get_login_status(const struct iserd_context *ctx);
/** RFC 7143 §11.13.5 status in words ("authentication failure"). */
ISERD_EXPORT const char *iserd_login_status_str(uint16_t status);
/** Reconnects performed since the context was created. */
ISERD_EXPORT uint32_t iserd_get_reconnect_count(const struct iserd_context *ctx);

/** Negotiated session and connection values. */
struct iserd_negotiated {
	bool header_digest; /**< CRC32C on headers */
	bool data_digest;   /**< CRC32C on data */
	bool initial_r2t;
	bool immediate_data;
	uint32_t max_recv_dsl; /**< ours (what the target may send in one PDU) */
	uint32_t max_xmit_dsl; /**< the target's (our Data-Out size) */
	uint32_t max_burst_length;
	uint32_t first_burst_length;
	uint32_t max_outstanding_r2t;
	uint32_t error_recovery_level;
	uint32_t default_time2wait;
	uint32_t default_time2retain;
	uint16_t tsih;
	uint16_t tpgt;
	char target_name[ISERD_NAME_MAX];
	char target_alias[ISERD_NAME_MAX];
	bool chap;	  /**< we authenticated with CHAP */
	bool mutual_chap; /**< and the target proved itself */
};
/** Copies the negotiated values. @return 0 or -ENOTCONN before a login. */
ISERD_EXPORT int iserd_get_negotiated(const struct iserd_context *ctx,
				      struct iserd_negotiated *out);

/**
 * iSER (iser://) registers the caller's data buffers for RDMA through a
 * registration cache keyed by address range: a buffer reused across commands
 * is registered once and stays registered (and pinned) until it is evicted
 * (least recently used; at most 64 ranges and 1 GiB), the connection ends
 * (a reconnect registers anew) or the context is destroyed. Before unmapping memory that may be cached (munmap, or free() of
 * a large malloc block), call this so that a later mapping at the same
 * address is not served by the stale registration. Ranges still in use by a
 * command are dropped once that command completes. No-op for TCP.
 * @return 0.
 */
ISERD_EXPORT int iserd_mem_unregister(struct iserd_context *ctx, const void *addr, size_t len);

/** One portal of a discovered target. */
struct iserd_discovery_portal {
	char *address; /**< "host:port" or "[v6]:port" */
	int tpgt;
	struct iserd_discovery_portal *next;
};
/** One discovered target. */
struct iserd_discovery {
	char *target_name;
	struct iserd_discovery_portal *portals;
	struct iserd_discovery *next;
};
/**
 * SendTargets=All on a discovery session. The callback's data is a
 * `struct iserd_discovery *` list (possibly NULL if none) that the callback
 * owns: free it with iserd_discovery_free().
 */
ISERD_EXPORT int iserd_discover_async(struct iserd_context *ctx, iserd_cb cb, void *cb_arg);
/** Blocking iserd_discover_async(); *out is owned by the caller. */
ISERD_EXPORT int iserd_discover_sync(struct iserd_context *ctx, struct iserd_discovery **out);
/** Frees a discovery list. NULL is accepted. */
ISERD_EXPORT void iserd_discovery_free(struct iserd_discovery *list);

/** NOP-Out ping; the callback runs when the target's NOP-In answers. */
ISERD_EXPORT int iserd_nop_async(struct iserd_context *ctx, iserd_cb cb, void *cb_arg);
/** Blocking iserd_nop_async(). */
ISERD_EXPORT int iserd_nop_sync(struct iserd_context *ctx);

/* ------------------------------------------------------------------------ */
/* Sense data                                                               */
/* ------------------------------------------------------------------------ */

#define ISERD_SENSE_MAX 252

/** Decoded sense data (SPC-5 §4.4: fixed 0x70/0x71 and descriptor 0x72/0x73 formats). */
struct iserd_sense {
	uint8_t response_code; /**< 0x70..0x73 */
	bool descriptor;       /**< descriptor format */
	bool deferred;	       /**< 0x71/0x73 */
	uint8_t key;	       /**< sense key, 0..15 */
	uint8_t asc;
	uint8_t ascq;
	bool info_valid;
	uint64_t information; /**< INFORMATION field (e.g. the failing LBA) */
	bool sks_valid;	      /**< sense-key specific bytes present */
	uint8_t sks[3];
};
/**
 * Decodes sense data.
 * @return 0, or -EINVAL for data too short or of an unknown response code.
 */
ISERD_EXPORT int iserd_sense_decode(const uint8_t *buf, size_t len, struct iserd_sense *out);
/** Sense key in words ("ILLEGAL REQUEST"). */
ISERD_EXPORT const char *iserd_sense_key_str(uint8_t key);
/** Additional sense code in words ("LOGICAL BLOCK ADDRESS OUT OF RANGE"), or NULL if unknown. */
ISERD_EXPORT const char *iserd_sense_asc_str(uint8_t asc, uint8_t ascq);
/**
 * Formats "ILLEGAL REQUEST: LOGICAL BLOCK ADDRESS OUT OF RANGE (key 0x5, ASC/ASCQ 0x21/0x00)".
 * @return the length it wanted to write (as snprintf).
 */
ISERD_EXPORT int iserd_sense_format(const struct iserd_sense *s, char *buf, size_t len);
/** SCSI status in words ("CHECK CONDITION"). */
ISERD_EXPORT const char *iserd_scsi_status_str(uint8_t status);

/* ------------------------------------------------------------------------ */
/* SCSI commands                                                            */
/* ------------------------------------------------------------------------ */

#define ISERD_STATUS_GOOD 0x00
#define ISERD_STATUS_CHECK_CONDITION 0x02
#define ISERD_STATUS_CONDITION_MET 0x04
#define ISERD_STATUS_BUSY 0x08
#define ISERD_STATUS_RESERVATION_CONFLICT 0x18
#define ISERD_STATUS_TASK_SET_FULL 0x28
#define ISERD_STATUS_ACA_ACTIVE 0x30
#define ISERD_STATUS_TASK_ABORTED 0x40

/** Direction of a command's data. */
enum iserd_dir {
	ISERD_DIR_NONE = 0,
	ISERD_DIR_READ = 1,  /**< Data-In: target to initiator */
	ISERD_DIR_WRITE = 2, /**< Data-Out: initiator to target */
};

/**
 * One SCSI command. The caller owns it (stack, heap, pool) and keeps it, and
 * its buffer, untouched from submission until the callback ran. Fill it with
 * one of the iserd_task_* helpers (or set cdb/dir/xfer_len/iov by hand after
 * iserd_task_init()).
 */
struct iserd_task {
	/* Set by the caller. */
	uint64_t lun; /**< LUN number (encoded on the wire per SAM) */
	uint8_t cdb[16];
	uint8_t cdb_len; /**< 6..16 */
	enum iserd_dir dir;
	uint32_t xfer_len;	 /**< ExpectedDataTransferLength in bytes */
	const struct iovec *iov; /**< data buffer (the helpers point it at iov_one) */
	int iovcnt;
	struct iovec iov_one; /**< storage for a single-buffer task */
	void *user;	      /**< free for the caller */
	/* Results, valid in the callback when its status is 0. */
	uint8_t status;	   /**< SCSI status (ISERD_STATUS_*) */
	uint8_t response;  /**< iSCSI response (0 = command completed at target) */
	bool underflow;	   /**< the target moved less than xfer_len */
	bool overflow;	   /**< it wanted to move more */
	uint32_t residual; /**< by this many bytes */
	uint32_t sense_len;
	uint8_t sense[ISERD_SENSE_MAX];
	struct iserd_sense sense_info; /**< decoded when sense_len > 0 */
	bool sense_valid;
	uint32_t retries; /**< times it was re-sent after a reconnect */
	/* Library state: do not touch. */
	void *priv;
};

/** Zeroes a task. */
ISERD_EXPORT void iserd_task_init(struct iserd_task *t);
/**
 * Raw CDB.
 * @param cdb 6..16 bytes.
 * @param buf data buffer of len bytes (NULL if len is 0).
 * @return 0 or -EINVAL.
 */
ISERD_EXPORT int iserd_task_raw(struct iserd_task *t, uint64_t lun, const uint8_t *cdb,
				size_t cdb_len, enum iserd_dir dir, void *buf, uint32_t len);
/** TEST UNIT READY. */
ISERD_EXPORT void iserd_task_test_unit_ready(struct iserd_task *t, uint64_t lun);
/** INQUIRY (standard when evpd is false, else VPD page `page`) into buf. */
ISERD_EXPORT void iserd_task_inquiry(struct iserd_task *t, uint64_t lun, bool evpd, uint8_t page,
				     void *buf, uint16_t len);
/** READ CAPACITY (16) into buf (32 bytes suffice). */
ISERD_EXPORT void iserd_task_read_capacity16(struct iserd_task *t, uint64_t lun, void *buf,
					     uint32_t len);
/** REPORT LUNS (select report 0) into buf (LUN number ignored: well-known W-LUN use is LUN 0). */
ISERD_EXPORT void iserd_task_report_luns(struct iserd_task *t, uint64_t lun, void *buf,
					 uint32_t len);
/** READ (10) of nblocks blocks of block_size bytes at lba into buf. @return 0 or -EINVAL. */
ISERD_EXPORT int iserd_task_read10(struct iserd_task *t, uint64_t lun, uint32_t lba,
				   uint16_t nblocks, uint32_t block_size, void *buf);
/** READ (16). @return 0 or -EINVAL. */
ISERD_EXPORT int iserd_task_read16(struct iserd_task *t, uint64_t lun, uint64_t lba,
				   uint32_t nblocks, uint32_t block_size, void *buf);
/** WRITE (10), FUA if fua. @return 0 or -EINVAL. */
ISERD_EXPORT int iserd_task_write10(struct iserd_task *t, uint64_t lun, uint32_t lba,
				    uint16_t nblocks, uint32_t block_size, const void *buf,
				    bool fua);
/** WRITE (16). @return 0 or -EINVAL. */
ISERD_EXPORT int iserd_task_write16(struct iserd_task *t, uint64_t lun, uint64_t lba,
				    uint32_t nblocks, uint32_t block_size, const void *buf,
				    bool fua);
/** SYNCHRONIZE CACHE (16) of nblocks at lba (0, 0: the whole LUN). */
ISERD_EXPORT void iserd_task_sync_cache16(struct iserd_task *t, uint64_t lun, uint64_t lba,
					  uint32_t nblocks);
/** One UNMAP range. */
struct iserd_unmap_range {
	uint64_t lba;
	uint32_t nblocks;
};
/**
 * UNMAP of n ranges; the parameter list is built in buf (8 + 16 * n bytes),
 * which must stay valid until completion.
 * @return 0 or -EINVAL (buffer too small, n 0 or too large).
 */
ISERD_EXPORT int iserd_task_unmap(struct iserd_task *t, uint64_t lun,
				  const struct iserd_unmap_range *r, uint32_t n, void *buf,
				  uint32_t buf_len);
/**
 * WRITE SAME (16): one block of block_size bytes from buf, repeated over
 * nblocks at lba; with unmap set the target may deallocate instead.
 */
ISERD_EXPORT int iserd_task_write_same16(struct iserd_task *t, uint64_t lun, uint64_t lba,
					 uint32_t nblocks, uint32_t block_size, const void *buf,
					 bool unmap);

/**
 * Submits a command. On completion cb gets status 0 (the target answered:
 * look at task->status and task->sense_info) or a negative errno
 * (-ECONNRESET connection lost, -ECANCELED aborted, -EPROTO), with data = task.
 * @return 0, -ENOTCONN (not logged in), -EAGAIN (queue depth reached),
 *         -EINVAL (bad task: no CDB, buffer shorter than xfer_len).
 */
ISERD_EXPORT int iserd_task_submit(struct iserd_context *ctx, struct iserd_task *t, iserd_cb cb,
				   void *cb_arg);
/**
 * Blocking iserd_task_submit().
 * @return 0 when the target answered with GOOD, -EREMOTEIO when it answered with another
 *         status (see the task and iserd_get_error()), or another -errno.
 */
ISERD_EXPORT int iserd_task_sync(struct iserd_context *ctx, struct iserd_task *t);
/**
 * Writes the outcome of a completed task in words: "GOOD", or
 * "CHECK CONDITION: MEDIUM ERROR: UNRECOVERED READ ERROR (key 0x3, ASC/ASCQ 0x11/0x00)".
 */
ISERD_EXPORT int iserd_task_result_str(const struct iserd_task *t, char *buf, size_t len);

/** Task management responses (RFC 7143 §11.6.1). */
#define ISERD_TMF_COMPLETE 0
#define ISERD_TMF_NO_TASK 1
#define ISERD_TMF_NO_LUN 2
#define ISERD_TMF_NOT_SUPPORTED 5
#define ISERD_TMF_REJECTED 255
/**
 * ABORT TASK for a submitted task. The callback's data points at the
 * uint8_t TMF response (valid during the callback only); status is 0 when the function completed
 * (or the task no longer existed), -EIO otherwise. The aborted task's own callback runs with
 * -ECANCELED first, unless it completed before.
 */
ISERD_EXPORT int iserd_task_abort_async(struct iserd_context *ctx, struct iserd_task *t,
					iserd_cb cb, void *cb_arg);
/** Blocking iserd_task_abort_async(). */
ISERD_EXPORT int iserd_task_abort_sync(struct iserd_context *ctx, struct iserd_task *t);
/** LOGICAL UNIT RESET; outstanding tasks of that LUN complete with -ECANCELED. */
ISERD_EXPORT int iserd_lun_reset_async(struct iserd_context *ctx, uint64_t lun, iserd_cb cb,
				       void *cb_arg);
/** Blocking iserd_lun_reset_async(). */
ISERD_EXPORT int iserd_lun_reset_sync(struct iserd_context *ctx, uint64_t lun);

/* ------------------------------------------------------------------------ */
/* Parsers for command data                                                 */
/* ------------------------------------------------------------------------ */

/** Standard INQUIRY data. */
struct iserd_inquiry {
	uint8_t peripheral_qualifier;
	uint8_t device_type;
	bool removable;
	uint8_t version;
	char vendor[9]; /**< trailing spaces removed */
	char product[17];
	char revision[5];
};
/** @return 0 or -EINVAL (too short). */
ISERD_EXPORT int iserd_parse_inquiry(const void *buf, size_t len, struct iserd_inquiry *out);

/** READ CAPACITY (16) data. */
struct iserd_readcap16 {
	uint64_t last_lba;
	uint32_t block_size;
	uint64_t num_blocks; /**< last_lba + 1 */
	uint8_t lbppbe;	     /**< logical blocks per physical block exponent */
	bool lbpme;	     /**< thin provisioning enabled */
	bool lbprz;
};
/** @return 0 or -EINVAL. */
ISERD_EXPORT int iserd_parse_readcap16(const void *buf, size_t len, struct iserd_readcap16 *out);
/**
 * REPORT LUNS data: decodes up to max LUN numbers into luns.
 * @return the number of LUNs the target listed (may exceed max), or -EINVAL.
 */
ISERD_EXPORT int iserd_parse_report_luns(const void *buf, size_t len, uint64_t *luns, int max);

#ifdef __cplusplus
}
#endif

#endif
