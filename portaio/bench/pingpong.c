/* Load generator for portaio's echo benchmark: K connections, each sending a
 * SIZE-byte request and waiting for its full echo before the next one.
 * Prints "ready" once connected, then after SECONDS prints
 * "requests=N seconds=S cpu=C" (C = user+system CPU seconds of this process
 * during the timed phase).  Usage: pingpong HOST PORT K SECONDS SIZE */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT K SECONDS SIZE\n", argv[0]);
        return 2;
    }
    int k = atoi(argv[3]), size = atoi(argv[5]);
    double seconds = atof(argv[4]);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &addr.sin_addr);
    int ep = epoll_create1(0);
    int *fds = calloc(k, sizeof(int)), *got = calloc(k, sizeof(int));
    char *msg = malloc(size), *buf = malloc(65536);
    memset(msg, 'x', size);
    for (int i = 0; i < k; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
            perror("connect");
            return 1;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fds[i] = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (unsigned)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    printf("ready\n");
    fflush(stdout);
    double c0 = cpu(), t0 = now(), deadline = t0 + seconds;
    long requests = 0;
    for (int i = 0; i < k; i++) {
        if (write(fds[i], msg, size) != size) { perror("write"); return 1; }
    }
    struct epoll_event events[1024];
    int stop = 0;
    while (!stop) {
        int n = epoll_wait(ep, events, 1024, 1000);
        if (n < 0 && errno != EINTR) { perror("epoll_wait"); return 1; }
        for (int j = 0; j < n; j++) {
            int i = events[j].data.u32;
            ssize_t r = read(fds[i], buf, 65536);
            if (r <= 0) { fprintf(stderr, "connection %d closed (%zd)\n", i, r); return 1; }
            got[i] += r;
            if (got[i] >= size) {
                got[i] -= size;
                requests++;
                if (write(fds[i], msg, size) != size) { perror("write"); return 1; }
            }
        }
        if (now() >= deadline) stop = 1;
    }
    double elapsed = now() - t0, used = cpu() - c0;
    printf("requests=%ld seconds=%.6f cpu=%.6f\n", requests, elapsed, used);
    fflush(stdout);
    for (int i = 0; i < k; i++) close(fds[i]);
    return 0;
}
