/*
 * One direction of a tunnel relay: bytes received from one socket into a fixed buffer and sent on
 * to the other as they are, and the half-close (end of input on the source becomes
 * shutdown(SHUT_WR) on the destination once everything before it was delivered). The bytes come
 * from a sandbox or an upstream server and are never looked at; what this code must get right is
 * the buffer's bookkeeping (start, buffered, BUFFER_BYTES) and the order of the end, and a
 * relay's turn (relay_service): when it may move bytes, when a side hung up, when it is over.
 * Apart from the addon (tunnel_relay.c) so native/fuzz/relay_pump_fuzzer.c links it without Node.
 */
#ifndef BERTH_RELAY_PUMP_H
#define BERTH_RELAY_PUMP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

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

/* A relay: two descriptors and a direction each way (tunnel_relay.c keeps them in its slots). */
typedef struct {
  int used;
  int retired; /* every generation of this slot was used: never used again */
  uint32_t generation;
  int again; /* the last turn stopped at PUMP_BUDGET: another turn without waiting for an event */
  uint32_t again_events[2]; /* per side, the events that turn had not handled yet */
  int fd[2];
  int hung_up[2];
  int watched[2]; /* the descriptor is in the epoll set */
  direction_t dir[2]; /* dir[0]: fd[0] -> fd[1]; dir[1]: fd[1] -> fd[0] */
  int64_t idle_ms;
  int64_t last_activity_ms;
  int owns_upstream;          /* fd[1] was opened here (connect()): closed when the relay ends */
  int connecting;             /* fd[1]'s connect has not completed yet */
  int64_t connect_deadline_ms;
  void *done; /* the completion callback (napi_threadsafe_function in the addon) */
  void *env;  /* the JavaScript environment that started it (a worker thread may end) */
} relay_t;

/*
 * One bounded turn of a relay after an event on `side` (-1: another turn after one that stopped
 * at PUMP_BUDGET): waits for the upstream's connect, pumps both directions, keeps the events it
 * did not handle for the next turn, marks sides that hung up, and ends the relay (relay_finish)
 * on an error or when nothing is left to move. The relay thread calls it with the lock held.
 */
void relay_service(relay_t *r, int side, uint32_t events, uint64_t *hold_bytes);

/* Provided by relay_service's user: the relay ends ("end", "error" with an errno); the relay's
   slot is released and r must not be used after. */
void relay_finish(relay_t *r, const char *reason, int error_number);
/* Provided by relay_service's user: this side leaves the epoll set (it hung up). */
void relay_unwatch(relay_t *r, int side);

static inline int64_t relay_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
