/* portaio's AFD-poll state machine for Windows: the C API.
 *
 * portaio_afd.c explains the kernel facts.  This header is read twice: by the C
 * compiler (portaio_afd.c, the cffi module on win32, the Wine test program) and, the
 * part between the cffi markers only, by cffi's cdef parser in build_ffi.py,
 * which is why that part uses nothing but plain declarations and integer
 * #defines.
 *
 * Every function is thread-safe against every other on the same port, with
 * one exception: nothing may be called on a port once portaio_afd_close() has
 * started (the Python backend guarantees it).  A wait blocked in another
 * thread when close() starts is woken and returns before close() frees
 * anything.
 *
 * Errors: a function returning int returns -1 and a pointer-returning one
 * NULL, with the Win32 error code in GetLastError() (cffi: ffi.getwinerror()).
 */
#ifndef PORTAIO_AFD_H
#define PORTAIO_AFD_H

#include <stdint.h>

/* cffi-begin */
/* portaio's event bits (portaio.Events: the Python backend checks they match). */
#define PORTAIO_AFD_READABLE 1
#define PORTAIO_AFD_WRITABLE 2
#define PORTAIO_AFD_PRIORITY 4
#define PORTAIO_AFD_RDHUP 8
#define PORTAIO_AFD_HANGUP 16
#define PORTAIO_AFD_ERROR 32
#define PORTAIO_AFD_EDGE 64
#define PORTAIO_AFD_ONESHOT 128
#define PORTAIO_AFD_EXCLUSIVE 256
#define PORTAIO_AFD_WAKE 2048
/* Sockets sharing one \Device\Afd handle (as wepoll and mio). */
#define PORTAIO_AFD_GROUP_SIZE 32

typedef struct portaio_afd_port portaio_afd_port;
typedef struct portaio_afd_sock portaio_afd_sock;

/* A new port: an I/O completion port, no AFD handle yet. */
portaio_afd_port *portaio_afd_open(void);

/* Watch a socket: `events` is portaio interest (READABLE, WRITABLE, PRIORITY,
   RDHUP; HANGUP and ERROR accepted and always reported; ONESHOT).  EDGE and
   EXCLUSIVE fail with ERROR_NOT_SUPPORTED, unknown bits with
   ERROR_INVALID_PARAMETER, a handle that is not a socket with WSAENOTSOCK.
   Events are reported as keys `token | (uint64_t)flags << 24` (portaio_key.h).  The result
   stays valid until portaio_afd_remove(); the same socket may be added twice
   (two independent watches), which the Python layer never does. */
portaio_afd_sock *portaio_afd_add(portaio_afd_port *port, uintptr_t socket, uint32_t events,
                                  uint32_t token);

/* New interest and token (re-arms ONESHOT).  Takes effect at once, also for
   a wait blocked in another thread. */
int portaio_afd_modify(portaio_afd_port *port, portaio_afd_sock *sock, uint32_t events,
                       uint32_t token);

/* Stop watching; nothing is reported for `sock` afterwards, even when its
   poll had already completed.  `sock` must not be used again. */
int portaio_afd_remove(portaio_afd_port *port, portaio_afd_sock *sock);

/* Wait for events: timeout < 0 blocks, 0 looks once, otherwise seconds
   (the wait never ends early; the kernel counts whole milliseconds on the
   system timer tick).  Writes at most max_keys keys, one per socket at most,
   and returns how many (0 at the timeout). */
int portaio_afd_wait(portaio_afd_port *port, uint64_t *keys, int max_keys, double timeout);

/* Make a wait return the key token | (uint64_t)PORTAIO_AFD_WAKE << 24 (now,
   or the next wait if none is blocked).  Coalesced: wakes posted before a
   wait takes the first one are reported as one key (with the first token). */
int portaio_afd_wake(portaio_afd_port *port, uint32_t token);

/* Cancel every poll, wait (bounded) for the kernel to release their memory,
   close every handle the port created and free the port. */
int portaio_afd_close(portaio_afd_port *port);

/* Bookkeeping, for tests: AFD handles open, polls the kernel still holds. */
uint32_t portaio_afd_group_count(portaio_afd_port *port);
uint32_t portaio_afd_outstanding(portaio_afd_port *port);
/* cffi-end */

#endif
