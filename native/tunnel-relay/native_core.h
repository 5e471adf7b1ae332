/*
 * What the addon's parts share apart from Node's headers (the slots' ids and generations, the
 * lock), so the parts that handle untrusted bytes (relay_pump.c, tls_leg_engine.c) build without
 * Node, into the fuzzers under native/fuzz/. native_common.h adds the N-API boundary.
 */
#ifndef BERTH_NATIVE_CORE_H
#define BERTH_NATIVE_CORE_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

/*
 * Ids handed to JavaScript name a slot and the slot's generation: id = generation * 2^21 + slot.
 * With at most 2^21 slots and 32-bit generations the largest id is 2^53 - 1, exact as a
 * JavaScript number. A slot's generation moves on each time a relay or leg leaves it; a slot
 * whose last generation was used is retired (never used again), so no id is ever given out twice
 * in the life of the process and a stale id can never name a newer relay or leg.
 */
#define SLOT_BITS 21
#define MAX_SLOTS (1u << SLOT_BITS)
#define LAST_GENERATION UINT32_MAX

static inline double id_of(uint32_t slot, uint32_t generation) {
  return (double)(((uint64_t)generation << SLOT_BITS) | (uint64_t)slot);
}

/*
 * The generation a slot takes after `count` more relays or legs have left it; 0 when the slot
 * is then retired (its last generation was used). `generation` is the one it has now.
 */
static inline int next_generation(uint32_t generation, uint64_t count, uint32_t *next) {
  if ((uint64_t)generation + count > (uint64_t)LAST_GENERATION) return 0;
  *next = generation + (uint32_t)count;
  return 1;
}

/*
 * The lock shared by the JavaScript thread(s) and one worker thread. The worker holds it only
 * for bounded batches of work and, between batches, lets a waiting JavaScript thread in first
 * (a plain mutex would let the worker take it again at once, many times over, while the
 * JavaScript thread is still waking up).
 */
typedef struct {
  pthread_mutex_t mutex;
  atomic_int javascript_waiting;
  /* The worker's holds, for lockStats() (diagnostics, tests, bench); under the mutex. */
  struct timespec hold_started;
  uint64_t hold_bytes; /* bytes moved (relay) or through OpenSSL (legs) in this hold */
  double holds, max_hold_bytes, max_hold_ms;
} shared_lock_t;

#define SHARED_LOCK_INITIALIZER {PTHREAD_MUTEX_INITIALIZER, 0, {0, 0}, 0, 0, 0, 0}

static inline void lock_from_javascript(shared_lock_t *lock) {
  atomic_fetch_add(&lock->javascript_waiting, 1);
  pthread_mutex_lock(&lock->mutex);
  atomic_fetch_sub(&lock->javascript_waiting, 1);
}

static inline void unlock_from_javascript(shared_lock_t *lock) {
  pthread_mutex_unlock(&lock->mutex);
}

static inline void lock_from_worker(shared_lock_t *lock) {
  while (atomic_load(&lock->javascript_waiting) > 0) sched_yield();
  pthread_mutex_lock(&lock->mutex);
  clock_gettime(CLOCK_MONOTONIC, &lock->hold_started);
  lock->hold_bytes = 0;
}

static inline void unlock_from_worker(shared_lock_t *lock) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  double ms = (double)(now.tv_sec - lock->hold_started.tv_sec) * 1e3 +
              (double)(now.tv_nsec - lock->hold_started.tv_nsec) / 1e6;
  lock->holds += 1;
  if (ms > lock->max_hold_ms) lock->max_hold_ms = ms;
  if ((double)lock->hold_bytes > lock->max_hold_bytes) lock->max_hold_bytes = (double)lock->hold_bytes;
  pthread_mutex_unlock(&lock->mutex);
}

#endif
