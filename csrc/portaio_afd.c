/* portaio's AFD-poll state machine for Windows.
 *
 * How Windows tells a program that a socket is ready
 * --------------------------------------------------
 * Windows has no epoll.  Its scalable event mechanism is the I/O completion
 * port (IOCP): a kernel queue of *completed* operations.  A program starts an
 * overlapped operation on a handle associated with the port, and later
 * dequeues a completion packet (GetQueuedCompletionStatusEx, many at once)
 * that carries a per-handle "completion key" and the OVERLAPPED/IO_STATUS_BLOCK
 * pointer that identifies the operation.  PostQueuedCompletionStatus puts a
 * packet of our own on the same queue: that is how a wait is woken.
 *
 * Readiness ("this socket can be read now") is not a completion, and the
 * documented readiness APIs do not scale: select() is O(n) and limited to
 * FD_SETSIZE sockets (512 in CPython), WSAPoll is O(n) (and failed to report
 * refused connects before Windows 10 2004), WSAEventSelect needs one event
 * object per socket and WaitForMultipleObjects waits on at most 64.
 *
 * What sits under all of them is the Ancillary Function Driver (afd.sys), the
 * kernel half of Winsock.  Opening the device \Device\Afd (any name below it,
 * we use \Device\Afd\PortaIO) with NtCreateFile and no extended attributes
 * gives a handle to the driver that is not itself a socket.  On that handle
 * the driver accepts IOCTL_AFD_POLL (0x00012024) as an ordinary overlapped
 * device I/O control: the input buffer (AFD_POLL_INFO) lists sockets and the
 * AFD_POLL_* events wanted on each; the request completes as soon as one of
 * those events holds -- at once if it already does -- and the driver rewrites
 * the same buffer with the events that held.  The completion goes to the IOCP
 * the AFD handle is associated with.  So a readiness wait becomes an I/O
 * completion, and one IOCP gives O(ready) waits over any number of sockets.
 * This is undocumented, but it is what Microsoft's own select() is built on,
 * and libuv, wepoll, mio (Rust), smol's polling and trio all depend on it;
 * Wine implements it as well.  We read those projects for the facts; this
 * code is our own.
 *
 * The facts the code below is shaped by:
 *
 * - Base sockets only.  Layered service providers (LSPs) may wrap a socket
 *   in a handle of their own, which AFD does not know.  WSAIoctl
 *   SIO_BASE_HANDLE unwraps to the base provider's socket.  Some LSPs
 *   (Komodia's) intercept even that; SIO_BSP_HANDLE_POLL, meant for exactly
 *   this, returns the next socket down, from which SIO_BASE_HANDLE is tried
 *   again.  A non-socket handle fails with WSAENOTSOCK: AFD polls sockets
 *   only (no pipes, files or consoles on this backend).
 *
 * - One outstanding poll per socket.  Two IOCTL_AFD_POLLs on the same socket
 *   completing to the same port confuse the kernel: one is completed for the
 *   other's event (trio#52, wepoll#35).  So each socket has exactly one poll
 *   at a time, asking for the union of its read and write interest, and a
 *   change of interest that the pending poll does not cover cancels it and
 *   submits a new one when the cancellation has come back.
 *
 * - Cancellation is asynchronous.  NtCancelIoFileEx(afd, iosb) asks; the
 *   completion still arrives later, with STATUS_CANCELLED (or with events,
 *   if the poll completed first).  STATUS_NOT_FOUND means it had already
 *   completed and its packet is on its way: not an error.  Until that packet
 *   is dequeued the kernel owns the IO_STATUS_BLOCK and the AFD_POLL_INFO it
 *   writes into, so a removed socket's state is freed only then.
 *
 * - Cancelling costs more the more polls share one AFD handle (trio measured
 *   it growing quadratically), so sockets are spread over AFD handles of at
 *   most PORTAIO_AFD_GROUP_SIZE (32, as wepoll and mio) sockets each.  Groups
 *   are opened on demand and kept until the port closes.
 *
 * - Completion modes.  FILE_SKIP_SET_EVENT_ON_HANDLE: nobody waits on the AFD
 *   handle's own event, so the kernel need not signal it.  We do NOT set
 *   FILE_SKIP_COMPLETION_PORT_ON_SUCCESS: a poll that completes synchronously
 *   (the socket was already ready) still queues its packet, so every
 *   completion takes the same path through the port.
 *
 * - A poll reports once.  Level-triggered readiness is therefore built by
 *   re-submission: after an event is reported the socket is queued and its
 *   poll submitted again at the start of the next wait (the caller has read
 *   by then); while the condition still holds that poll completes at once.
 *   ONESHOT is the same without the re-submission until modify() re-arms.
 *   EDGE cannot be exact: a new poll cannot tell "more data arrived" from
 *   "data is still there", so it is refused (ERROR_NOT_SUPPORTED), never
 *   emulated approximately.  AFD_POLL_INFO's Exclusive field is not
 *   wake-one (an exclusive poll cancels the socket's other polls), so
 *   EXCLUSIVE is refused too.
 *
 * - The events.  AFD_POLL_RECEIVE (data), _RECEIVE_EXPEDITED (out-of-band
 *   data), _SEND (room to write), _DISCONNECT (the peer's FIN: a graceful
 *   shutdown of its sending side), _ABORT (a reset or aborted connection),
 *   _LOCAL_CLOSE (our handle was closed with closesocket; reported whether
 *   asked for or not), _CONNECT (0x40: stays set on every connected socket,
 *   useless as an event), _ACCEPT (a connection waits on a listening socket),
 *   _CONNECT_FAIL (connect() failed).  They translate to portaio's flags as
 *   Linux's tcp_poll reports the same TCP states, which is what the
 *   conformance contract is written against: FIN is READABLE|RDHUP (not a
 *   hang-up: our sending side stays open); a reset and a failed connect are
 *   ERROR|HANGUP together with READABLE|WRITABLE|RDHUP; HANGUP and ERROR are
 *   reported whatever the interest (ABORT and CONNECT_FAIL are always in the
 *   poll's mask), other flags only when asked for.  AFD says nothing of our
 *   own shutdown(SD_SEND), so when a FIN is reported we ask whether our
 *   sending side is shut too (a zero-byte WSASend fails with WSAESHUTDOWN)
 *   and report HANGUP, as Linux does when both directions are closed.
 *   LOCAL_CLOSE, or a poll refused because the handle is no longer a socket
 *   (closed, its number perhaps reused), stops the polling of that socket
 *   silently: its watch is dead until removed.  A handle closed *between*
 *   two polls whose number is reused at once for another socket would be
 *   polled in its place: unregister before closing (the documented rule).
 *
 * - Wine (8.0, where the C tests run) differs from Windows in two ways the
 *   tests name: a FIN that arrives while data is unread is reported as
 *   RECEIVE only until the data is read, then DISCONNECT (Windows reports
 *   both at once; Wine's own AFD tests mark it todo_wine); and
 *   SIO_BASE_HANDLE succeeds on handles that are not sockets (hence the
 *   SO_TYPE check in add()).
 *
 * - Time.  GetQueuedCompletionStatusEx takes whole milliseconds and wakes on
 *   the system timer tick (15.625 ms by default; finer while some process
 *   has raised the timer resolution).  A wait rounds up and loops on
 *   QueryPerformanceCounter until its deadline, so it never ends early; it
 *   may end up to a tick late.
 *
 * Locking: one critical section per port guards every field; it is released
 * only around GetQueuedCompletionStatusEx.  A change made while a wait is
 * blocked is submitted (or its cancellation started) at once, and the
 * resulting completion wakes that wait.
 */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <winsock2.h>
