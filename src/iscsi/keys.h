/*
 * Text keys (RFC 7143 §6, §13; iSER keys RFC 7145 §6): parsing key=value
 * text, building responses, and the target-side negotiation engine. Pure code:
 * no I/O, no session objects; the login state machine drives it.
 */
#ifndef ISD_ISCSI_KEYS_H
#define ISD_ISCSI_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ISD_KEY_NAME_MAX 63             /* RFC 7143 §6.1: key names up to 63 bytes */
#define ISD_KEY_VALUE_MAX 8192          /* longest value we accept (CHAP_C can be long) */
#define ISD_KV_MAX 128                  /* keys in one request */

/* A parsed key=value list; pointers go into `storage` (a private copy of the text). */
struct isd_kv {
	const char *key;
	const char *value;
};
struct isd_kv_list {
	struct isd_kv kv[ISD_KV_MAX];
	int count;
	char *storage;
};

/*
 * Parses a data segment of NUL-terminated key=value pairs. Accepts trailing NUL
 * padding. Returns 0, or -EINVAL for malformed text (not NUL-terminated, a pair
 * without '=', an empty or over-long key, a value over ISD_KEY_VALUE_MAX, more
 * than ISD_KV_MAX pairs), -ENOMEM. On success free with isd_kv_list_fini().
 */
int isd_kv_parse(const uint8_t *data, uint32_t len, struct isd_kv_list *out);
void isd_kv_list_fini(struct isd_kv_list *l);
/* Value of the first `key`, or NULL. */
const char *isd_kv_get(const struct isd_kv_list *l, const char *key);

/* A growing text buffer for responses ("k=v\0k=v\0"). */
struct isd_text_buf {
	char *buf;
	uint32_t len;
	uint32_t cap;
	bool oom;                       /* an append failed; the buffer is unusable */
};
void isd_text_buf_init(struct isd_text_buf *b);
void isd_text_buf_fini(struct isd_text_buf *b);
/* Appends "key=value\0". Returns 0 or -ENOMEM (and sets b->oom). */
int isd_text_append(struct isd_text_buf *b, const char *key, const char *value);
int isd_text_appendf(struct isd_text_buf *b, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Number parsing per RFC 7143 §6.1 (decimal, 0x hex); -EINVAL if not a valid number. */
int isd_key_parse_u64(const char *value, uint64_t *out);
/* Boolean "Yes"/"No"; -EINVAL otherwise. */
int isd_key_parse_bool(const char *value, bool *out);
/* Binary value (0x hex or 0b base64) into out (at most cap bytes); returns length or -EINVAL. */
int isd_key_parse_binary(const char *value, uint8_t *out, size_t cap);
/* Writes bytes as "0x..." hex into out (cap bytes incl. NUL). Returns 0 or -ENOSPC. */
int isd_key_format_hex(const uint8_t *in, size_t len, char *out, size_t cap);

enum isd_session_type {
	ISD_SESSION_NORMAL = 0,
	ISD_SESSION_DISCOVERY,
};

/* The operational values a connection/session runs with, after negotiation.
 * isd_params_init_defaults() sets the RFC 7143 defaults. */
struct isd_params {
	bool header_digest;             /* CRC32C in use */
	bool data_digest;
	uint32_t max_connections;
	bool initial_r2t;
	bool immediate_data;
	uint32_t max_recv_dsl;          /* ours: the most data we accept in one PDU */
	uint32_t max_xmit_dsl;          /* the peer's declared MaxRecvDataSegmentLength */
	uint32_t max_burst_length;
	uint32_t first_burst_length;
	uint32_t default_time2wait;
	uint32_t default_time2retain;
	uint32_t max_outstanding_r2t;
	bool data_pdu_in_order;
	bool data_sequence_in_order;
	uint32_t error_recovery_level;
	/* iSER (RFC 7145) */
	bool rdma_extensions;
	uint32_t target_recv_dsl;       /* TargetRecvDataSegmentLength */
	uint32_t initiator_recv_dsl;    /* InitiatorRecvDataSegmentLength */
	uint32_t max_outstanding_unexpected_pdus;
	enum isd_session_type session_type;
};
void isd_params_init_defaults(struct isd_params *p);

/* What the target is willing to accept: its side of every negotiation. */
struct isd_key_policy {
	bool allow_header_digest;       /* offer CRC32C if the initiator lists it */
	bool allow_data_digest;
	bool prefer_digest;             /* pick CRC32C even when the initiator lists None first */
	bool digests_forbidden;         /* datamover allows none (iSER): always answer None */
	bool rdma_capable;              /* datamover is iSER: RDMAExtensions may be Yes */
	uint32_t max_connections;       /* 1 */
	bool initial_r2t;               /* our vote for InitialR2T (OR) */
	bool immediate_data;            /* our vote for ImmediateData (AND) */
	uint32_t max_recv_dsl;          /* MaxRecvDataSegmentLength we declare */
	uint32_t max_burst_length;
	uint32_t first_burst_length;
	uint32_t default_time2wait;
	uint32_t default_time2retain;
	uint32_t max_outstanding_r2t;
	uint32_t error_recovery_level;  /* 0 */
	uint32_t target_recv_dsl;       /* iSER TRDSL we accept */
};
/* Sensible target defaults (MRDSL 262144, MaxBurst 1 MiB, FirstBurst 65536,
 * ImmediateData Yes, InitialR2T No, MaxOutstandingR2T 1, ERL 0). */
void isd_key_policy_init(struct isd_key_policy *pol);

/*
 * Target-side negotiation state for one login (one connection). Feed each Login
 * Request's key list through isd_keys_negotiate(); it checks every key, updates
 * `params`, and appends the answers (value, NotUnderstood, Irrelevant, Reject)
 * to `rsp`.
 */
struct isd_keys {
	struct isd_key_policy policy;
	struct isd_params params;
	uint64_t answered;              /* bit per known key: already negotiated */
	uint64_t declared;              /* bit per key we already sent ourselves */
	bool leading;                   /* leading connection (TSIH 0): session keys allowed */
};
void isd_keys_init(struct isd_keys *k, const struct isd_key_policy *pol, bool leading);

/*
 * Negotiates the operational keys in `req` (stage ISD_STAGE_OPERATIONAL, or
 * ISD_STAGE_SECURITY where operational keys are also allowed per RFC 7143).
 * Keys handled elsewhere (InitiatorName, TargetName, SessionType, AuthMethod,
 * CHAP_*, InitiatorAlias, TargetAlias) are skipped, not answered.
 * Unknown keys are answered NotUnderstood; keys of the wrong kind for the
 * session (e.g. MaxBurstLength in discovery) Irrelevant; out-of-range or
 * malformed values Reject. A key negotiated twice in one login is a protocol
 * error.
 * Returns 0, or an ISD_LOGIN_STATUS_* value (> 0) when the login must fail
 * (duplicate key, a required value impossible such as ERL != 0 demanded
 * without alternative, RDMAExtensions=Yes on a non-RDMA datamover is answered
 * No, not failed). -ENOMEM on allocation failure.
 */
int isd_keys_negotiate(struct isd_keys *k, const struct isd_kv_list *req,
		       struct isd_text_buf *rsp);
/*
 * Appends the declarations the target owes before leaving operational
 * negotiation (its MaxRecvDataSegmentLength, and for iSER its
 * TargetRecvDataSegmentLength, unless already sent). Returns 0 or -ENOMEM.
 */
int isd_keys_finish(struct isd_keys *k, struct isd_text_buf *rsp);

/* True for a key name defined by RFC 7143/7145 (case-sensitive). */
bool isd_key_is_known(const char *key);

#endif
