#include <stdint.h>
#include <sys/epoll.h>
/* One epoll_wait, then each record as one 64-bit key: token | flags << 32
   (the layout of portaio's waits, csrc/portaio_epoll.c). */
int keys_wait(int epfd, struct epoll_event *events, uint64_t *keys, int maxevents)
{
    int n = epoll_wait(epfd, events, maxevents, 0);
    for (int i = 0; i < n; i++)
        keys[i] = events[i].data.u64 | ((uint64_t)events[i].events << 32);
    return n;
}
