/* iserinit: shared declarations of the CLI's files. */
#ifndef ISERINIT_H
#define ISERINIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <getopt.h>

#include "iserd/iserd.h"

/* Options every subcommand takes. */
struct ii_common {
	const char *initiator;
	const char *chap;	 /* USER:SECRET */
	const char *mutual_chap; /* USER:SECRET */
	const char *chap_algs;	 /* "sha256,md5"; NULL: the library's default */
	int header_digest;	 /* -1 unset */
	int data_digest;
	enum iserd_reconnect reconnect;
	uint32_t timeout_ms;
	uint32_t queue_depth; /* 0: library default */
	bool verbose;
};

extern const char *ii_cmd; /* subcommand name, for messages */

void ii_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int ii_parse_size(const char *s, uint64_t *out);
/* Creates a context, applies the common options, connects and logs in.
 * Prints one error line and returns NULL on failure. */
struct iserd_context *ii_open(const struct ii_common *co, const struct iserd_url *u,
			      enum iserd_session_type type);
/* Logs out (best effort) and destroys. */
void ii_close(struct iserd_context *ctx);
/* READ CAPACITY (16); prints the error and returns -1 on failure. */
int ii_readcap(struct iserd_context *ctx, uint64_t lun, struct iserd_readcap16 *rc);
/* Describes a failed task into buf. */
void ii_task_error(struct iserd_context *ctx, int rc, const char *what, char *buf, size_t len);

enum {
	OPT_CHAP = 1000,
	OPT_MUTUAL,
	OPT_HD,
	OPT_DD,
	OPT_RECONNECT,
	OPT_TIMEOUT,
	OPT_OFFSET,
	OPT_LENGTH,
	OPT_SIZE,
	OPT_VPD,
	OPT_BS,
	OPT_CHAP_ALGS,
};

#define COMMON_LONGOPTS                                                                            \
	{"initiator", required_argument, NULL, 'i'}, {"chap", required_argument, NULL, OPT_CHAP},  \
	    {"mutual-chap", required_argument, NULL, OPT_MUTUAL},                                  \
	    {"chap-algs", required_argument, NULL, OPT_CHAP_ALGS},                                 \
	    {"header-digest", required_argument, NULL, OPT_HD},                                    \
	    {"data-digest", required_argument, NULL, OPT_DD},                                      \
	    {"reconnect", optional_argument, NULL, OPT_RECONNECT},                                 \
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},                                     \
	    {"verbose", no_argument, NULL, 'v'},                                                   \
	{                                                                                          \
		"help", no_argument, NULL, 'h'                                                     \
	}

extern const char *const ii_common_help;
/* Handles a common option; returns 1 if it was one, 0 if not, -1 on a bad value. */
int ii_common_opt(struct ii_common *co, int opt, const char *arg);
void ii_common_init(struct ii_common *co);

int ii_cmd_bench(int argc, char **argv);

/* iserinit_env.c: what the environment and open-iscsi's files supply. */
/* The file the initiator name is read from: $ISERINIT_INITIATORNAME_FILE
 * (for tests) or /etc/iscsi/initiatorname.iscsi. */
const char *ii_initiatorname_path(void);
/*
 * The last "InitiatorName=NAME" line of an open-iscsi initiatorname.iscsi
 * file into out. Returns 1 when found, 0 when the file has none or cannot be
 * read for want of it or of permission (a user's view of root's 0600 file),
 * -1 with err set on a bad line or another error.
 */
int ii_read_initiatorname(const char *path, char *out, size_t cap, char *err, size_t errlen);
/*
 * CHAP credentials from the environment variables user_var and secret_var
 * (libiscsi's LIBISCSI_CHAP_USERNAME/_PASSWORD and _TARGET_ ones). Returns 1
 * when both are set, 0 when neither is, -1 with err set when only one is or
 * a value does not fit.
 */
int ii_env_cred(const char *user_var, const char *secret_var, char *user, size_t ucap, char *secret,
		size_t scap, char *err, size_t errlen);

#endif
