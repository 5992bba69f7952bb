/*
 * A cursor over a fuzzer's input, for targets that read a sequence of records
 * (the seeds come from tests/fuzz/make_corpus.py, which writes the same
 * layouts). Reads past the end give zeros and a short take, so every input is
 * usable and a mutation that cuts a record still reaches the code.
 */
#ifndef ISD_FUZZ_INPUT_H
#define ISD_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct fz {
	const uint8_t *p;
	size_t left;
};

static inline void
fz_init(struct fz *z, const uint8_t *data, size_t size)
{
	z->p = data;
	z->left = size;
}

static inline uint8_t
fz_u8(struct fz *z)
{
	uint8_t v = 0;

	if (z->left > 0) {
		v = *z->p++;
		z->left--;
	}
	return v;
}

static inline uint16_t
fz_u16(struct fz *z)
{
	uint16_t hi = fz_u8(z);

	return (uint16_t)((hi << 8) | fz_u8(z));
}

static inline uint32_t
fz_u32(struct fz *z)
{
	uint32_t hi = fz_u16(z);

	return (hi << 16) | fz_u16(z);
}

/* Points *out at up to len bytes of input; returns how many there are. */
static inline size_t
fz_take(struct fz *z, size_t len, const uint8_t **out)
{
	if (len > z->left)
		len = z->left;
	*out = z->p;
	z->p += len;
	z->left -= len;
	return len;
}

/* Copies len bytes into dst, zero filling what the input lacks. */
static inline void
fz_copy(struct fz *z, void *dst, size_t len)
{
	const uint8_t *src;
	size_t n = fz_take(z, len, &src);

	if (n > 0)
		memcpy(dst, src, n);
	memset((uint8_t *)dst + n, 0, len - n);
}

#endif