#include <windows.h>
#include <mswsock.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "portaio_afd.h"
#include "portaio_key.h"

/* ---------------------------------------------------------------- the NT API
 * Declared here under our own names (winternl.h lacks some, and differs
 * between the Windows SDK and mingw-w64) and resolved from ntdll.dll at run
 * time, so nothing links against ntdll's import library. */

typedef LONG afd_ntstatus;
#define AFD_STATUS_SUCCESS ((afd_ntstatus)0x00000000L)
#define AFD_STATUS_PENDING ((afd_ntstatus)0x00000103L)
#define AFD_STATUS_CANCELLED ((afd_ntstatus)0xC0000120L)
#define AFD_STATUS_NOT_FOUND ((afd_ntstatus)0xC0000225L)
#define AFD_STATUS_INVALID_HANDLE ((afd_ntstatus)0xC0000008L)
#define AFD_STATUS_OBJECT_TYPE_MISMATCH ((afd_ntstatus)0xC0000024L)
#define AFD_NT_SUCCESS(s) ((s) >= 0)

typedef struct {
    union {
        afd_ntstatus Status;
        void *Pointer;
    } u;
    ULONG_PTR Information;
} afd_iosb;

typedef struct {
    USHORT Length;
    USHORT MaximumLength;
    const WCHAR *Buffer;
} afd_unicode_string;

typedef struct {
    ULONG Length;
    HANDLE RootDirectory;
    afd_unicode_string *ObjectName;
    ULONG Attributes;
    void *SecurityDescriptor;
    void *SecurityQualityOfService;
} afd_object_attributes;

typedef afd_ntstatus(NTAPI *afd_nt_create_file_fn)(HANDLE *, ACCESS_MASK, afd_object_attributes *,
                                                   afd_iosb *, LARGE_INTEGER *, ULONG, ULONG, ULONG,
                                                   ULONG, void *, ULONG);
typedef afd_ntstatus(NTAPI *afd_nt_device_io_control_file_fn)(HANDLE, HANDLE, void *, void *,
                                                              afd_iosb *, ULONG, void *, ULONG,
                                                              void *, ULONG);
