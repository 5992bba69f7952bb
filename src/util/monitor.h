/*
 * A monitor: a lock that its holder may take again, and calls deferred to
 * the moment the thread holds no monitor at all.
 *
 * The SCSI layer is a monitor per device: every way into it (a transport's
 * call, a store's completion, a control method) enters the device's monitor,
 * and every way out of it to code that may enter another one (a command's
 * completion to its transport) is deferred with isd_monitor_after() until
 * the outermost leave. So the layer's state is touched by one thread at a
 * time, no system call of a transport runs under it, and two monitors are
 * never taken in opposite orders by a completion.
 *
 * All of this only once the process runs more than one reactor
 * (isd_monitor_set_threaded): with one, entering and leaving return at once
 * and a deferred call runs when it is made, as if the layer had no monitor,
 * so the single-reactor data path pays one flag test a call.
 */
#ifndef ISD_UTIL_MONITOR_H
#define ISD_UTIL_MONITOR_H

#include <pthread.h>
#include <stdbool.h>

struct isd_monitor {
	pthread_mutex_t mu;
};

/* A deferred call; the caller owns the memory until fn runs. */
struct isd_monitor_call {
	struct isd_monitor_call *next;
	void (*fn)(void *arg);
	void *arg;
};

void isd_monitor_init(struct isd_monitor *m);
void isd_monitor_destroy(struct isd_monitor *m);

/* NULL is a no-op. A thread may enter the same monitor again (counted), and
 * at most ISD_MONITOR_NEST different ones at once. */
#define ISD_MONITOR_NEST 4
void isd_monitor_enter(struct isd_monitor *m);
/*
 * Enters m only if that needs no wait: true when entered (or already held,
 * or monitors are off), false when another thread holds it. The way to look
 * into a second monitor while holding one: two threads that each hold one
 * and wait for the other's would deadlock, a try never waits. Left with
 * isd_monitor_leave.
 */
bool isd_monitor_try_enter(struct isd_monitor *m);
/* After the thread's last leave, runs the calls deferred meanwhile, oldest first. */
void isd_monitor_leave(struct isd_monitor *m);

/* The monitor this thread entered last and still holds, or NULL. */
struct isd_monitor *isd_monitor_current(void);
/* True when this thread holds m. */
bool isd_monitor_held(const struct isd_monitor *m);

/* Runs fn(arg) once this thread holds no monitor: at once when it holds none. */
void isd_monitor_after(struct isd_monitor_call *c, void (*fn)(void *arg), void *arg);

/* Whether monitors do anything; set before the second reactor starts, and not
 * changed while any monitor is held. */
void isd_monitor_set_threaded(bool on);
bool isd_monitor_threaded(void);

#endif
