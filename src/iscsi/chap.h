/*
 * CHAP (RFC 1994 as profiled by RFC 7143 §12.1.3), target side, with mutual
 * CHAP. Digests come from OpenSSL's EVP: MD5 (5), SHA-1 (6), SHA-256 (7),
 * SHA3-256 (8) in the numbering Linux, open-iscsi and libiscsi use.
 */
#ifndef ISD_ISCSI_CHAP_H
#define ISD_ISCSI_CHAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ISD_CHAP_MD5 5
#define ISD_CHAP_SHA1 6
#define ISD_CHAP_SHA256 7
#define ISD_CHAP_SHA3_256 8
#define ISD_CHAP_CHALLENGE_LEN 16       /* bytes of challenge we send (MD5) */
#define ISD_CHAP_MAX_DIGEST 32
#define ISD_CHAP_NAME_MAX 256
#define ISD_CHAP_SECRET_MAX 256

/* Length of the digest for an algorithm, or 0 if unsupported. */
size_t isd_chap_digest_len(int alg);
/* "SHA3-256" and so on, for messages; "unknown" for a number we do not implement. */
const char *isd_chap_alg_name(int alg);
/* The number of a configuration name, "md5", "sha1", "sha256", "sha3-256" (any
 * case), or -EINVAL. */
int isd_chap_alg_from_name(const char *name);
/* Bit of an algorithm in an `allowed` mask; 0 as a mask means every one we implement. */
#define ISD_CHAP_ALG_BIT(alg) (1u << (alg))
/*
 * Picks our algorithm from the initiator's CHAP_A list ("5,6,7"): the
 * strongest one listed that we implement and `allowed` admits, SHA3-256 >
 * SHA-256 > SHA-1 > MD5. The list's order is the initiator's preference, but
 * the choice is the target's (RFC 7143 §12.1.3), and a peer (or a
 * man in the middle) that lists MD5 first must not talk us down to it.
 * Returns the number, or -ENOTSUP if none.
 */
int isd_chap_pick_alg(const char *chap_a_list, unsigned int allowed);
/* response = H(id || secret || challenge). Returns digest length or -errno. */
int isd_chap_response(int alg, uint8_t id, const char *secret, const uint8_t *challenge,
		      size_t challenge_len, uint8_t *out, size_t out_cap);
/* Fills buf with cryptographically random bytes. Returns 0 or -EIO. */
int isd_chap_random(uint8_t *buf, size_t len);

/*
 * One CHAP exchange on the target: call isd_chap_target_challenge() once the
 * initiator sent CHAP_A, send CHAP_A/CHAP_I/CHAP_C; then
 * isd_chap_target_verify() with the initiator's CHAP_N/CHAP_R (and, for mutual
 * CHAP, its CHAP_I/CHAP_C), which also produces our CHAP_N/CHAP_R.
 */
struct isd_chap_target {
	int alg;
	uint8_t id;
	uint8_t challenge[ISD_CHAP_CHALLENGE_LEN];
	size_t challenge_len;
};
/* Returns 0, -ENOTSUP (no acceptable algorithm), -EIO. Writes the values to send
 * ("5", "<id>", "0x<hex>") into the given buffers. */
int isd_chap_target_challenge(struct isd_chap_target *c, const char *chap_a_list,
			      unsigned int allowed, char *a_out, size_t a_cap, char *i_out,
			      size_t i_cap, char *c_out, size_t c_cap);
/*
 * Verifies CHAP_N/CHAP_R against the expected user and secret (constant-time
 * compare). If mutual is requested (ini_chap_i and ini_chap_c non-NULL) also
 * checks the initiator's challenge is not a reflection of ours and computes
 * our answer into n_out/r_out using mutual_user/mutual_secret.
 * Returns 0 on success, -EACCES on a wrong name or response, -EINVAL on
 * malformed values, -EPERM for a reflected challenge or a mutual request
 * without a configured mutual secret.
 */
int isd_chap_target_verify(const struct isd_chap_target *c, const char *user, const char *secret,
			   const char *chap_n, const char *chap_r, const char *ini_chap_i,
			   const char *ini_chap_c, const char *mutual_user,
			   const char *mutual_secret, char *n_out, size_t n_cap, char *r_out,
			   size_t r_cap);

#endif