typedef afd_ntstatus(NTAPI *afd_nt_cancel_io_file_ex_fn)(HANDLE, afd_iosb *, afd_iosb *);
typedef ULONG(NTAPI *afd_rtl_nt_status_to_dos_error_fn)(afd_ntstatus);

static afd_nt_create_file_fn afd_NtCreateFile;
static afd_nt_device_io_control_file_fn afd_NtDeviceIoControlFile;
static afd_nt_cancel_io_file_ex_fn afd_NtCancelIoFileEx;
static afd_rtl_nt_status_to_dos_error_fn afd_RtlNtStatusToDosError;
static INIT_ONCE afd_nt_once = INIT_ONCE_STATIC_INIT;

static BOOL CALLBACK afd_nt_resolve(INIT_ONCE *once, void *param, void **context)
{
    HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
    (void)once;
    (void)param;
    (void)context;
    if (ntdll == NULL)
        return FALSE;
    /* Through void *: GetProcAddress's FARPROC is not the functions' type. */
    afd_NtCreateFile = (afd_nt_create_file_fn)(void *)GetProcAddress(ntdll, "NtCreateFile");
    afd_NtDeviceIoControlFile =
        (afd_nt_device_io_control_file_fn)(void *)GetProcAddress(ntdll, "NtDeviceIoControlFile");
    afd_NtCancelIoFileEx =
        (afd_nt_cancel_io_file_ex_fn)(void *)GetProcAddress(ntdll, "NtCancelIoFileEx");
    afd_RtlNtStatusToDosError =
        (afd_rtl_nt_status_to_dos_error_fn)(void *)GetProcAddress(ntdll, "RtlNtStatusToDosError");
    return afd_NtCreateFile && afd_NtDeviceIoControlFile && afd_NtCancelIoFileEx &&
           afd_RtlNtStatusToDosError;
}

/* ------------------------------------------------------------ the AFD ioctl */

#define AFD_IOCTL_POLL 0x00012024UL
#define AFD_POLL_RECEIVE 0x0001UL
#define AFD_POLL_RECEIVE_EXPEDITED 0x0002UL
#define AFD_POLL_SEND 0x0004UL
#define AFD_POLL_DISCONNECT 0x0008UL
#define AFD_POLL_ABORT 0x0010UL
#define AFD_POLL_LOCAL_CLOSE 0x0020UL
#define AFD_POLL_ACCEPT 0x0080UL
#define AFD_POLL_CONNECT_FAIL 0x0100UL

typedef struct {
    HANDLE Handle;
    ULONG Events;
    afd_ntstatus Status;
} afd_poll_handle_info;

typedef struct {
    LARGE_INTEGER Timeout;
    ULONG NumberOfHandles;
    ULONG Exclusive;
    afd_poll_handle_info Handles[1];
} afd_poll_info;

#ifndef SIO_BASE_HANDLE
#define SIO_BASE_HANDLE 0x48000022UL
#endif
#ifndef SIO_BSP_HANDLE_POLL
#define SIO_BSP_HANDLE_POLL 0x4800001DUL
#endif

/* Completion keys: every AFD handle is associated with key 0; wake packets
   are posted with key 1. */
#define AFD_KEY_POLL 0
#define AFD_KEY_WAKE 1

/* Completions dequeued per GetQueuedCompletionStatusEx call. */
#define AFD_BATCH 256

#define AFD_INTEREST \
    (PORTAIO_AFD_READABLE | PORTAIO_AFD_WRITABLE | PORTAIO_AFD_PRIORITY | PORTAIO_AFD_RDHUP)
#define AFD_ALWAYS (PORTAIO_AFD_HANGUP | PORTAIO_AFD_ERROR)
#define AFD_KNOWN \
    (AFD_INTEREST | AFD_ALWAYS | PORTAIO_AFD_EDGE | PORTAIO_AFD_ONESHOT | PORTAIO_AFD_EXCLUSIVE)

/* ------------------------------------------------------------ the state */

typedef enum { SOCK_IDLE, SOCK_PENDING, SOCK_CANCELLED } sock_poll_state;

/* A doubly linked list node; a list is a node whose next/prev point at itself
   when empty. */
typedef struct afd_link {
    struct afd_link *next, *prev;
} afd_link;

typedef struct afd_group {
    afd_link link; /* in port->groups: full groups first, those with room last */
    HANDLE afd;
    uint32_t size; /* sockets whose state points here, removed-but-pending included */
} afd_group;

