/* placeholder until the statistics branch lands: the Prometheus renderer */
#ifndef ISD_CTL_CTL_H
#define ISD_CTL_CTL_H
#include <stddef.h>
struct isd_target_running;
int isd_ctl_prometheus(struct isd_target_running *rt, char **out, size_t *len);
#endif
