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

/*
 * Shared entry. A monitor may have a shared face (isd_monitor_init_shared):
 * a second struct isd_monitor that threads enter at the same time, each
 * announcing itself in a flag on a cache line of its own (its slot), for
 * code that only reads what the monitor guards, or writes what is its
 * thread's own. Entering the monitor itself (exclusively) raises a writer
 * flag and waits for every slot to be clear; a thread entering the face
 * while the writer flag is up waits for it to drop, holding nothing (it
 * never becomes a writer itself, so a stream of exclusive entries cannot
 * turn every shared one exclusive). The flags are sequentially consistent
 * (Dekker): a reader that saw no writer is seen by the writer, which waits
 * for it. The face behaves as a monitor otherwise: it counts re-entry,
 * isd_monitor_current() names it (a store records it and calls back under
 * it), and calls deferred in it run after the thread's outermost leave. A
 * thread that holds another monitor, or has no slot, enters the face
 * exclusively (as the monitor itself). Holding the face and then entering
 * its monitor would wait for itself: that aborts.
 */
#define ISD_MONITOR_SLOTS 64

struct isd_monitor_rd {
	int active;                     /* atomic */
} __attribute__((aligned(64)));

struct isd_monitor {
	pthread_mutex_t mu;
	int writer;                     /* atomic; only with rd */
	struct isd_monitor_rd *rd;      /* ISD_MONITOR_SLOTS, when it has a shared face */
	struct isd_monitor *excl;       /* on a shared face: the monitor it is the face of */
};

/* A deferred call; the caller owns the memory until fn runs. */
struct isd_monitor_call {
	struct isd_monitor_call *next;
	void (*fn)(void *arg);
	void *arg;
};

void isd_monitor_init(struct isd_monitor *m);
/* Makes face the shared face of m (initialised already). -ENOMEM. */
int isd_monitor_init_shared(struct isd_monitor *face, struct isd_monitor *m);
/* Also destroys a face (then before its monitor). */
void isd_monitor_destroy(struct isd_monitor *m);
/* The calling thread's slot (0..ISD_MONITOR_SLOTS-1, given at its first call), or -1
 * when every slot is taken: then it enters faces exclusively. */
int isd_monitor_slot(void);
/* True when this thread holds m's face shared (not exclusively): for checks. */
bool isd_monitor_shared(const struct isd_monitor *face);

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