struct portaio_afd_sock {
    afd_iosb iosb;      /* owned by the kernel while a poll is outstanding */
    afd_poll_info info; /* likewise */
    afd_link all;       /* in port->socks, until freed */
    afd_link queue;     /* in port->updates while a (re-)submission is due */
    afd_group *group;
    SOCKET base;
    SOCKET user;        /* the handle given to add(), for the send-side probe */
    uint32_t events;    /* portaio interest and modes */
    uint32_t token;
    ULONG pending_mask; /* the AFD events of the outstanding poll */
    sock_poll_state state;
    int armed;   /* 0 after a ONESHOT report until modify() */
    int closed;  /* the handle was closed under us: never submit again */
    int removed; /* portaio_afd_remove() was called; free on completion */
};

struct portaio_afd_port {
    CRITICAL_SECTION lock;
    HANDLE iocp;
    afd_link groups;
    afd_link socks;
    afd_link updates;
    uint32_t group_count;
    uint32_t outstanding; /* polls submitted whose completion is not dequeued */
    int waiting;          /* threads inside GetQueuedCompletionStatusEx */
    int closing;
    volatile LONG wake_posted;
};

static void link_init(afd_link *l) { l->next = l->prev = l; }
static int link_empty(const afd_link *l) { return l->next == l; }
static void link_remove(afd_link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    link_init(l);
}
static void link_append(afd_link *list, afd_link *l)
{
    l->prev = list->prev;
    l->next = list;
    list->prev->next = l;
    list->prev = l;
}
static void link_prepend(afd_link *list, afd_link *l)
{
    l->next = list->next;
    l->prev = list;
    list->next->prev = l;
    list->next = l;
}

#define CONTAINER(ptr, type, field) ((type *)(void *)((char *)(ptr) - offsetof(type, field)))

static int fail(DWORD error)
{
    SetLastError(error);
    return -1;
}

static DWORD nt_error(afd_ntstatus status) { return afd_RtlNtStatusToDosError(status); }

/* ------------------------------------------------------------ translation */

static ULONG afd_mask(uint32_t events)
{
    /* Reset and failed connects are hang-ups, reported whatever the
       interest; LOCAL_CLOSE is reported anyway, asking makes it explicit. */
    ULONG mask = AFD_POLL_LOCAL_CLOSE | AFD_POLL_ABORT | AFD_POLL_CONNECT_FAIL;
    if (events & PORTAIO_AFD_READABLE)
        mask |= AFD_POLL_RECEIVE | AFD_POLL_ACCEPT | AFD_POLL_DISCONNECT;
    if (events & PORTAIO_AFD_RDHUP)
        mask |= AFD_POLL_DISCONNECT;
    if (events & PORTAIO_AFD_PRIORITY)
        mask |= AFD_POLL_RECEIVE_EXPEDITED;
    if (events & PORTAIO_AFD_WRITABLE)
        mask |= AFD_POLL_SEND;
    return mask;
}

static uint32_t portaio_flags(ULONG afd)
{
    uint32_t flags = 0;
    if (afd & (AFD_POLL_RECEIVE | AFD_POLL_ACCEPT))
        flags |= PORTAIO_AFD_READABLE;
    if (afd & AFD_POLL_RECEIVE_EXPEDITED)
        flags |= PORTAIO_AFD_PRIORITY;
    if (afd & AFD_POLL_SEND)
        flags |= PORTAIO_AFD_WRITABLE;
    if (afd & AFD_POLL_DISCONNECT)
        flags |= PORTAIO_AFD_READABLE | PORTAIO_AFD_RDHUP;
    if (afd & (AFD_POLL_ABORT | AFD_POLL_CONNECT_FAIL))
        flags |= PORTAIO_AFD_READABLE | PORTAIO_AFD_WRITABLE | PORTAIO_AFD_RDHUP |
                 PORTAIO_AFD_HANGUP | PORTAIO_AFD_ERROR;
    return flags;
}

static int check_events(uint32_t events)
{
    if (events & ~(uint32_t)AFD_KNOWN)
        return fail(ERROR_INVALID_PARAMETER);
    if (events & (PORTAIO_AFD_EDGE | PORTAIO_AFD_EXCLUSIVE))
        return fail(ERROR_NOT_SUPPORTED);
    return 0;
}

/* ------------------------------------------------------------ groups */

