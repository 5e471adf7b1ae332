/*
 * One direction of a tunnel relay: bytes received from one socket into a fixed buffer and sent on
 * to the other as they are, and the half-close (end of input on the source becomes
 * shutdown(SHUT_WR) on the destination once everything before it was delivered). The bytes come
 * from a sandbox or an upstream server and are never looked at; what this code must get right is
 * the buffer's bookkeeping (start, buffered, BUFFER_BYTES) and the order of the end. Apart from
 * the addon (tunnel_relay.c) so the fuzzer native/fuzz/relay_pump_fuzzer.c links it without Node.
 */
#ifndef BERTH_RELAY_PUMP_H
#define BERTH_RELAY_PUMP_H

#include <stddef.h>
#include <stdint.h>

#define BUFFER_BYTES (64 * 1024)
/* The most one direction of a relay moves per turn under the lock (then the next turn). */
#define PUMP_BUDGET (16 * BUFFER_BYTES)

typedef struct {
  char *buffer;    /* at least BUFFER_BYTES (more when it held a connect()'s initial bytes), allocated on first use */
  size_t start;    /* first byte not yet sent */
  size_t buffered; /* bytes received and not yet sent */
  int eof;         /* the source said end of input */
  int shut;        /* the destination was shut down for writing */
  double moved;
} direction_t;

/*
 * Moves what it can from src to dst, up to PUMP_BUDGET bytes (*more is then set). A destination
 * that hung up (dst_hung_up) takes nothing more, so nothing more is received for it. Adds the
 * bytes sent to *hold_bytes. Returns 1 on progress, 0 on none, -errno on failure.
 */
int pump_direction(direction_t *dir, int src, int dst, int dst_hung_up, uint64_t *hold_bytes,
                   int *more);

/* Everything of this direction was delivered and the destination shut down for writing. */
static inline int direction_done(const direction_t *dir) {
  return dir->eof && dir->buffered == 0 && dir->shut;
}

#endif
