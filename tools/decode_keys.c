#include <stdint.h>
#include <sys/epoll.h>
/* One epoll_wait, then each record as one 64-bit key: flags | token << 32. */
int keys_wait(int epfd, struct epoll_event *events, uint64_t *keys, int maxevents)
{
    int n = epoll_wait(epfd, events, maxevents, 0);
    for (int i = 0; i < n; i++)
        keys[i] = (uint64_t)events[i].events | (events[i].data.u64 << 32);
    return n;
}