static afd_group *group_acquire(portaio_afd_port *port)
{
    static WCHAR name[] = L"\\Device\\Afd\\PortaIO";
    afd_unicode_string uname = {(USHORT)(sizeof(name) - sizeof(WCHAR)), (USHORT)sizeof(name), name};
    afd_object_attributes attrs = {(ULONG)sizeof(attrs), NULL, &uname, 0, NULL, NULL};
    afd_iosb iosb;
    afd_ntstatus status;
    afd_group *group = NULL;

    /* Groups with room are kept at the end of the list. */
    if (!link_empty(&port->groups)) {
        group = CONTAINER(port->groups.prev, afd_group, link);
        if (group->size >= PORTAIO_AFD_GROUP_SIZE)
            group = NULL;
    }
    if (group == NULL) {
        group = calloc(1, sizeof(*group));
        if (group == NULL) {
            SetLastError(ERROR_NOT_ENOUGH_MEMORY);
            return NULL;
        }
        status = afd_NtCreateFile(&group->afd, SYNCHRONIZE, &attrs, &iosb, NULL, 0,
                                  FILE_SHARE_READ | FILE_SHARE_WRITE, 1 /* FILE_OPEN */, 0, NULL,
                                  0);
        if (status != AFD_STATUS_SUCCESS) {
            free(group);
            SetLastError(nt_error(status));
            return NULL;
        }
        if (CreateIoCompletionPort(group->afd, port->iocp, AFD_KEY_POLL, 0) == NULL ||
            !SetFileCompletionNotificationModes(group->afd, FILE_SKIP_SET_EVENT_ON_HANDLE)) {
            DWORD error = GetLastError();
            CloseHandle(group->afd);
            free(group);
            SetLastError(error);
            return NULL;
        }
        link_append(&port->groups, &group->link);
        port->group_count++;
    }
    if (++group->size == PORTAIO_AFD_GROUP_SIZE) {
        link_remove(&group->link);
        link_prepend(&port->groups, &group->link);
    }
    return group;
}

static void group_release(portaio_afd_port *port, afd_group *group)
{
    group->size--;
    link_remove(&group->link);
    link_append(&port->groups, &group->link);
}

/* ------------------------------------------------------------ sockets */

static SOCKET ioctl_socket(SOCKET s, DWORD code)
{
    SOCKET out = INVALID_SOCKET;
    DWORD bytes = 0;
    if (WSAIoctl(s, code, NULL, 0, &out, sizeof(out), &bytes, NULL, NULL) == SOCKET_ERROR)
        return INVALID_SOCKET;
    return out;
}

static SOCKET base_socket(SOCKET s)
{
    for (;;) {
        SOCKET base = ioctl_socket(s, SIO_BASE_HANDLE);
        int error;
        SOCKET next;
        if (base != INVALID_SOCKET)
            return base;
        error = WSAGetLastError();
        if (error == WSAENOTSOCK)
            break;
        /* An LSP swallowed SIO_BASE_HANDLE: step one layer down and retry. */
        next = ioctl_socket(s, SIO_BSP_HANDLE_POLL);
        if (next == INVALID_SOCKET || next == s)
            break;
        s = next;
    }
    return INVALID_SOCKET;
}

/* AFD has no event for our own shutdown(SD_SEND), so "both directions shut"
   (a hang-up, as Linux reports it) is found by asking: a zero-byte send
   transfers nothing and fails with WSAESHUTDOWN once our sending side is
   shut.  Only asked when the peer's FIN (DISCONNECT) is reported. */
static int send_side_shut(SOCKET s)
{
    WSABUF none = {0, NULL};
    DWORD sent = 0;
    if (WSASend(s, &none, 1, &sent, 0, NULL, NULL) == 0)
        return 0;
    return WSAGetLastError() == WSAESHUTDOWN;
}

static void sock_free(portaio_afd_port *port, portaio_afd_sock *sock)
{
    link_remove(&sock->all);
    link_remove(&sock->queue);
    group_release(port, sock->group);
    free(sock);
}

/* Ask for a (re-)submission at the next wait, or now if one is blocked. */
static int submit(portaio_afd_port *port, portaio_afd_sock *sock);

static void queue_update(portaio_afd_port *port, portaio_afd_sock *sock)
{
    if (link_empty(&sock->queue))
        link_append(&port->updates, &sock->queue);
}

static int submit(portaio_afd_port *port, portaio_afd_sock *sock)
{
    afd_ntstatus status;
    ULONG mask = afd_mask(sock->events);

    sock->info.Timeout.QuadPart = INT64_MAX;
    sock->info.NumberOfHandles = 1;
    sock->info.Exclusive = FALSE;
    sock->info.Handles[0].Handle = (HANDLE)sock->base;
    sock->info.Handles[0].Events = mask;
    sock->info.Handles[0].Status = 0;
    sock->iosb.u.Status = AFD_STATUS_PENDING;
    status = afd_NtDeviceIoControlFile(sock->group->afd, NULL, NULL, &sock->iosb, &sock->iosb,
                                       AFD_IOCTL_POLL, &sock->info, sizeof(sock->info),
                                       &sock->info, sizeof(sock->info));
    if (status == AFD_STATUS_SUCCESS || status == AFD_STATUS_PENDING) {
        /* Either way a completion packet is queued (see the essay). */
        sock->state = SOCK_PENDING;
        sock->pending_mask = mask;
        port->outstanding++;
        return 0;
    }
    if (status == AFD_STATUS_INVALID_HANDLE || status == AFD_STATUS_OBJECT_TYPE_MISMATCH) {
        /* Closed behind our back (and perhaps the number reused for another
           kind of object): the watch is dead until removed. */
        sock->closed = 1;
        return 0;
    }
    return fail(nt_error(status));
}

