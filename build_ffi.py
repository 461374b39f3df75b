"""cffi builders (API mode) for portaio's kernel bindings.

Every struct and constant is declared with ``...`` so the C compiler takes
sizes, layouts and values from the system headers: glibc packs
``struct epoll_event`` on x86-64, and ``struct kevent`` differs between the
BSDs and macOS, so no layout is written by hand here.

``setup.py`` lists a builder only where its header exists: ``epoll_ffi`` on
Linux, ``kqueue_ffi`` where ``<sys/event.h>`` is found (natively, or a
libkqueue found by ``pkg-config``).
"""

from __future__ import annotations

from cffi import FFI

EPOLL_CDEF = """
typedef union epoll_data { uint64_t u64; ...; } epoll_data_t;
struct epoll_event { uint32_t events; epoll_data_t data; ...; };

#define EPOLL_CLOEXEC ...
#define EPOLL_CTL_ADD ...
#define EPOLL_CTL_MOD ...
#define EPOLL_CTL_DEL ...
#define EPOLLIN ...
#define EPOLLOUT ...
#define EPOLLPRI ...
#define EPOLLERR ...
#define EPOLLHUP ...
#define EPOLLRDHUP ...
#define EPOLLET ...
#define EPOLLONESHOT ...
#define EPOLLEXCLUSIVE ...

#define TFD_CLOEXEC ...
#define TFD_NONBLOCK ...
#define TFD_TIMER_ABSTIME ...
#define CLOCK_MONOTONIC ...
#define EFD_CLOEXEC ...
#define EFD_NONBLOCK ...
#define SFD_CLOEXEC ...
#define SFD_NONBLOCK ...

struct signalfd_siginfo { uint32_t ssi_signo; ...; };

int epoll_create1(int flags);
int timerfd_create(int clockid, int flags);
int eventfd(unsigned int initval, int flags);

/* Arm a timerfd (TFD_TIMER_ABSTIME, CLOCK_MONOTONIC) to fire once at *deadline*,
   in time.monotonic() seconds, rounded up to the next nanosecond so it never
   fires before the float deadline; deadline < 0 disarms it. */
int portaio_timerfd_arm(int fd, double deadline);
/* signalfd(fd, {signums[0..n)}, flags): a new signalfd when fd is -1, else
   replace fd's mask. */
int portaio_signalfd(int fd, const int *signums, int n, int flags);
int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event);

/* One wait, GIL released by cffi.  timeout < 0 blocks; otherwise seconds,
   rounded up to the nanosecond with epoll_pwait2 (Linux >= 5.11) and to the
   millisecond with epoll_wait where the kernel lacks it. */
int portaio_epoll_wait(int epfd, struct epoll_event *events, int maxevents, double timeout);
/* 1 once epoll_pwait2 is known to work, 0 if it is missing, -1 if not tried yet. */
int portaio_epoll_precise(void);
"""

EPOLL_SOURCE = r"""
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

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

int portaio_epoll_wait(int epfd, struct epoll_event *events, int maxevents, double timeout)
{
#ifdef SYS_epoll_pwait2
    if (portaio_pwait2_state != 0) {
        struct timespec ts, *tsp = NULL;
        if (timeout >= 0) {
            double whole = floor(timeout);
            double nsec = ceil((timeout - whole) * 1e9);
            ts.tv_sec = (time_t)whole;
            ts.tv_nsec = (long)nsec;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec += 1;
                ts.tv_nsec -= 1000000000L;
            }
            tsp = &ts;
        }
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
"""


def epoll_ffi() -> FFI:
    """The builder of ``portaio._epoll_cffi`` (Linux)."""
    ffi = FFI()
    ffi.cdef(EPOLL_CDEF)
    ffi.set_source("portaio._epoll_cffi", EPOLL_SOURCE, libraries=["m"])
    return ffi


if __name__ == "__main__":
    epoll_ffi().compile(verbose=True)
