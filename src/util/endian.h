/* Big-endian field access at explicit byte offsets (wire formats never use bitfields). */
#ifndef ISD_UTIL_ENDIAN_H
#define ISD_UTIL_ENDIAN_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

/*
 * Each is one load or store and a byte swap (memcpy of a fixed size compiles
 * to a plain move at any alignment); GCC did not merge the byte-at-a-time
 * form when a header was built field by field, and a Data-In header cost
 * some 140 instructions that way.
 */
static inline uint16_t get_be16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return be16toh(v);
}

static inline uint32_t get_be24(const uint8_t *p)
{
	return ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
}

static inline uint32_t get_be32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return be32toh(v);
}

static inline uint64_t get_be64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return be64toh(v);
}

static inline void put_be16(uint8_t *p, uint16_t v)
{
	v = htobe16(v);
	memcpy(p, &v, sizeof(v));
}

static inline void put_be24(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 16);
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)v;
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, sizeof(v));
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, sizeof(v));
}

/* RFC 1982 serial number arithmetic on 32-bit sequence numbers (CmdSN, StatSN). */
static inline int sn_lt(uint32_t a, uint32_t b)
{
	return a != b && (int32_t)(a - b) < 0;
}

static inline int sn_le(uint32_t a, uint32_t b)
{
	return a == b || (int32_t)(a - b) < 0;
}

static inline int sn_gt(uint32_t a, uint32_t b)
{
	return a != b && (int32_t)(a - b) > 0;
}

static inline int sn_ge(uint32_t a, uint32_t b)
{
	return a == b || (int32_t)(a - b) > 0;
}

#endif
