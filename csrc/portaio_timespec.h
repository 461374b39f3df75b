/* Seconds (a double) to a struct timespec, shared by the epoll and kqueue waits.
   Included by csrc/portaio_epoll.c and csrc/portaio_kqueue.c (build_ffi.py). */
#ifndef PORTAIO_TIMESPEC_H
#define PORTAIO_TIMESPEC_H

#include <math.h>
#include <time.h>

/* Seconds as a timespec, rounded up to the nanosecond so a wait never ends
   early; NULL (block) for a negative timeout. */
static struct timespec *portaio_timespec(double timeout, struct timespec *ts)
{
    if (timeout < 0)
        return NULL;
    double whole = floor(timeout);
    ts->tv_sec = (time_t)whole;
    ts->tv_nsec = (long)ceil((timeout - whole) * 1e9);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec += 1;
        ts->tv_nsec -= 1000000000L;
    }
    return ts;
}
#endif /* PORTAIO_TIMESPEC_H */