static int cancel(portaio_afd_port *port, portaio_afd_sock *sock)
{
    afd_iosb cancel_iosb;
    afd_ntstatus status;
    if (sock->state != SOCK_PENDING)
        return 0;
    (void)port;
    status = afd_NtCancelIoFileEx(sock->group->afd, &sock->iosb, &cancel_iosb);
    /* NOT_FOUND: it completed just now; its packet is still to come. */
    if (status != AFD_STATUS_SUCCESS && status != AFD_STATUS_NOT_FOUND)
        return fail(nt_error(status));
    sock->state = SOCK_CANCELLED;
    return 0;
}

static uint64_t key(uint32_t flags, uint32_t token) { return portaio_key(token, flags); }

/* Submit every queued socket.  A socket whose submission fails is reported
   with ERROR|HANGUP (while there is room) and tried again at the next wait. */
static int flush(portaio_afd_port *port, uint64_t *keys, int n, int max)
{
    afd_link todo;
    link_init(&todo);
    if (!link_empty(&port->updates)) {
        /* Detach the queue: a failed socket re-queued below waits for the next flush. */
        todo.next = port->updates.next;
        todo.prev = port->updates.prev;
        todo.next->prev = &todo;
        todo.prev->next = &todo;
        link_init(&port->updates);
    }
    while (!link_empty(&todo)) {
        portaio_afd_sock *sock = CONTAINER(todo.next, portaio_afd_sock, queue);
        link_remove(&sock->queue);
        if (sock->state != SOCK_IDLE || sock->removed || sock->closed || !sock->armed)
            continue; /* a pending poll's completion re-queues it */
        if (submit(port, sock) < 0) {
            if (keys != NULL && n < max) {
                keys[n++] = key(PORTAIO_AFD_ERROR | PORTAIO_AFD_HANGUP, sock->token);
                if (sock->events & PORTAIO_AFD_ONESHOT)
                    sock->armed = 0;
            }
            queue_update(port, sock);
        }
    }
    return n;
}

static void flush_if_waiting(portaio_afd_port *port)
{
    /* A blocked wait would not see the change until it returned: submit now,
       and the completion (or the cancellation's) wakes it. */
    if (port->waiting > 0)
        (void)flush(port, NULL, 0, 0);
}

/* One dequeued poll completion: returns 1 and writes *out when it is an event
   to report. */
static int complete(portaio_afd_port *port, afd_iosb *iosb, uint64_t *out)
{
    portaio_afd_sock *sock = CONTAINER(iosb, portaio_afd_sock, iosb);
    afd_ntstatus status = sock->iosb.u.Status;
    uint32_t flags = 0;

    sock->state = SOCK_IDLE;
    sock->pending_mask = 0;
    port->outstanding--;
    if (sock->removed) {
        sock_free(port, sock);
        return 0;
    }
    if (status == AFD_STATUS_CANCELLED) {
        /* We cancelled it to change the interest: submit the new one. */
    } else if (status == AFD_STATUS_INVALID_HANDLE || status == AFD_STATUS_OBJECT_TYPE_MISMATCH) {
        sock->closed = 1;
        return 0;
    } else if (!AFD_NT_SUCCESS(status)) {
        flags = PORTAIO_AFD_ERROR | PORTAIO_AFD_HANGUP;
    } else if (sock->info.NumberOfHandles >= 1) {
        ULONG afd = sock->info.Handles[0].Events;
        if (afd & AFD_POLL_LOCAL_CLOSE) {
            sock->closed = 1;
            return 0;
        }
        flags = portaio_flags(afd);
        if ((afd & AFD_POLL_DISCONNECT) && send_side_shut(sock->user))
            flags |= PORTAIO_AFD_HANGUP;
    }
    queue_update(port, sock);
    if (!sock->armed)
        return 0;
    flags &= (sock->events & AFD_INTEREST) | AFD_ALWAYS;
    if (flags == 0)
        return 0;
    if (sock->events & PORTAIO_AFD_ONESHOT)
        sock->armed = 0;
    *out = key(flags, sock->token);
    return 1;
}

/* ------------------------------------------------------------ the API */

portaio_afd_port *portaio_afd_open(void)
{
    portaio_afd_port *port;
    if (!InitOnceExecuteOnce(&afd_nt_once, afd_nt_resolve, NULL, NULL)) {
        SetLastError(ERROR_PROC_NOT_FOUND);
        return NULL;
    }
    port = calloc(1, sizeof(*port));
    if (port == NULL) {
        SetLastError(ERROR_NOT_ENOUGH_MEMORY);
        return NULL;
    }
    port->iocp = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 0);
    if (port->iocp == NULL) {
        DWORD error = GetLastError();
        free(port);
        SetLastError(error);
        return NULL;
    }
    InitializeCriticalSection(&port->lock);
    link_init(&port->groups);
    link_init(&port->socks);
    link_init(&port->updates);
    return port;
}

