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
#include <stdlib.h>
#include <sys/socket.h>

typedef int (*accept_fn)(int, struct sockaddr *, socklen_t *);
typedef int (*accept4_fn)(int, struct sockaddr *, socklen_t *, int);

static accept_fn real_accept;
static accept4_fn real_accept4;

/* Resolved once, before the server's threads start. */
__attribute__((constructor)) static void resolve(void) {
    real_accept = (accept_fn)dlsym(RTLD_NEXT, "accept");
    real_accept4 = (accept4_fn)dlsym(RTLD_NEXT, "accept4");
    if (!real_accept || !real_accept4) abort();
}

static int no_delay(int fd) {
    if (fd >= 0) {
        int one = 1;
        /* Fails harmlessly on sockets that are not TCP (Unix sockets). */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    return no_delay(real_accept4(fd, addr, len, flags));
}

int accept(int fd, struct sockaddr *addr, socklen_t *len) {
    return no_delay(real_accept(fd, addr, len));
}
