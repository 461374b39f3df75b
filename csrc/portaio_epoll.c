/* portaio's epoll bindings (Linux), compiled into portaio._epoll_cffi by
   build_ffi.py with -Wall -Wextra -Werror.  The declarations cffi sees are
   EPOLL_CDEF in build_ffi.py; every function here is named there. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "portaio_timespec.h"

static int portaio_pwait2_state = -1;

int portaio_epoll_precise(void) { return portaio_pwait2_state; }

int portaio_timerfd_arm(int fd, double deadline)
{
    struct itimerspec its = {{0, 0}, {0, 0}};
    if (deadline >= 0) {
        if (deadline > 4e15) /* far beyond any uptime; keeps time_t and the ns maths exact */
            deadline = 4e15;
        double whole = floor(deadline);
        its.it_value.tv_sec = (time_t)whole;
        its.it_value.tv_nsec = (long)ceil((deadline - whole) * 1e9) + 1;
        if (its.it_value.tv_nsec >= 1000000000L) {
            its.it_value.tv_sec += 1;
            its.it_value.tv_nsec -= 1000000000L;
        }
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
            its.it_value.tv_nsec = 1; /* zero would disarm */
    }
    return timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL);
}

int portaio_signalfd(int fd, const int *signums, int n, int flags)
{
    sigset_t mask;
    sigemptyset(&mask);
    for (int i = 0; i < n; i++)
        sigaddset(&mask, signums[i]);
    return signalfd(fd, &mask, flags);
}

int portaio_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint32_t token)
{
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = token;
    return epoll_ctl(epfd, op, fd, &ev);
}

static int portaio_epoll_wait_raw(int epfd, struct epoll_event *events, int maxevents, double timeout)
{
#ifdef SYS_epoll_pwait2
    if (portaio_pwait2_state != 0) {
        struct timespec ts, *tsp = portaio_timespec(timeout, &ts);
        int n = (int)syscall(SYS_epoll_pwait2, epfd, events, maxevents, tsp, NULL, (size_t)0);
        /* Old kernels say ENOSYS; some seccomp filters say EPERM for new syscalls. */
        if (n >= 0 || (errno != ENOSYS && errno != EPERM)) {
            portaio_pwait2_state = 1;
            return n;
        }
        portaio_pwait2_state = 0;
    }
#endif
    int ms = -1;
    if (timeout >= 0) {
        double m = ceil(timeout * 1000.0);
        ms = m > (double)INT_MAX ? INT_MAX : (int)m;
    }
    return epoll_wait(epfd, events, maxevents, ms);
}

int portaio_epoll_wait(int epfd, struct epoll_event *events, uint64_t *keys, int maxevents, double timeout)
{
    /* One key per event, the same uint64_t on every architecture (the
       struct is packed to 12 bytes on x86-64 only): the kernel's flags in
       the low half, the registration's token (data.u64) in the high half. */
    int n = portaio_epoll_wait_raw(epfd, events, maxevents, timeout);
    for (int i = 0; i < n; i++)
        keys[i] = (uint64_t)events[i].events | events[i].data.u64 << 32;
    return n;
}
