/*
 * CHAP (RFC 1994 as profiled by RFC 7143 §12.1.3), target side, with mutual
 * CHAP. Digests come from OpenSSL's EVP interface; randomness from RAND_bytes.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "iscsi/chap.h"
#include "iscsi/keys.h"

/* Longest initiator challenge we accept (LIO uses the same bound). */
#define CHAP_MAX_CHALLENGE 1024

static const EVP_MD *
chap_md(int alg)
{
	switch (alg) {
	case ISD_CHAP_MD5:
		return EVP_md5();
	case ISD_CHAP_SHA1:
		return EVP_sha1();
	case ISD_CHAP_SHA256:
		return EVP_sha256();
	case ISD_CHAP_SHA3_256:
		return EVP_sha3_256();
	default:
		return NULL;
	}
}

size_t
isd_chap_digest_len(int alg)
{
	switch (alg) {
	case ISD_CHAP_MD5:
		return 16;
	case ISD_CHAP_SHA1:
		return 20;
	case ISD_CHAP_SHA256:
	case ISD_CHAP_SHA3_256:
		return 32;
	default:
		return 0;
	}
}

const char *
isd_chap_alg_name(int alg)
{
	switch (alg) {
	case ISD_CHAP_MD5:
		return "MD5";
	case ISD_CHAP_SHA1:
		return "SHA-1";
	case ISD_CHAP_SHA256:
		return "SHA-256";
	case ISD_CHAP_SHA3_256:
		return "SHA3-256";
	default:
		return "unknown";
	}
}

int
isd_chap_alg_from_name(const char *name)
{
	static const char *const names[] = {"md5", "sha1", "sha256", "sha3-256"};

	for (int i = 0; name != NULL && i < 4; i++)
		if (strcasecmp(name, names[i]) == 0)
			return ISD_CHAP_MD5 + i;
	return -EINVAL;
}

/* Strength order: the index in this list (weakest first). */
static int
chap_rank(int alg)
{
	static const int order[] = {ISD_CHAP_MD5, ISD_CHAP_SHA1, ISD_CHAP_SHA256,
				    ISD_CHAP_SHA3_256};

	for (int i = 0; i < (int)(sizeof(order) / sizeof(order[0])); i++)
		if (order[i] == alg)
			return i;
	return -1;
}

int
isd_chap_pick_alg(const char *chap_a_list, unsigned int allowed)
{
	const char *p = chap_a_list;
	int best = -ENOTSUP;

	if (p == NULL)
		return -ENOTSUP;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		char tok[24];
		uint64_t v;

		/* Unknown or malformed entries are skipped, as for any list (§6.1). */
		if (n > 0 && n < sizeof(tok)) {
			memcpy(tok, p, n);
			tok[n] = '\0';
			if (isd_key_parse_u64(tok, &v) == 0 && v < 32 && chap_rank((int)v) >= 0 &&
			    chap_md((int)v) != NULL &&
			    (allowed == 0 || (allowed & ISD_CHAP_ALG_BIT(v)) != 0) &&
			    (best < 0 || chap_rank((int)v) > chap_rank(best)))
				best = (int)v;
		}
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	return best;
}

