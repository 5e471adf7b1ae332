/*
 * Threat model. This addon relays the bytes of the egress proxy's passthrough tunnels between
 * a sandbox's socket and the vetted upstream's socket, off the JavaScript thread. The bytes
 * come from untrusted code (and from untrusted servers) and are never looked at here: they are
 * received into a fixed buffer and sent on as they are (recv(2)/send(2)), so no parser of
 * untrusted data runs in native code, and no length from the data is ever used. Every check
 * (policy, address, ClientHello and SNI) has already been made in JavaScript before a relay
 * starts. connect() opens the upstream connection to an IP address literal JavaScript vetted
 * (inet_pton: no name is resolved here) and sends the checked ClientHello first.
 *
 * Guarantees:
 * - A relay touches only the two descriptors it was given (or the one it opened), and only
 *   until it finishes or is stopped; stop() is synchronous and takes them out of the relay
 *   thread's epoll set under the lock, so once it returns the thread never uses them again
 *   (JavaScript closes its own only after that: a reused descriptor number can never receive
 *   tunnel bytes); a descriptor the relay opened is closed by the relay.
 * - An id names one relay for the life of the process: a slot's generation is 32 bits and a
 *   slot whose generations are used up is retired (native_common.h), so stop() with the id of
 *   a relay that ended can never stop another one, however often slots were reused.
 * - Every value from JavaScript is checked at the boundary (descriptors, port, the idle time:
 *   0 means none; the connect timeout: at least 1 ms; ids); anything else throws a TypeError or
 *   RangeError before anything starts (native_common.h).
 * - The lock is never held across unbounded work: a relay moves at most PUMP_BUDGET bytes per
 *   direction per turn, then the thread lets go of the lock and comes back to it after the
 *   other events, so a tunnel at full speed cannot keep the JavaScript thread waiting on stop()
 *   or active() (test/egress/native-addon-lock.test.ts measures that).
 * - Nothing moves before an upstream connect completed; one that does not complete within its
 *   time is finished ("error", ETIMEDOUT).
 * - Memory per relay is bounded: one buffer of BUFFER_BYTES per direction, allocated on first
 *   use; nothing else grows with traffic.
 * - A relay that moved no byte for its idle time is finished ("idle").
 * - Half-close is kept: end of input on one side becomes shutdown(SHUT_WR) on the other once
 *   everything before it was delivered (relay_pump.c, built without Node so the relay_pump
 *   fuzzer in native/fuzz/ links it; docs/internet.md, "The native code").
 * - The addon is never unloaded (binding.gyp links it with -z nodelete): its two threads are
 *   detached and outlive any one JavaScript environment. Node unloads an addon when the last
 *   worker thread that loaded it ends; the threads then woke in unmapped code and crashed the
 *   process (test/egress/native-addon-unload.test.ts). A worker that ends stops its own relays
 *   and legs first (stop_environment).
 * Not covered here: who may open a tunnel and to where (the proxy decides before).
 *
 * Why a copy and not splice(2): splice moved the pages of the server's socket buffers on to the
 * client, which kept them alive longer; on a busy 2-core machine the client and the server then
 * used more CPU than the copy costs (bench/egress-proxy.bench.js: median 72 % of direct with
 * splice, 84 % with this copy, alternated runs; docs/benchmarks.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "native_common.h"
#include "relay_pump.h"

void tls_legs_register(napi_env env, napi_value exports);

/* The most a connect() relay sends before relaying (a ClientHello and what followed it). */
#define MAX_INITIAL_BYTES (1024 * 1024)
#define MAX_EVENTS 64
#define EPOLL_WATCH (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)


typedef struct {
  const char *reason;
  int error_number;
  double moved[2];
} result_t;

static shared_lock_t lock = SHARED_LOCK_INITIALIZER;
static relay_t *relays = NULL;
static uint32_t relay_capacity = 0;
static int epoll_fd = -1;
static int thread_started = 0;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t event_key(uint32_t slot, uint32_t generation, int side) {
  return ((uint64_t)generation << 32) | ((uint64_t)slot << 1) | (uint64_t)side;
}

