/*
 * Counters as a part reports them to whoever shows them (the daemon's stats
 * line, later a control socket): a name and a value each, so that a new
 * counter, or a new part, needs no change where they are printed.
 */
#ifndef ISD_UTIL_STATS_H
#define ISD_UTIL_STATS_H

#include <stdint.h>

struct isd_stat {
	const char *name;               /* lower_case, stable: scripts and docs use it */
	uint64_t value;
};

/* Fills out[0..max) with a part's counters; returns how many it has (may exceed max). */
typedef int (*isd_stats_list_fn)(struct isd_stat *out, int max);

#define ISD_STAT(n, v) ((struct isd_stat){ .name = (n), .value = (uint64_t)(v) })

/* For an isd_stats_list_fn: puts one counter at out[*n] if there is room, and
 * counts it in *n either way. */
static inline void
isd_stat_add(struct isd_stat *out, int max, int *n, const char *name, uint64_t value)
{
	if (*n < max)
		out[*n] = ISD_STAT(name, value);
	(*n)++;
}

#endif
