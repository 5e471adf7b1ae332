/*
 * Threat model: the bytes moved here come from a sandbox (hostile) or an upstream server
 * (untrusted) and are never read; lengths come only from recv(2)/send(2), never from the data.
 * The buffer holds at most BUFFER_BYTES received bytes (a recv goes only into an empty buffer),
 * and nothing else grows with traffic. Fuzzed by native/fuzz/relay_pump_fuzzer.c (any sequence
 * of sends, ends and slow readers on both sides, checked to arrive whole and in order).
 */
#define _GNU_SOURCE
#include "relay_pump.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/types.h>

int pump_direction(direction_t *dir, int src, int dst, int dst_hung_up, uint64_t *hold_bytes,
                   int *more) {
  int progress = 0;
  for (size_t sent = 0;;) {
    if (sent >= PUMP_BUDGET) {
      *more = 1;
      break;
    }
    int moved = 0;
    /* Receive only into an empty buffer: what was received is sent before more is taken. */
    if (!dir->eof && dir->buffered == 0 && !dst_hung_up) {
      if (dir->buffer == NULL && (dir->buffer = malloc(BUFFER_BYTES)) == NULL) return -ENOMEM;
      ssize_t n = recv(src, dir->buffer, BUFFER_BYTES, MSG_DONTWAIT);
      if (n > 0) {
        dir->start = 0;
        dir->buffered = (size_t)n;
        moved = 1;
      } else if (n == 0) {
        dir->eof = 1;
        moved = 1;
      } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return -errno;
      }
    }
    if (dir->buffered > 0) {
      ssize_t n = send(dst, dir->buffer + dir->start, dir->buffered, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        dir->start += (size_t)n;
        dir->buffered -= (size_t)n;
        dir->moved += (double)n;
        sent += (size_t)n;
        *hold_bytes += (uint64_t)n;
        moved = 1;
      } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return -errno;
      }
    }
    if (dir->eof && dir->buffered == 0 && !dir->shut) {
      shutdown(dst, SHUT_WR);
      dir->shut = 1;
      moved = 1;
    }
    if (!moved) break;
    progress = 1;
  }
  return progress;
}