static void free_buffers(relay_t *r) {
  for (int d = 0; d < 2; d++) {
    free(r->dir[d].buffer);
    r->dir[d].buffer = NULL;
  }
}

/* Takes the relay out of the epoll set and frees its slot. Called with the lock held. */
static void release_slot(relay_t *r) {
  for (int side = 0; side < 2; side++) {
    if (r->watched[side]) epoll_ctl(epoll_fd, EPOLL_CTL_DEL, r->fd[side], NULL);
  }
  if (r->owns_upstream) close(r->fd[1]);
  r->owns_upstream = 0;
  free_buffers(r);
  r->used = 0;
  r->again = 0;
  r->again_events[0] = r->again_events[1] = 0;
  if (!next_generation(r->generation, 1, &r->generation)) r->retired = 1;
}

/* Finishes a relay from the relay thread: frees the slot and tells JavaScript. Lock held. */
static void finish(relay_t *r, const char *reason, int error_number) {
  result_t *result = malloc(sizeof(result_t));
  napi_threadsafe_function done = r->done;
  if (result != NULL) {
    result->reason = reason;
    result->error_number = error_number;
    result->moved[0] = r->dir[0].moved;
    result->moved[1] = r->dir[1].moved;
  }
  release_slot(r);
  if (result != NULL &&
      napi_call_threadsafe_function(done, result, napi_tsfn_nonblocking) != napi_ok)
    free(result);
  napi_release_threadsafe_function(done, napi_tsfn_release);
}

/* The relay_pump.c hooks: a relay ends (from its turn), a side leaves the epoll set. */
void relay_finish(relay_t *r, const char *reason, int error_number) {
  finish(r, reason, error_number);
}

void relay_unwatch(relay_t *r, int side) { epoll_ctl(epoll_fd, EPOLL_CTL_DEL, r->fd[side], NULL); }

static void service(relay_t *r, int side, uint32_t events) {
  relay_service(r, side, events, &lock.hold_bytes);
}

/* Relays whose last turn stopped at the budget get one more turn each, a lock hold each;
   returns whether any still wants another. */
static int service_again(void) {
  int again = 0;
  for (uint32_t slot = 0;; slot++) {
    lock_from_worker(&lock);
    while (slot < relay_capacity && !(relays[slot].used && relays[slot].again)) slot++;
    int found = slot < relay_capacity;
    if (found) {
      service(&relays[slot], -1, 0);
      again |= relays[slot].used && relays[slot].again;
    }
    unlock_from_worker(&lock);
    if (!found) return again;
  }
}

static void *relay_thread(void *unused) {
  (void)unused;
  pthread_setname_np(pthread_self(), "berth-relay");
  struct epoll_event events[MAX_EVENTS];
  int64_t last_sweep = now_ms();
  int again = 0;
  for (;;) {
    /* The lock is taken per event (each turn is bounded), so JavaScript gets in between. */
    int n = epoll_wait(epoll_fd, events, MAX_EVENTS, again ? 0 : 1000);
    for (int i = 0; i < n; i++) {
      uint64_t key = events[i].data.u64;
      uint32_t generation = (uint32_t)(key >> 32);
      uint32_t slot = (uint32_t)(key & 0xffffffffu) >> 1;
      int side = (int)(key & 1);
      lock_from_worker(&lock);
      relay_t *r = slot < relay_capacity ? &relays[slot] : NULL;
      /* Stopped or finished meanwhile: the generation moved on. */
      if (r != NULL && r->used && r->generation == generation) service(r, side, events[i].events);
      unlock_from_worker(&lock);
    }
    again = service_again();
    int64_t now = now_ms();
    if (now - last_sweep >= 1000) {
      last_sweep = now;
      lock_from_worker(&lock);
      for (uint32_t slot = 0; slot < relay_capacity; slot++) {
        relay_t *r = &relays[slot];
        if (r->used && r->connecting && now >= r->connect_deadline_ms)
          finish(r, "error", ETIMEDOUT);
        else if (r->used && r->idle_ms > 0 && now - r->last_activity_ms >= r->idle_ms)
          finish(r, "idle", 0);
      }
      unlock_from_worker(&lock);
    }
  }
  return NULL;
}

