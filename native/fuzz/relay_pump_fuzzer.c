/*
 * libFuzzer target: a tunnel relay's turns (relay_service and its buffering and half-close,
 * relay_pump.c) between a sandbox and an upstream, both hostile, over real sockets with small
 * buffers (so sends are partial and the buffer's start moves). Byte 0: bit 0 starts the relay
 * as connect() does (the upstream still connecting), bits 1-7 give initial bytes (a ClientHello
 * and what followed, up to 127 KB, more than one buffer). Then records of [op, length]: either
 * peer sends `length` * 16 bytes (or what its socket takes), reads up to `length` * 64 bytes,
 * ends its writing, or closes; the relay thread gets an event on a side (the events the socket
 * has now, as epoll would report them) or takes another turn after one that stopped at the
 * budget.
 *
 * Checked besides the sanitizers: each peer receives exactly the start of what the other sent,
 * in order; the buffer's bookkeeping stays within the buffer; an end is passed on only after
 * everything before it; a relay that ends as "end" (not an error) has delivered everything to
 * every peer still there, and its end too; a relay that has not ended delivers everything once
 * it settles; the relay ends once, and sides leave the epoll set only once.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../tunnel-relay/relay_pump.h"

/* The n-th byte peer p sends: a pattern that catches reordering, loss and duplication. */
static unsigned char pattern(int p, uint64_t n) {
  return (unsigned char)((n * 131) ^ (n >> 8) ^ (n >> 17) ^ (uint64_t)(p * 0x5b));
}

typedef struct {
  int fd; /* the peer's end */
  uint64_t sent, received;
  int shut, closed, saw_end;
} peer_t;

static relay_t relay;
static size_t capacity[2]; /* each direction's buffer size */
static const char *finished; /* the reason it ended, or NULL */
static int unwatched[2];

static void fail(const char *what, int p) {
  fprintf(stderr, "relay_pump_fuzzer: %d: %s\n", p, what);
  abort();
}

void relay_finish(relay_t *r, const char *reason, int error_number) {
  (void)error_number;
  if (finished != NULL || !r->used) fail("a relay ended twice", 0);
  finished = reason;
  for (int d = 0; d < 2; d++) {
    free(r->dir[d].buffer);
    r->dir[d].buffer = NULL;
  }
  r->used = 0;
}

void relay_unwatch(relay_t *r, int side) {
  (void)r;
  if (unwatched[side]++) fail("a side left the epoll set twice", side);
}

static void peer_send(peer_t *peer, int p, size_t length) {
  if (peer->shut || peer->closed) return;
  unsigned char buffer[256 * 16];
  if (length > sizeof(buffer)) length = sizeof(buffer);
  for (size_t k = 0; k < length; k++) buffer[k] = pattern(p, peer->sent + k);
  ssize_t n = send(peer->fd, buffer, length, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n > 0) peer->sent += (uint64_t)n;
}

/* Peer p reads what the relay sent it (from the other peer, 1 - p); 1 when something came. */
static int peer_read(peer_t *peer, int p, size_t limit) {
  if (peer->closed) return 0;
  static unsigned char buffer[1 << 20];
  if (limit > sizeof(buffer)) limit = sizeof(buffer);
  ssize_t n = recv(peer->fd, buffer, limit, MSG_DONTWAIT);
  if (n == 0 && !peer->saw_end) {
    peer->saw_end = 1;
    return 1;
  }
  if (n <= 0) return 0;
  if (peer->saw_end) fail("bytes after the end", p);
  for (ssize_t k = 0; k < n; k++)
    if (buffer[k] != pattern(1 - p, peer->received + (uint64_t)k))
      fail("received bytes out of order, lost or duplicated", p);
  peer->received += (uint64_t)n;
  return 1;
}

static void check_directions(void) {
  for (int d = 0; d < 2 && relay.used; d++) {
    const direction_t *dir = &relay.dir[d];
    size_t size = dir->buffer != NULL ? capacity[d] : 0;
    if (dir->buffered > size || dir->start > size || dir->start + dir->buffered > size)
      fail("the buffer's bookkeeping left its bounds", d);
    if (dir->shut && (!dir->eof || dir->buffered != 0)) fail("an end passed on too early", d);
  }
}

/* The relay thread after an event on `side`: the events the socket has now, as epoll reports
   them (poll's bits are epoll's on Linux). A side out of the epoll set gets none. */