portaio_afd_sock *portaio_afd_add(portaio_afd_port *port, uintptr_t socket, uint32_t events,
                                  uint32_t token)
{
    portaio_afd_sock *sock;
    SOCKET base;
    DWORD error = 0;

    int type = 0, type_len = (int)sizeof(type);

    if (check_events(events) < 0)
        return NULL;
    /* Outside the lock: these may call into an LSP.  SO_TYPE first: Wine's
       SIO_BASE_HANDLE succeeds on a handle that is not a socket. */
    if (getsockopt((SOCKET)socket, SOL_SOCKET, SO_TYPE, (char *)&type, &type_len) != 0) {
        SetLastError((DWORD)WSAGetLastError());
        return NULL;
    }
    base = base_socket((SOCKET)socket);
    if (base == INVALID_SOCKET) {
        error = (DWORD)WSAGetLastError();
        SetLastError(error ? error : WSAENOTSOCK);
        return NULL;
    }
    sock = calloc(1, sizeof(*sock));
    if (sock == NULL) {
        SetLastError(ERROR_NOT_ENOUGH_MEMORY);
        return NULL;
    }
    sock->base = base;
    sock->user = (SOCKET)socket;
    sock->events = events;
    sock->token = token;
    sock->armed = 1;
    sock->state = SOCK_IDLE;
    link_init(&sock->all);
    link_init(&sock->queue);

    EnterCriticalSection(&port->lock);
    sock->group = group_acquire(port);
    if (sock->group == NULL) {
        error = GetLastError();
        LeaveCriticalSection(&port->lock);
        free(sock);
        SetLastError(error);
        return NULL;
    }
    link_append(&port->socks, &sock->all);
    queue_update(port, sock);
    flush_if_waiting(port);
    LeaveCriticalSection(&port->lock);
    return sock;
}

int portaio_afd_modify(portaio_afd_port *port, portaio_afd_sock *sock, uint32_t events,
                       uint32_t token)
{
    int result = 0;
    if (check_events(events) < 0)
        return -1;
    EnterCriticalSection(&port->lock);
    sock->events = events;
    sock->token = token;
    sock->armed = 1;
    if (sock->state == SOCK_PENDING && (afd_mask(events) & ~sock->pending_mask) != 0) {
        /* The pending poll misses something now wanted: cancel it; its
           completion re-queues the socket with the new mask.  (A poll that
           asks for more than wanted stays: a completion for an event no
           longer wanted is filtered out and the poll re-submitted.) */
        result = cancel(port, sock);
    } else if (sock->state == SOCK_IDLE) {
        queue_update(port, sock);
        flush_if_waiting(port);
    }
    LeaveCriticalSection(&port->lock);
    return result;
}

int portaio_afd_remove(portaio_afd_port *port, portaio_afd_sock *sock)
{
    EnterCriticalSection(&port->lock);
    sock->removed = 1;
    link_remove(&sock->queue);
    if (sock->state == SOCK_PENDING && cancel(port, sock) < 0) {
        /* The kernel kept the poll: its completion still frees the state. */
        sock->state = SOCK_CANCELLED;
    }
    if (sock->state == SOCK_IDLE)
        sock_free(port, sock);
    LeaveCriticalSection(&port->lock);
    return 0;
}

static DWORD timeout_ms(double seconds)
{
    double ms = seconds * 1000.0;
    if (ms <= 0)
        return 0;
    if (ms >= (double)(INFINITE - 1))
        return INFINITE - 1;
    return (DWORD)ms + ((double)(DWORD)ms < ms ? 1 : 0);
}