static void call_done(napi_env env, napi_value callback, void *context, void *data) {
  (void)context;
  result_t *result = data;
  if (env != NULL && callback != NULL && result != NULL) {
    napi_value argv[4], undefined;
    napi_create_string_utf8(env, result->reason, NAPI_AUTO_LENGTH, &argv[0]);
    napi_create_int32(env, result->error_number, &argv[1]);
    napi_create_double(env, result->moved[0], &argv[2]);
    napi_create_double(env, result->moved[1], &argv[3]);
    napi_get_undefined(env, &undefined);
    napi_call_function(env, undefined, callback, 4, argv, NULL);
  }
  free(result);
}

static int ensure_thread(void) {
  if (thread_started) return 0;
  epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) return errno;
  int error_number = start_detached_thread(relay_thread);
  if (error_number != 0) {
    close(epoll_fd);
    epoll_fd = -1;
    return error_number;
  }
  thread_started = 1;
  return 0;
}

static int free_slot(uint32_t *slot) {
  for (uint32_t i = 0; i < relay_capacity; i++) {
    if (!relays[i].used && !relays[i].retired) {
      *slot = i;
      return 0;
    }
  }
  if (relay_capacity >= MAX_SLOTS) return EMFILE; /* ids have SLOT_BITS for the slot */
  uint32_t capacity = relay_capacity == 0 ? 64 : relay_capacity * 2;
  relay_t *grown = realloc(relays, capacity * sizeof(relay_t));
  if (grown == NULL) return ENOMEM;
  memset(grown + relay_capacity, 0, (capacity - relay_capacity) * sizeof(relay_t));
  relays = grown;
  *slot = relay_capacity;
  relay_capacity = capacity;
  return 0;
}

static int create_done(napi_env env, napi_value callback, napi_threadsafe_function *done) {
  napi_value name;
  napi_create_string_utf8(env, "berth tunnel relay", NAPI_AUTO_LENGTH, &name);
  return napi_create_threadsafe_function(env, callback, NULL, name, 0, 1, NULL, NULL, NULL,
                                         call_done, done) == napi_ok
             ? 0
             : -1;
}

/*
 * Takes a slot for two descriptors and starts watching them. owns_upstream: fd[1] is this
 * relay's own (closed when it ends); connect_timeout_ms >= 0: fd[1] is still connecting.
 * `initial` is sent on fd[1] first; already_sent counts what was sent of it before. On failure the done
 * callback is released and an owned descriptor closed; *error_number says why.
 */
