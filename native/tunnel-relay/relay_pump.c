/*
 * Threat model: the bytes moved here come from a sandbox (hostile) or an upstream server
 * (untrusted) and are never read; lengths come only from recv(2)/send(2), never from the data.
 * The buffer holds at most BUFFER_BYTES received bytes (a recv goes only into an empty buffer),
 * and nothing else grows with traffic. A relay ends only once everything was delivered or a side
 * can take nothing more. Fuzzed by native/fuzz/relay_pump_fuzzer.c (any sequence of sends, ends,
 * closes and slow readers on both sides, checked to arrive whole and in order).
 */
#define _GNU_SOURCE
#include "relay_pump.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
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

static int pump(relay_t *r, int d, int *more, uint64_t *hold_bytes) {
  return pump_direction(&r->dir[d], r->fd[d], r->fd[1 - d], r->hung_up[1 - d], hold_bytes, more);
}

/* A side that hung up is taken out of the epoll set (its events would only repeat). */
static void forget_hung_up(relay_t *r) {
  for (int side = 0; side < 2; side++) {
    if (r->hung_up[side] && r->watched[side]) {
      relay_unwatch(r, side);
      r->watched[side] = 0;
    }
  }
}

/* Runs both directions of a relay after an event on `side` (-1: another turn after one that
   stopped at the budget), one bounded turn; finishes it when there is nothing left. Lock held. */
void relay_service(relay_t *r, int side, uint32_t events, uint64_t *hold_bytes) {
  /* The events a turn that stopped at the budget had not handled yet, with this one's. */
  uint32_t pending[2] = {r->again_events[0], r->again_events[1]};
  r->again = 0;
  r->again_events[0] = r->again_events[1] = 0;
  if (side >= 0) pending[side] |= events;
  if (r->connecting) {
    /* Only events start a relay (a turn after the budget comes only once it moved bytes). */
    if (side < 0) return;
    /* Nothing moves before the upstream's connect completed (or failed). */
    if (side == 0 && !(events & EPOLLERR)) return;
    int error_number = 0;
    socklen_t len = sizeof(error_number);
    getsockopt(r->fd[side], SOL_SOCKET, SO_ERROR, &error_number, &len);
    if (error_number != 0 || (side == 0 && (events & EPOLLERR))) {
      relay_finish(r, "error", error_number != 0 ? error_number : ECONNRESET);
      return;
    }
    if (!(events & EPOLLOUT)) return;
    r->connecting = 0;
  }
  int any = 0, more = 0;
  for (int d = 0; d < 2; d++) {
    int result = pump(r, d, &more, hold_bytes);
    if (result < 0) {
      relay_finish(r, "error", -result);
      return;
    }
    any |= result;
  }
  if (any) r->last_activity_ms = relay_now_ms();
  if (more) {
    /* Edge-triggered: no new event comes for what is still waiting; the thread comes back. */
    r->again = 1;
    r->again_events[0] = pending[0];
    r->again_events[1] = pending[1];
    return;
  }
  for (int s = 0; s < 2 && !any; s++) {
    if (!(pending[s] & (EPOLLHUP | EPOLLERR))) continue;
    /* That side is fully closed (or failed): nothing can be written to it any more. */
    if (pending[s] & EPOLLERR) {
      int error_number = 0;
      socklen_t len = sizeof(error_number);
      getsockopt(r->fd[s], SOL_SOCKET, SO_ERROR, &error_number, &len);
      relay_finish(r, "error", error_number);
      return;
    }
    r->hung_up[s] = 1;
  }
  if (direction_done(&r->dir[0]) && direction_done(&r->dir[1])) {
    relay_finish(r, "end", 0);
    return;
  }
  for (int s = 0; s < 2; s++) {
    /* A side that hung up can take nothing more; once what it sent was delivered, done. */
    if (r->hung_up[s] && direction_done(&r->dir[s])) {
      relay_finish(r, "end", 0);
      return;
    }
  }
  forget_hung_up(r);
}

