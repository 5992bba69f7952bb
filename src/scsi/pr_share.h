/*
 * Persistent reservation state shared between gateways through the store
 * (pr_load/pr_commit/pr_notify, bstore.h): its encoding, and that of the
 * message telling the other gateways what a change did to their nexuses.
 * What is decoded was written by another process: every field is checked.
 */
#ifndef ISD_SCSI_PR_SHARE_H
#define ISD_SCSI_PR_SHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scsi/scsi_int.h"

/* A decoded state, not yet the LU's. */
struct isd_pr_state {
	TAILQ_HEAD(, isd_scsi_pr_reg) regs;
	unsigned nregs;
	uint32_t gen;
	bool held;
	uint8_t type;
	struct isd_scsi_pr_reg *holder;
};

/* The LU's state as bytes (malloc'd into *out). 0 or -ENOMEM. */
int isd_pr_state_encode(const struct isd_scsi_lu *lu, uint8_t **out, size_t *len);
/*
 * Decodes len bytes (len 0: the empty state) into st, which needs no
 * initialization and is left empty on failure. 0 or -EINVAL, -ENOMEM.
 */
int isd_pr_state_decode(const uint8_t *b, size_t len, struct isd_pr_state *st);
void isd_pr_state_free(struct isd_pr_state *st);
/* Replaces the LU's registrations and reservation by st's (st is emptied). */
void isd_pr_state_install(struct isd_scsi_lu *lu, struct isd_pr_state *st);

/* The change message (struct isd_pr_fxlist, scsi_int.h). 0 or -ENOMEM. */
int isd_pr_fx_encode(const struct isd_pr_fxlist *fx, uint8_t **out, size_t *len);
/* 0 or -EINVAL (fx then holds nothing). */
int isd_pr_fx_decode(const uint8_t *b, size_t len, struct isd_pr_fxlist *fx);

#endif
