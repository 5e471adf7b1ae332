/*
 * Helpers shared by the addon's relays (tunnels and TLS legs): errors, the checks every value
 * from JavaScript passes at the N-API boundary, the ids handed to JavaScript, and the lock the
 * JavaScript thread shares with a worker thread.
 *
 * Threat model of this boundary: the caller is the proxy's own JavaScript, never the sandbox,
 * but a bug there (a NaN timeout, a negative length, a stale id) must not become undefined
 * behaviour in C: a cast of NaN or of a negative double to an unsigned type is undefined, and a
 * negative timeout once turned "still connecting" off. So every number is read as a double and
 * checked (finite, whole, in its range) before it is converted; anything else is refused with a
 * TypeError (not a number, not a function, not a buffer) or a RangeError (out of range).
 */
#ifndef BERTH_NATIVE_COMMON_H
#define BERTH_NATIVE_COMMON_H

#include <errno.h>
#include <node_api.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "native_core.h"

/* Throws a JavaScript Error with the message (and strerror of error_number when not 0). */
static inline napi_value throw_error(napi_env env, const char *message, int error_number) {
  char text[512];
  if (error_number != 0)
    snprintf(text, sizeof(text), "%s: %s", message, strerror(error_number));
  else
    snprintf(text, sizeof(text), "%s", message);
  napi_throw_error(env, NULL, text);
  return NULL;
}

static inline napi_value throw_type_error(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

static inline napi_value throw_range_error(napi_env env, const char *message) {
  napi_throw_range_error(env, NULL, message);
  return NULL;
}

/* The largest integer a JavaScript number holds exactly (Number.MAX_SAFE_INTEGER). */
#define MAX_SAFE_INTEGER 9007199254740991.0
/* The longest timeout, as Node's timers (TIMEOUT_MAX): about 24.8 days. */
#define MAX_TIMEOUT_MS 2147483647.0
#define MAX_DESCRIPTOR 2147483647.0

/*
 * Reads a whole number in [min, max] (both within ±2^53) from a JavaScript value. A non-number
 * throws a TypeError; NaN, an infinity, a fraction or a value out of range a RangeError that
 * names `what`. Returns 1, or 0 with the error thrown.
 */
static inline int get_integer(napi_env env, napi_value value, const char *what, double min,
                              double max, int64_t *out) {
  char message[200];
  napi_valuetype type = napi_undefined;
  double number = 0;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number ||
      napi_get_value_double(env, value, &number) != napi_ok) {
    snprintf(message, sizeof(message), "%s must be a number", what);
    throw_type_error(env, message);
    return 0;
  }
  /* NaN fails both comparisons; the range check comes before the cast, which is then exact. */
  if (!(number >= min && number <= max) || (double)(int64_t)number != number) {
    snprintf(message, sizeof(message), "%s must be a whole number from %.0f to %.0f", what, min,
             max);
    throw_range_error(env, message);
    return 0;
  }
  *out = (int64_t)number;
  return 1;
}

/* A JavaScript function, or a TypeError naming `what`. Returns 1, or 0 with the error thrown. */
static inline int check_function(napi_env env, napi_value value, const char *what) {
  napi_valuetype type = napi_undefined;
  if (napi_typeof(env, value, &type) == napi_ok && type == napi_function) return 1;
  char message[200];
  snprintf(message, sizeof(message), "%s must be a function", what);
  throw_type_error(env, message);
  return 0;
}

/* null or undefined */
static inline int is_nullish(napi_env env, napi_value value) {
  napi_valuetype type = napi_undefined;
  napi_typeof(env, value, &type);
  return type == napi_null || type == napi_undefined;
}

/*
 * Reads an id from JavaScript into its slot and generation: a TypeError or RangeError (thrown)
 * when it is not a whole number from 0 to 2^53 - 1. Returns 1, or 0 with the error thrown.
 */
static inline int get_id(napi_env env, napi_value value, const char *what, uint32_t *slot,
                         uint32_t *generation) {
  int64_t id = 0;
  if (!get_integer(env, value, what, 0, MAX_SAFE_INTEGER, &id)) return 0;
  *slot = (uint32_t)((uint64_t)id & (MAX_SLOTS - 1));
  *generation = (uint32_t)((uint64_t)id >> SLOT_BITS);
  return 1;
}

/*
 * lockStats() -> {holds, maxHoldBytes, maxHoldMs}: how often the worker took the lock, and the
 * most bytes it moved and the longest it held the lock in one hold, since the last call (which
 * starts the next period). Diagnostics, tests and the bench.
 */
static inline napi_value lock_stats(napi_env env, shared_lock_t *lock) {
  lock_from_javascript(lock);
  double values[3] = {lock->holds, lock->max_hold_bytes, lock->max_hold_ms};
  lock->holds = lock->max_hold_bytes = lock->max_hold_ms = 0;
  unlock_from_javascript(lock);
  static const char *names[3] = {"holds", "maxHoldBytes", "maxHoldMs"};
  napi_value out, value;
  napi_create_object(env, &out);
  for (int i = 0; i < 3; i++) {
    napi_create_double(env, values[i], &value);
    napi_set_named_property(env, out, names[i], value);
  }
  return out;
}

/* Starts a detached thread with a small stack; 0 or an errno. */
static inline int start_detached_thread(void *(*run)(void *)) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_t thread;
  int error_number = pthread_create(&thread, &attr, run, NULL);
  pthread_attr_destroy(&attr);
  return error_number;
}

#endif