int
isd_chap_response(int alg, uint8_t id, const char *secret, const uint8_t *challenge,
		  size_t challenge_len, uint8_t *out, size_t out_cap)
{
	const EVP_MD *md = chap_md(alg);
	size_t dlen = isd_chap_digest_len(alg);
	unsigned int olen = 0;
	EVP_MD_CTX *ctx;
	int rc = -EIO;

	if (md == NULL || dlen == 0)
		return -EINVAL;
	if (secret == NULL || (challenge == NULL && challenge_len != 0))
		return -EINVAL;
	if (out_cap < dlen)
		return -ENOSPC;

	ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		return -ENOMEM;
	/* RFC 1994 §4.1: hash of Identifier || secret || Challenge. */
	if (EVP_DigestInit_ex(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, &id, 1) != 1 ||
	    EVP_DigestUpdate(ctx, secret, strlen(secret)) != 1 ||
	    (challenge_len != 0 && EVP_DigestUpdate(ctx, challenge, challenge_len) != 1) ||
	    EVP_DigestFinal_ex(ctx, out, &olen) != 1 || olen != dlen)
		goto out;
	rc = (int)dlen;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

int
isd_chap_random(uint8_t *buf, size_t len)
{
	if (len > INT_MAX)
		return -EINVAL;
	if (len == 0)
		return 0;
	return RAND_bytes(buf, (int)len) == 1 ? 0 : -EIO;
}

int
isd_chap_target_challenge(struct isd_chap_target *c, const char *chap_a_list, unsigned int allowed,
			  char *a_out, size_t a_cap, char *i_out, size_t i_cap, char *c_out,
			  size_t c_cap)
{
	int alg, rc, n;

	memset(c, 0, sizeof(*c));
	alg = isd_chap_pick_alg(chap_a_list, allowed);
	if (alg < 0)
		return alg;
	/* A fresh identifier and challenge for every exchange (RFC 7143 §12.1.3). */
	rc = isd_chap_random(&c->id, 1);
	if (rc < 0)
		return rc;
	rc = isd_chap_random(c->challenge, ISD_CHAP_CHALLENGE_LEN);
	if (rc < 0)
		return rc;
	c->alg = alg;
	c->challenge_len = ISD_CHAP_CHALLENGE_LEN;

	n = snprintf(a_out, a_cap, "%d", alg);
	if (n < 0 || (size_t)n >= a_cap)
		return -ENOSPC;
	n = snprintf(i_out, i_cap, "%u", (unsigned int)c->id);
	if (n < 0 || (size_t)n >= i_cap)
		return -ENOSPC;
	return isd_key_format_hex(c->challenge, c->challenge_len, c_out, c_cap);
}

int
isd_chap_target_verify(const struct isd_chap_target *c, const char *user, const char *secret,
		       const char *chap_n, const char *chap_r, const char *ini_chap_i,
		       const char *ini_chap_c, const char *mutual_user, const char *mutual_secret,
		       char *n_out, size_t n_cap, char *r_out, size_t r_cap)
{
	uint8_t got[ISD_CHAP_MAX_DIGEST], want[ISD_CHAP_MAX_DIGEST];
	uint8_t ini_chal[CHAP_MAX_CHALLENGE];
	size_t dlen = isd_chap_digest_len(c->alg);
	bool mutual = ini_chap_i != NULL || ini_chap_c != NULL;
	int got_len, ini_chal_len = 0, rc;
	uint64_t ini_id = 0;
	bool ok;

	if (dlen == 0 || c->challenge_len == 0)
		return -EINVAL;
	/* Everything from the wire is decoded before anything is decided. */
	if (chap_n == NULL || chap_r == NULL)
		return -EINVAL;
	got_len = isd_key_parse_binary(chap_r, got, sizeof(got));
	if (got_len < 0 || (size_t)got_len != dlen) {
		rc = -EINVAL;
		goto out;
	}
	if (mutual) {
		/* Mutual CHAP needs both CHAP_I and CHAP_C. */
		if (ini_chap_i == NULL || ini_chap_c == NULL) {
			rc = -EINVAL;
			goto out;
		}
		if (isd_key_parse_u64(ini_chap_i, &ini_id) < 0 || ini_id > 255) {
			rc = -EINVAL;
			goto out;
		}
		ini_chal_len = isd_key_parse_binary(ini_chap_c, ini_chal, sizeof(ini_chal));
		if (ini_chal_len <= 0) {
			rc = -EINVAL;
			goto out;
		}
	}

	/* No configured secret (or an empty one) can never authenticate anyone. */
	if (user == NULL || secret == NULL || secret[0] == '\0') {
		rc = -EINVAL;
		goto out;
	}
	/* The initiator proves itself first: no answer of ours before that. */
	rc = isd_chap_response(c->alg, c->id, secret, c->challenge, c->challenge_len, want,
			       sizeof(want));
	if (rc < 0)
		goto out;
	ok = CRYPTO_memcmp(got, want, dlen) == 0;
	ok = strcmp(chap_n, user) == 0 && ok;
	if (!ok) {
		rc = -EACCES;
		goto out;
	}
	if (!mutual) {
		rc = 0;
		goto out;
	}

	if (mutual_user == NULL || mutual_secret == NULL || mutual_secret[0] == '\0') {
		rc = -EPERM;
		goto out;
	}
	/*
	 * A reflected challenge would have us compute the very response an
	 * attacker needs for our own challenge (RFC 7143 §12.1.3; LIO refuses
	 * it too).
	 */
	if ((size_t)ini_chal_len == c->challenge_len &&
	    CRYPTO_memcmp(ini_chal, c->challenge, c->challenge_len) == 0) {
		rc = -EPERM;
		goto out;
	}
	rc = isd_chap_response(c->alg, (uint8_t)ini_id, mutual_secret, ini_chal,
			       (size_t)ini_chal_len, want, sizeof(want));
	if (rc < 0)
		goto out;
	if (n_out == NULL || r_out == NULL || strlen(mutual_user) >= n_cap) {
		rc = -ENOSPC;
		goto out;
	}
	rc = isd_key_format_hex(want, dlen, r_out, r_cap);
	if (rc < 0)
		goto out;
	memcpy(n_out, mutual_user, strlen(mutual_user) + 1);
	rc = 0;
out:
	OPENSSL_cleanse(want, sizeof(want));
	return rc;
}