static double begin_relay(int fds[2], int owns_upstream, int64_t idle_ms,
                            int64_t connect_timeout_ms, const void *initial, size_t initial_length,
                            double already_sent, napi_threadsafe_function done, napi_env env,
                            int *error_number) {
  lock_from_javascript(&lock);
  *error_number = ensure_thread();
  uint32_t slot = 0;
  if (*error_number == 0) *error_number = free_slot(&slot);
  relay_t *r = *error_number == 0 ? &relays[slot] : NULL;
  double id = 0;
  if (r != NULL) {
    uint32_t generation = r->generation;
    memset(r, 0, sizeof(*r));
    r->generation = generation;
    r->fd[0] = fds[0];
    r->fd[1] = fds[1];
    r->owns_upstream = owns_upstream;
    r->connecting = connect_timeout_ms >= 0;
    r->connect_deadline_ms = now_ms() + (connect_timeout_ms > 0 ? connect_timeout_ms : 0);
    r->idle_ms = idle_ms;
    r->last_activity_ms = now_ms();
    r->done = done;
    r->env = env;
    r->dir[0].moved = already_sent;
    if (initial_length > 0) {
      size_t size = initial_length > BUFFER_BYTES ? initial_length : BUFFER_BYTES;
      if ((r->dir[0].buffer = malloc(size)) == NULL) {
        *error_number = ENOMEM;
      } else {
        memcpy(r->dir[0].buffer, initial, initial_length);
        r->dir[0].buffered = initial_length;
      }
    }
    for (int side = 0; *error_number == 0 && side < 2; side++) {
      /* Edge-triggered, for everything, once: each event pumps both directions until the
         kernel says EAGAIN (or the buffer is still full, in which case the destination's next
         EPOLLOUT edge comes back), so no edge is missed and no epoll_ctl is needed per event. */
      struct epoll_event ev = {.events = EPOLL_WATCH,
                               .data.u64 = event_key(slot, r->generation, side)};
      if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, r->fd[side], &ev) != 0)
        *error_number = errno;
      else
        r->watched[side] = 1;
    }
    if (*error_number == 0) {
      r->used = 1;
      id = id_of(slot, r->generation);
    } else {
      release_slot(r); /* closes an owned descriptor */
      owns_upstream = 0;
    }
  }
  unlock_from_javascript(&lock);
  if (*error_number != 0) {
    if (owns_upstream) close(fds[1]);
    napi_release_threadsafe_function(done, napi_tsfn_abort);
  }
  return id;
}

/* start(fdA, fdB, idleMs, done(reason, errno, movedAtoB, movedBtoA)) -> id */
static napi_value start(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4)
    return throw_type_error(env, "start(fdA, fdB, idleMs, done) needs four arguments");
  int64_t fd_a = 0, fd_b = 0, idle_ms = 0;
  if (!get_integer(env, argv[0], "start: fdA", 0, MAX_DESCRIPTOR, &fd_a) ||
      !get_integer(env, argv[1], "start: fdB", 0, MAX_DESCRIPTOR, &fd_b) ||
      !get_integer(env, argv[2], "start: idleMs (0: none)", 0, MAX_TIMEOUT_MS, &idle_ms) ||
      !check_function(env, argv[3], "start: done"))
    return NULL;
  if (fd_a == fd_b) return throw_range_error(env, "start: two different descriptors are needed");
  int fds[2] = {(int)fd_a, (int)fd_b};
  napi_threadsafe_function done;
  if (create_done(env, argv[3], &done) != 0)
    return throw_error(env, "start: could not create the completion callback", 0);
  int error_number = 0;
  double id = begin_relay(fds, 0, idle_ms, -1, NULL, 0, 0, done, env, &error_number);
  if (error_number != 0) return throw_error(env, "start: could not start the relay", error_number);
  napi_value out;
  napi_create_double(env, id, &out);
  return out;
}

/*
 * connect(clientFd, addressLiteral, port, initialBytes, idleMs, connectTimeoutMs, done) -> id.
 * Opens the upstream connection here (non-blocking, on the relay thread's time), sends
 * initialBytes on it first (the checked ClientHello), then relays. The upstream descriptor is
 * the relay's own and is closed when the relay ends or is stopped.
 */
