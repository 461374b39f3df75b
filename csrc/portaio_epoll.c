/* portaio's epoll bindings (Linux), compiled into portaio._epoll_cffi by
   build_ffi.py with -Wall -Wextra -Werror.  The declarations cffi sees are
   EPOLL_CDEF in build_ffi.py; every function here is named there. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "portaio_key.h"
#include "portaio_quick.h"
#include "portaio_timespec.h"

/* portaio_epoll_wait turns records into keys in place (see there). */
_Static_assert(sizeof(struct epoll_event) >= sizeof(uint64_t) && sizeof(struct epoll_event) <= 2 * sizeof(uint64_t),
               "a struct epoll_event must hold one key and fit in two");

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

/* epoll_pwait2(2) reads the kernel's struct __kernel_timespec: two 64-bit
   fields on every ABI.  glibc's struct timespec is not that on 32-bit ABIs
   (i386: a 32-bit time_t and long), and the kernel would read garbage (every
   wait failed with EINVAL on i386), so the syscall gets this layout. */
struct portaio_kernel_timespec {
    int64_t tv_sec;
    int64_t tv_nsec;
};

static int portaio_epoll_wait_raw(int epfd, struct epoll_event *events, int maxevents, double timeout)
{
#ifdef SYS_epoll_pwait2
    if (portaio_pwait2_state != 0) {
        struct timespec ts;
        struct portaio_kernel_timespec kts, *ktsp = NULL;
        if (portaio_timespec(timeout, &ts) != NULL) {
            kts.tv_sec = (int64_t)ts.tv_sec;
            kts.tv_nsec = (int64_t)ts.tv_nsec;
            ktsp = &kts;
        }
        int n = (int)syscall(SYS_epoll_pwait2, epfd, events, maxevents, ktsp, NULL, (size_t)0);
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

/* The n records the kernel left at the start of keys become n keys in
   place: token | events << 24 (the registration's token is data.u64), the
   same uint64_t on every architecture.  keys has room for the records (two
   uint64_t each: 16 bytes, the struct's size on every architecture but
   x86-64, where it is packed to 12).  Key i (bytes 8i..8i+8) only overwrites
   records 0..i, already read, since a record is at least 8 bytes; memcpy
   keeps the two views of the buffer free of aliasing assumptions.  One
   buffer: one pointer argument less per call than records and keys apart. */
static void portaio_records_to_keys(uint64_t *keys, int n)
{
    for (int i = 0; i < n; i++) {
        struct epoll_event record;
        memcpy(&record, (const char *)keys + (size_t)i * sizeof record, sizeof record);
        uint64_t key = portaio_key(record.data.u64, record.events);
        memcpy(keys + i, &key, sizeof key);
    }
}

int portaio_epoll_wait(int epfd, uint64_t *keys, int maxevents, double timeout)
{
    int n = portaio_epoll_wait_raw(epfd, (struct epoll_event *)(void *)keys, maxevents, timeout);
    portaio_records_to_keys(keys, n);
    return n;
}

/* ------------------------------------------------------------ quick wait

   poll(0)'s fast path (backends/_base.py, "quick wait").  The general wait
   above takes four arguments, which cffi packs into a tuple and unpacks
   again on every call; portaio_epoll_wait_now takes one, which cffi makes a
   METH_O function, about 200 ns cheaper a call, and returns the only key of
   the commonest wait itself, which saves Python reading it from the buffer.
   The buffer and the epoll fd are guarded as portaio_quick.h says. */

struct portaio_epoll_quick {
    struct portaio_quick_handle *handle;
    uint64_t *keys;  /* room for 2 * size uint64_t: size records, then keys */
    int room;        /* the most keys a wait asks for; written by Python */
    uint32_t state;  /* atomic: PORTAIO_QUICK_IDLE, _BUSY or _HELD */
    uint64_t holder; /* the thread holding a HELD buffer */
};

int portaio_epoll_handle_close(struct portaio_quick_handle *h) { return portaio_quick_handle_close(h); }

int64_t portaio_epoll_wait_now(struct portaio_epoll_quick *q)
{
    struct portaio_quick_handle *h = q->handle;
    if (!portaio_quick_enter(&q->state, h))
        return PORTAIO_QUICK_TAKEN;
    int room = __atomic_load_n(&q->room, __ATOMIC_RELAXED);
    /* room 0: nothing registered, and epoll_wait would say EINVAL.  The
       timeout is 0 ms: exact with epoll_wait, no timespec needed. */
    int n = room > 0 ? epoll_wait(h->fd, (struct epoll_event *)(void *)q->keys, room, 0) : 0;
    portaio_records_to_keys(q->keys, n);
    /* The kernel reports no bit above EPOLLRDHUP (0x2000): a key stays far below bit 63. */
    int64_t result = portaio_quick_result(n, q->keys);
    portaio_quick_leave(&q->state, &q->holder, h, n > 1, close);
    return result;
}

void portaio_epoll_quick_release(struct portaio_epoll_quick *q) { portaio_quick_give_back(&q->state, &q->holder); }
