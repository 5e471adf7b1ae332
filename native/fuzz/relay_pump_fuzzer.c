/*
 * libFuzzer target: the tunnel relay's buffering and half-close (relay_pump.c) between a sandbox
 * and an upstream, both hostile, over real sockets with small buffers (so sends are partial and
 * the buffer's start moves). The input is records of [op, length]: either peer sends `length`
 * bytes (or what its socket takes), reads up to `length` * 64 bytes slowly, ends its writing,
 * or closes; either direction is pumped. The relay's destination counts as hung up once its peer
 * closed (as service() marks it on EPOLLHUP).
 *
 * Checked besides the sanitizers: each peer receives exactly the start of what the other sent,
 * in order; the buffer's bookkeeping stays within BUFFER_BYTES; an end is passed on only after
 * everything before it was delivered, and is passed on once the relay has settled.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../tunnel-relay/relay_pump.h"

/* The n-th byte peer p sends: a pattern that catches reordering, loss and duplication. */
static unsigned char pattern(int p, uint64_t n) {
  return (unsigned char)((n * 131) ^ (n >> 8) ^ (n >> 17) ^ (uint64_t)(p * 0x5b));
}

typedef struct {
  int fd;       /* the peer's end */
  int relay_fd; /* the relay's end */
  uint64_t sent, received;
  int shut, closed, saw_end;
} peer_t;

static void fail(const char *what, int p) {
  fprintf(stderr, "relay_pump_fuzzer: peer %d: %s\n", p, what);
  abort();
}

static void peer_send(peer_t *peer, int p, size_t length) {
  if (peer->shut || peer->closed) return;
  unsigned char buffer[256 * 64];
  if (length > sizeof(buffer)) length = sizeof(buffer);
  for (size_t k = 0; k < length; k++) buffer[k] = pattern(p, peer->sent + k);
  ssize_t n = send(peer->fd, buffer, length, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n > 0) peer->sent += (uint64_t)n;
}

/* Peer p reads what the relay sent it (from the other peer, 1 - p). */
static void peer_read(peer_t *peer, int p, size_t limit) {
  if (peer->closed) return;
  unsigned char buffer[256 * 64];
  if (limit > sizeof(buffer)) limit = sizeof(buffer);
  ssize_t n = recv(peer->fd, buffer, limit, MSG_DONTWAIT);
  if (n == 0) {
    peer->saw_end = 1;
  } else if (n > 0) {
    if (peer->saw_end) fail("bytes after the end", p);
    for (ssize_t k = 0; k < n; k++)
      if (buffer[k] != pattern(1 - p, peer->received + (uint64_t)k))
        fail("received bytes out of order, lost or duplicated", p);
    peer->received += (uint64_t)n;
  }
}

static void check_direction(const direction_t *dir, int d) {
  if (dir->buffered > BUFFER_BYTES || dir->start > BUFFER_BYTES ||
      dir->start + dir->buffered > BUFFER_BYTES)
    fail("the buffer's bookkeeping left its bounds", d);
  if (dir->shut && (!dir->eof || dir->buffered != 0)) fail("an end passed on too early", d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
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
  /* peer 0: the sandbox (a[0]), relay end a[1]; peer 1: the upstream (b[0]), relay end b[1]. */
  peer_t peers[2] = {{.fd = a[0], .relay_fd = a[1]}, {.fd = b[0], .relay_fd = b[1]}};
  direction_t dirs[2];
  memset(dirs, 0, sizeof(dirs));
  int failed[2] = {0, 0};
  uint64_t hold_bytes = 0;
  /* dirs[d] moves from peer d's relay end to the other's. */
  for (size_t i = 0; i + 2 <= size; i += 2) {
    int op = data[i] % 10;
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
      case 7: {
        int d = p;
        if (failed[d]) break;
        int more = 0;
        int result = pump_direction(&dirs[d], peers[d].relay_fd, peers[1 - d].relay_fd,
                                    peers[1 - d].closed, &hold_bytes, &more);
        if (result < 0) failed[d] = 1; /* the relay finishes with an error */
        check_direction(&dirs[d], d);
        break;
      }
      case 8:
      case 9:
        if (length == 1 && !peers[p].closed) { /* rarely: the peer goes away */
          close(peers[p].fd);
          peers[p].closed = 1;
        }
        break;
    }
  }
  /* Settle: pump and read until nothing moves; then every byte and end of a peer that is still
     there must have arrived. */
  for (int round = 0; round < 256; round++) {
    int progress = 0;
    for (int d = 0; d < 2; d++) {
      if (failed[d]) continue;
      int more = 0;
      int result = pump_direction(&dirs[d], peers[d].relay_fd, peers[1 - d].relay_fd,
                                  peers[1 - d].closed, &hold_bytes, &more);
      if (result < 0)
        failed[d] = 1;
      else
        progress |= result;
      check_direction(&dirs[d], d);
    }
    for (int p = 0; p < 2; p++) {
      uint64_t before = peers[p].received;
      int ended = peers[p].saw_end;
      peer_read(&peers[p], p, 1 << 20);
      if (peers[p].received != before || peers[p].saw_end != ended) progress = 1;
    }
    if (!progress) break;
  }
  for (int d = 0; d < 2; d++) {
    peer_t *from = &peers[d], *to = &peers[1 - d];
    if (failed[d] || from->closed || to->closed) continue;
    if (to->received != from->sent) fail("bytes were not all delivered", 1 - d);
    if (from->shut && !to->saw_end) fail("the end was not passed on", 1 - d);
  }
  for (int d = 0; d < 2; d++) free(dirs[d].buffer);
  for (int p = 0; p < 2; p++) {
    if (!peers[p].closed) close(peers[p].fd);
    close(peers[p].relay_fd);
  }
  return 0;
}