static napi_value connect_relay(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t client_fd = -1, port = 0, idle_ms = 0, connect_timeout_ms = 0;
  char address[64] = "";
  size_t address_length = 0;
  void *initial = NULL;
  size_t initial_length = 0;
  bool is_buffer = false;
  if (argc < 7)
    return throw_type_error(env, "connect(clientFd, address, port, initialBytes, idleMs, "
                                 "connectTimeoutMs, done) needs seven arguments");
  if (!get_integer(env, argv[0], "connect: clientFd", 0, MAX_DESCRIPTOR, &client_fd))
    return NULL;
  napi_valuetype address_type = napi_undefined;
  napi_typeof(env, argv[1], &address_type);
  if (address_type != napi_string ||
      napi_get_value_string_utf8(env, argv[1], NULL, 0, &address_length) != napi_ok)
    return throw_type_error(env, "connect: the address must be a string");
  if (address_length >= sizeof(address))
    return throw_range_error(env, "connect: the address is too long for an IP address literal");
  napi_get_value_string_utf8(env, argv[1], address, sizeof(address), &address_length);
  if (!get_integer(env, argv[2], "connect: port", 1, 65535, &port)) return NULL;
  if (napi_is_buffer(env, argv[3], &is_buffer) != napi_ok || !is_buffer)
    return throw_type_error(env, "connect: initialBytes must be a Buffer");
  if (!get_integer(env, argv[4], "connect: idleMs (0: none)", 0, MAX_TIMEOUT_MS, &idle_ms) ||
      !get_integer(env, argv[5], "connect: connectTimeoutMs", 1, MAX_TIMEOUT_MS,
                   &connect_timeout_ms) ||
      !check_function(env, argv[6], "connect: done"))
    return NULL;
  napi_get_buffer_info(env, argv[3], &initial, &initial_length);
  if (initial_length > MAX_INITIAL_BYTES) return throw_error(env, "connect: too many initial bytes", 0);
  struct sockaddr_storage target;
  socklen_t target_length = 0;
  memset(&target, 0, sizeof(target));
  struct sockaddr_in *v4 = (struct sockaddr_in *)&target;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&target;
  if (inet_pton(AF_INET, address, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    target_length = sizeof(*v4);
  } else if (inet_pton(AF_INET6, address, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    target_length = sizeof(*v6);
  } else {
    return throw_error(env, "connect: the address is not an IP address literal", 0);
  }
  int upstream = socket(target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (upstream < 0) return throw_error(env, "connect: no socket", errno);
  int one = 1;
  setsockopt(upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  int connecting = 0;
  if (connect(upstream, (struct sockaddr *)&target, target_length) != 0) {
    if (errno != EINPROGRESS) {
      int error_number = errno;
      close(upstream);
      return throw_error(env, "connect: the upstream refused at once", error_number);
    }
    connecting = 1;
  }
  /* A nearby upstream is often connected already (the handshake ran inside connect()): the
     initial bytes then leave now, without waiting for the relay thread to wake for them. A
     failed connect is left to the relay thread, which reports its error. */
  struct pollfd ready = {.fd = upstream, .events = POLLOUT};
  ssize_t sent = -1;
  if (poll(&ready, 1, 0) == 1 && ready.revents == POLLOUT)
    sent = initial_length > 0 ? send(upstream, initial, initial_length, MSG_DONTWAIT | MSG_NOSIGNAL)
                              : 0;
  if (sent >= 0) connecting = 0;
  /* An empty Buffer's data is NULL: NULL + 0 is undefined behaviour in C (UBSan's first finding
     under scripts/test-native-asan.sh), so the pointer moves only when bytes were sent. */
  if (sent > 0) {
    initial = (char *)initial + sent;
    initial_length -= (size_t)sent;
  }
  napi_threadsafe_function done;
  if (create_done(env, argv[6], &done) != 0) {
    close(upstream);
    return throw_error(env, "connect: could not create the completion callback", 0);
  }
  int fds[2] = {(int)client_fd, upstream};
  int error_number = 0;
  double id = begin_relay(fds, 1, idle_ms, connecting ? connect_timeout_ms : -1, initial,
                            initial_length, sent > 0 ? (double)sent : 0, done, env,
                            &error_number);
  if (error_number != 0) return throw_error(env, "connect: could not start the relay", error_number);
  napi_value out;
  napi_create_double(env, id, &out);
  return out;
}

/* Stops a relay from the JavaScript thread: no completion callback follows. Lock held. */
static void cancel(relay_t *r) {
  napi_threadsafe_function done = r->done;
  release_slot(r);
  napi_release_threadsafe_function(done, napi_tsfn_abort);
}

/* stop(id) -> whether the relay was still running. */
static napi_value stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t slot = 0, generation = 0;
  if (argc < 1) return throw_type_error(env, "stop(id) needs the relay's id");
  if (!get_id(env, argv[0], "stop: id", &slot, &generation)) return NULL;
  lock_from_javascript(&lock);
  int running = slot < relay_capacity && relays[slot].used && relays[slot].generation == generation;
  if (running) cancel(&relays[slot]);
  unlock_from_javascript(&lock);
  napi_get_boolean(env, running, &out);
  return out;
}

/* How many relays are running (for tests and diagnostics). */
static napi_value active(napi_env env, napi_callback_info info) {
  (void)info;
  uint32_t count = 0;
  lock_from_javascript(&lock);
  for (uint32_t i = 0; i < relay_capacity; i++) count += relays[i].used ? 1 : 0;
  unlock_from_javascript(&lock);
  napi_value out;
  napi_create_uint32(env, count, &out);
  return out;
}

/* An environment that ends (a worker thread) stops its relays before its descriptors close. */
static void stop_environment(void *arg) {
  napi_env env = arg;
  lock_from_javascript(&lock);
  for (uint32_t i = 0; i < relay_capacity; i++) {
    relay_t *r = &relays[i];
    if (r->used && r->env == env) cancel(r);
  }
  unlock_from_javascript(&lock);
}

/*
 * TEST ONLY (test/egress/tunnel-relay.test.ts): testOnlyAdvanceGeneration(staleId, count)
 * moves the generation of the free slot `staleId` named on as if `count` more relays had used
 * it and ended (a million real reuses would take minutes), and returns the id the next relay in
 * that slot will get, or null when the slot is then retired. Changes nothing else; refuses a
 * slot in use.
 */
static napi_value test_only_advance_generation(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t slot = 0, generation = 0;
  int64_t count = 0;
  if (argc < 2) return throw_type_error(env, "testOnlyAdvanceGeneration(staleId, count)");
  if (!get_id(env, argv[0], "testOnlyAdvanceGeneration: staleId", &slot, &generation) ||
      !get_integer(env, argv[1], "testOnlyAdvanceGeneration: count", 0, MAX_SAFE_INTEGER, &count))
    return NULL;
  lock_from_javascript(&lock);
  relay_t *r = slot < relay_capacity ? &relays[slot] : NULL;
  int usable = r != NULL && !r->used && !r->retired;
  if (usable && !next_generation(r->generation, (uint64_t)count, &r->generation)) r->retired = 1;
  int retired = usable && r->retired;
  double next = usable && !retired ? id_of(slot, r->generation) : 0;
  unlock_from_javascript(&lock);
  if (!usable) return throw_error(env, "testOnlyAdvanceGeneration: that slot is in use or retired", 0);
  if (retired)
    napi_get_null(env, &out);
  else
    napi_create_double(env, next, &out);
  return out;
}

static napi_value relay_lock_stats(napi_env env, napi_callback_info info) {
  (void)info;
  return lock_stats(env, &lock);
}

NAPI_MODULE_INIT() {
  napi_add_env_cleanup_hook(env, stop_environment, env);
  napi_property_descriptor properties[] = {
      {"start", NULL, start, NULL, NULL, NULL, napi_default, NULL},
      {"connect", NULL, connect_relay, NULL, NULL, NULL, napi_default, NULL},
      {"stop", NULL, stop, NULL, NULL, NULL, napi_default, NULL},
      {"active", NULL, active, NULL, NULL, NULL, napi_default, NULL},
      {"testOnlyAdvanceGeneration", NULL, test_only_advance_generation, NULL, NULL, NULL,
       napi_default, NULL},
      {"lockStats", NULL, relay_lock_stats, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(properties) / sizeof(properties[0]), properties);
  tls_legs_register(env, exports);
  return exports;
}