int portaio_afd_wait(portaio_afd_port *port, uint64_t *keys, int max_keys, double timeout)
{
    OVERLAPPED_ENTRY entries[AFD_BATCH];
    LARGE_INTEGER freq, now, deadline;
    int n = 0;

    if (max_keys <= 0 || timeout != timeout)
        return fail(ERROR_INVALID_PARAMETER);
    QueryPerformanceFrequency(&freq);
    deadline.QuadPart = 0;
    if (timeout > 0) {
        QueryPerformanceCounter(&now);
        if (timeout > 1e9)
            timeout = -1; /* ~31 years: block */
        else
            deadline.QuadPart = now.QuadPart + (LONGLONG)(timeout * (double)freq.QuadPart) + 1;
    }

    EnterCriticalSection(&port->lock);
    if (port->closing) {
        LeaveCriticalSection(&port->lock);
        return fail(ERROR_INVALID_HANDLE);
    }
    for (;;) {
        ULONG got = 0, want, i;
        DWORD ms, error = 0;
        BOOL ok;

        n = flush(port, keys, n, max_keys);
        if (n > 0 || timeout == 0) {
            ms = 0;
        } else if (timeout < 0) {
            ms = INFINITE;
        } else {
            QueryPerformanceCounter(&now);
            if (now.QuadPart >= deadline.QuadPart)
                break;
            ms = timeout_ms((double)(deadline.QuadPart - now.QuadPart) / (double)freq.QuadPart);
        }
        want = (ULONG)(max_keys - n);
        if (want > AFD_BATCH)
            want = AFD_BATCH;
        if (want == 0)
            break;
        port->waiting++;
        LeaveCriticalSection(&port->lock);
        ok = GetQueuedCompletionStatusEx(port->iocp, entries, want, &got, ms, FALSE);
        if (!ok)
            error = GetLastError();
        EnterCriticalSection(&port->lock);
        port->waiting--;
        if (!ok) {
            if (error != WAIT_TIMEOUT) {
                LeaveCriticalSection(&port->lock);
                return fail(error);
            }
            got = 0;
        }
        for (i = 0; i < got; i++) {
            if (entries[i].lpCompletionKey == AFD_KEY_WAKE) {
                /* The token rides in the byte count; close()'s own posts carry 0. */
                InterlockedExchange(&port->wake_posted, 0);
                keys[n++] = key(PORTAIO_AFD_WAKE, (uint32_t)entries[i].dwNumberOfBytesTransferred);
            } else {
                n += complete(port, (afd_iosb *)entries[i].lpOverlapped, &keys[n]);
            }
        }
        if (port->closing)
            break;
        if (got == want && n < max_keys)
            continue; /* more may be queued: take them without blocking */
        if (n > 0 || timeout == 0)
            break;
    }
    LeaveCriticalSection(&port->lock);
    return n;
}

int portaio_afd_wake(portaio_afd_port *port, uint32_t token)
{
    if (InterlockedCompareExchange(&port->wake_posted, 1, 0) != 0)
        return 0; /* one is on its way: coalesce */
    if (!PostQueuedCompletionStatus(port->iocp, (DWORD)token, AFD_KEY_WAKE, NULL)) {
        DWORD error = GetLastError();
        InterlockedExchange(&port->wake_posted, 0);
        return fail(error);
    }
    return 0;
}

int portaio_afd_close(portaio_afd_port *port)
{
    OVERLAPPED_ENTRY entries[AFD_BATCH];
    afd_link *l;
    ULONGLONG give_up;

    EnterCriticalSection(&port->lock);
    port->closing = 1;
    /* Get a blocked wait out of the port before we take its packets. */
    while (port->waiting > 0) {
        LeaveCriticalSection(&port->lock);
        PostQueuedCompletionStatus(port->iocp, 0, AFD_KEY_WAKE, NULL);
        Sleep(1);
        EnterCriticalSection(&port->lock);
    }
    for (l = port->socks.next; l != &port->socks; l = l->next) {
        portaio_afd_sock *sock = CONTAINER(l, portaio_afd_sock, all);
        sock->removed = 1;
        (void)cancel(port, sock);
    }
    /* The kernel writes each poll's status block when it completes: drain
       the cancellations before freeing (bounded: if the kernel never answers,
       leak that memory rather than let it write into freed memory). */
    give_up = GetTickCount64() + 2000;
    while (port->outstanding > 0 && GetTickCount64() < give_up) {
        ULONG got = 0, i;
        if (!GetQueuedCompletionStatusEx(port->iocp, entries, AFD_BATCH, &got, 100, FALSE))
            continue;
        for (i = 0; i < got; i++) {
            if (entries[i].lpCompletionKey == AFD_KEY_POLL) {
                portaio_afd_sock *sock =
                    CONTAINER((afd_iosb *)entries[i].lpOverlapped, portaio_afd_sock, iosb);
                sock->state = SOCK_IDLE;
                port->outstanding--;
            }
        }
    }
    while (!link_empty(&port->groups)) {
        afd_group *group = CONTAINER(port->groups.next, afd_group, link);
        link_remove(&group->link);
        CloseHandle(group->afd);
        free(group);
    }
    CloseHandle(port->iocp);
    while (!link_empty(&port->socks)) {
        portaio_afd_sock *sock = CONTAINER(port->socks.next, portaio_afd_sock, all);
        link_remove(&sock->all);
        if (sock->state == SOCK_IDLE)
            free(sock);
    }
    LeaveCriticalSection(&port->lock);
    DeleteCriticalSection(&port->lock);
    free(port);
    return 0;
}

uint32_t portaio_afd_group_count(portaio_afd_port *port)
{
    uint32_t n;
    EnterCriticalSection(&port->lock);
    n = port->group_count;
    LeaveCriticalSection(&port->lock);
    return n;
}

uint32_t portaio_afd_outstanding(portaio_afd_port *port)
{
    uint32_t n;
    EnterCriticalSection(&port->lock);
    n = port->outstanding;
    LeaveCriticalSection(&port->lock);
    return n;
}