static void event(int side) {
  if (!relay.used || !relay.watched[side]) return;
  struct pollfd ready = {.fd = relay.fd[side], .events = POLLIN | POLLOUT | POLLRDHUP};
  if (poll(&ready, 1, 0) != 1) return;
  relay_service(&relay, side, (uint32_t)ready.revents, &(uint64_t){0});
  check_directions();
}

static void again(void) {
  if (relay.used && relay.again) relay_service(&relay, -1, 0, &(uint64_t){0});
  check_directions();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int a[2], b[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a) != 0 ||
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b) != 0)
    abort();
  /* Small buffers: partial sends and a full destination are the common case. */
  for (int i = 0; i < 2; i++) {
    int small = 4096;
    setsockopt(a[i], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    setsockopt(b[i], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
  }
  /* peer 0: the sandbox (a[0]), relay side 0 a[1]; peer 1: the upstream (b[0]), side 1 b[1]. */
  peer_t peers[2] = {{.fd = a[0]}, {.fd = b[0]}};
  memset(&relay, 0, sizeof(relay));
  finished = NULL;
  unwatched[0] = unwatched[1] = 0;
  capacity[0] = capacity[1] = BUFFER_BYTES;
  relay.used = 1;
  relay.fd[0] = a[1];
  relay.fd[1] = b[1];
  relay.watched[0] = relay.watched[1] = 1;
  relay.last_activity_ms = relay_now_ms();
  relay.connecting = data[0] & 1;
  size_t initial = (size_t)(data[0] >> 1) * 1024;
  if (initial > 0) { /* as begin_relay: the initial bytes in a buffer of at least BUFFER_BYTES */
    capacity[0] = initial > BUFFER_BYTES ? initial : BUFFER_BYTES;
    relay.dir[0].buffer = malloc(capacity[0]);
    if (relay.dir[0].buffer == NULL) abort();
    for (size_t k = 0; k < initial; k++) relay.dir[0].buffer[k] = (char)pattern(0, k);
    relay.dir[0].buffered = initial;
    peers[0].sent = initial;
  }
  for (size_t i = 1; i + 2 <= size; i += 2) {
    int op = data[i] % 12;
    size_t length = (size_t)data[i + 1] + 1;
    int p = op & 1;
    switch (op) {
      case 0:
      case 1:
        peer_send(&peers[p], p, length * 16);
        break;
      case 2:
      case 3:
        peer_read(&peers[p], p, length * 64);
        break;
      case 4:
      case 5:
        if (!peers[p].closed && !peers[p].shut) shutdown(peers[p].fd, SHUT_WR);
        peers[p].shut = 1;
        break;
      case 6:
      case 7:
        event(p);
        break;
      case 8:
      case 9:
        if (length == 1 && !peers[p].closed) { /* rarely: the peer goes away */
          close(peers[p].fd);
          peers[p].closed = 1;
        }
        break;
      default:
        again();
        break;
    }
  }
  /* Settle: events and reads until nothing moves. */
  for (int round = 0; round < 512; round++) {
    int progress = 0;
    double moved = relay.dir[0].moved + relay.dir[1].moved;
    int state = relay.used + relay.dir[0].eof + relay.dir[0].shut + relay.dir[1].eof +
                relay.dir[1].shut;
    event(0);
    event(1);
    while (relay.used && relay.again) again();
    if (relay.dir[0].moved + relay.dir[1].moved != moved ||
        relay.used + relay.dir[0].eof + relay.dir[0].shut + relay.dir[1].eof + relay.dir[1].shut !=
            state)
      progress = 1;
    for (int p = 0; p < 2; p++) progress |= peer_read(&peers[p], p, 1 << 20);
    if (!progress) break;
  }
  int ended_cleanly = finished != NULL && strcmp(finished, "end") == 0;
  int running = finished == NULL;
  for (int d = 0; d < 2 && (ended_cleanly || running); d++) {
    peer_t *from = &peers[d], *to = &peers[1 - d];
    /* A peer that closed can receive nothing, and what it sent may be cut off; a relay that is
       still connecting moves nothing yet. */
    if (to->closed || from->closed || (running && relay.connecting)) continue;
    if (to->received != from->sent)
      fail(running ? "bytes were not all delivered" : "ended with bytes not delivered", 1 - d);
    if (from->shut && !to->saw_end)
      fail(running ? "the end was not passed on" : "ended without passing the end on", 1 - d);
  }
  if (relay.used) relay_finish(&relay, "stopped", 0);
  for (int p = 0; p < 2; p++)
    if (!peers[p].closed) close(peers[p].fd);
  close(a[1]);
  close(b[1]);
  return 0;
}
