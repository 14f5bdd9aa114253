/*
 * Sets TCP_NODELAY on every connection a server accepts, for servers that
 * do not set it themselves (s3s-fs 0.14-0.17). Loaded with LD_PRELOAD by
 * scripts/dev-services.sh; Linux (glibc) only.
 *
 * Why: without it the server's Nagle algorithm holds each response's second
 * write (the rest of an object's body) until the client acknowledges the
 * first, and the client delays that acknowledgement by 40 ms. Every GET of
 * more than one write then takes ~40 ms on loopback, which made the tests
 * and benchmarks measure the server's socket, not weir (docs/decisions.md,
 * "The test S3 server's sockets").
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static void no_delay(int fd) {
    int one = 1;
    /* Fails harmlessly on sockets that are not TCP (Unix sockets). */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    if (!real) real = (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
    int accepted = real(fd, addr, len, flags);
    if (accepted >= 0) no_delay(accepted);
    return accepted;
}

int accept(int fd, struct sockaddr *addr, socklen_t *len) {
    static int (*real)(int, struct sockaddr *, socklen_t *);
    if (!real) real = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
    int accepted = real(fd, addr, len);
    if (accepted >= 0) no_delay(accepted);
    return accepted;
}
