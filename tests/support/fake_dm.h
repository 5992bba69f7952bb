/*
 * A fake datamover for unit tests of the iSCSI core: no sockets. It records
 * every PDU the core sends, lets a test inject received PDUs, and leaves data
 * transfers pending until the test completes them. Connection teardown is
 * two-step like a real datamover: terminate() only records the request, and
 * the test (or fake_dm_terminate_notify) delivers Connection_Terminate_Notify.
 */
#ifndef ISD_TEST_FAKE_DM_H
#define ISD_TEST_FAKE_DM_H

#include <stdbool.h>
#include <stdint.h>

#include "iscsi/dm.h"
#include "iscsi/iscsi.h"

#define FAKE_DM_MAX_XFER 64

struct fake_xfer {
	struct isd_dm_task *task;
	bool put;                       /* put_data (else get_data) */
	const struct iovec *iov;
	int iovcnt;
	uint32_t offset;
	uint32_t length;
};

struct fake_dm {
	struct isd_dm_conn *conn;          /* NULL once free_conn ran */
	struct isd_pdu_list sent;       /* PDUs from send_control and put_data's rsp, in order */
	int n_sent;
	int released;                   /* received PDUs given back */
	int injected;
	bool terminate_called;
	bool terminate_notified;
	bool freed;
	bool noticed;
	int login_rsps;                 /* login_response calls, final or not */
	int login_finals;               /* ... with final true */
	int sent_at_final;              /* n_sent when login_response(final) came */
	bool final_after_notice;        /* login_response(final) came after notice_key_values */
	struct isd_params final_params; /* `negotiated` of login_response(final) */
	struct isd_params params;       /* from notice_key_values */
	struct fake_xfer xfers[FAKE_DM_MAX_XFER];
	int n_xfers;
	int task_cleanups;
	bool hold_fences;               /* task_cleanup of a pending transfer holds its fence */
	struct isd_tmf_wait *fences[FAKE_DM_MAX_XFER];
	int n_fences;
	uint8_t *read_data;             /* bytes put_data moved, concatenated */
	uint32_t read_len;
	int send_fail;                  /* make the next N send_control calls fail */
	int xfer_fail;                  /* put_data/get_data return this (-errno) at once: no
					 * notify follows (dm.h), put_data's rsp is freed */
};

/* caps can be changed by a test before connecting */
extern struct isd_dm_ops fake_dm_ops;

void fake_dm_init(struct fake_dm *fd);
/* Frees what the fake still holds (sent PDUs, read data). */
void fake_dm_fini(struct fake_dm *fd);
/* Creates and starts a connection through the fake. Returns 0 or -errno. */
int fake_dm_connect(struct fake_dm *fd, struct isd_iscsi_tgt *t, struct isd_reactor *r,
		    uint16_t tpgt);
/* The same from initiator address peer_addr (fake_dm_connect uses 192.0.2.1). */
int fake_dm_connect_from(struct fake_dm *fd, struct isd_iscsi_tgt *t, struct isd_reactor *r,
			 uint16_t tpgt, const char *peer_addr);
/* The same as arriving with info (local address and port, transport: the portal). */
int fake_dm_connect_info(struct fake_dm *fd, struct isd_iscsi_tgt *t, struct isd_reactor *r,
			 const struct isd_conn_info *info);
/* Builds a PDU from a BHS and data (DataSegmentLength set from len) and passes it up. */
void fake_dm_inject(struct fake_dm *fd, const uint8_t *bhs, const void *data, uint32_t len);
void fake_dm_inject_ahs(struct fake_dm *fd, const uint8_t *bhs, const uint8_t *ahs,
			uint32_t ahs_len, const void *data, uint32_t len);
/* The oldest PDU sent and not yet popped (the caller frees it with isd_pdu_free), or NULL. */
struct isd_pdu *fake_dm_pop(struct fake_dm *fd);
void fake_dm_drop_sent(struct fake_dm *fd);
/* Releases the fences task_cleanup held (hold_fences): the abandoned transfers have
 * ended. Returns how many there were. */
int fake_dm_release_fences(struct fake_dm *fd);
/* Completes the oldest pending transfer. For get_data, `data` (length bytes) is copied into
 * the task's buffer first. Returns 0, or -ENOENT if nothing is pending. */
int fake_dm_complete(struct fake_dm *fd, const void *data, int status);
/* Delivers Connection_Terminate_Notify if terminate was requested (or force). */
void fake_dm_terminate_notify(struct fake_dm *fd, bool force);

/* --- helpers for building requests --- */

/* Builds "k=v\0k=v\0..." from NULL-terminated strings; returns the length. */
uint32_t fake_text(uint8_t *buf, uint32_t cap, ...);
/* A Login Request header. */
void fake_login_bhs(uint8_t *bhs, uint8_t flags, const uint8_t *isid, uint16_t tsih, uint32_t itt,
		    uint32_t cmdsn);
/* Value of `key` in a PDU's text data, copied into out (cap bytes); false if absent. */
bool fake_text_get(const struct isd_pdu *pdu, const char *key, char *out, size_t cap);
/*
 * One-PDU login without authentication (CSG 1 -> FFP) to `target` (NULL for a
 * discovery session). Returns the Login Response status; *tsih gets the TSIH.
 * The response PDUs are consumed.
 */
int fake_dm_login(struct fake_dm *fd, const char *iname, const char *target,
		  const uint8_t *isid, uint32_t cmdsn, uint16_t *tsih);

#endif
