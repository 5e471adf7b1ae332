/*
 * Threat model. A TLS leg is one end of an intercepted tunnel: the sandbox's connection (the
 * proxy is the TLS server, with a leaf certificate of the environment's CA) or the connection to
 * the vetted upstream (the proxy is the TLS client and verifies the server's certificate against
 * the allowed name). The bytes on both come from untrusted parties. Here they are only given to
 * OpenSSL (the same library, in the same Node binary, that Node's own TLS uses): the handshake,
 * the records and the certificates are parsed by OpenSSL, never by this file. The plaintext is
 * handed to JavaScript unread, where Node's HTTP parser and the proxy's checks see every byte:
 * nothing is forwarded from one leg to another here, so no request can pass unchecked.
 *
 * Guarantees:
 * - An upstream leg completes its handshake only with a certificate that chains to the given
 *   trust store and names the given host (OpenSSL's host check, no partial wildcards); the name
 *   is sent as SNI. Both legs offer or accept ALPN http/1.1 only; TLS 1.2 is the minimum and
 *   renegotiation is refused.
 * - No plaintext is written before the handshake completed, none is delivered before JavaScript
 *   was told the handshake's outcome (SECURE: ALPN, SNI).
 * - A leg touches only its descriptor, and only until it fails or is stopped; stop() is
 *   synchronous under the lock and takes the descriptor out of the epoll set, so once it returns
 *   a reused descriptor number never gets this leg's bytes (JavaScript closes it after).
 * - A splice only ever takes the bytes of the leg it was given: ids and the keys a splice keeps
 *   name one leg for the life of the process (32-bit generations, a slot whose generations are
 *   used up is retired: native_common.h), so a stale key never matches a newer connection.
 *   When one leg of a splice ends (stopped from JavaScript or failed here), the other is woken
 *   and fails at once: a target whose source is gone ("ended before the body"), a source whose
 *   target is gone (its next bytes belong to a body nobody will receive; reading them as a new
 *   message would desynchronise it). Neither waits for an event that may never come.
 * - Every value from JavaScript is checked at the boundary (descriptor, ids, the splice length,
 *   the contexts by type tag, buffers, strings, callbacks); anything else throws a TypeError or
 *   RangeError before anything changes (native_common.h).
 * - The lock is never held across unbounded work: the leg thread takes it per event and does at
 *   most ROUNDS_PER_HOLD rounds of a leg (each bounded by the buffer limits below) per hold; a
 *   leg with more to do is marked and served again after the other events, and a JavaScript
 *   call waiting for the lock goes first (test/egress/native-addon-lock.test.ts).
 * - Memory per leg is bounded: ciphertext received and not decrypted (RBIO_LIMIT), plaintext
 *   decrypted and not delivered (PLAIN_BYTES), ciphertext not yet sent (WBIO_LIMIT + one send
 *   buffer). What JavaScript queues for writing is bounded by its stream's back-pressure (it
 *   waits for DRAIN once OUT_HIGH bytes are queued).
 * Not covered here: what may pass (JavaScript decides per request) and the upstream's address
 * (vetted before the descriptor is connected).
 *
 * Where: what a leg does with its peer's bytes (OpenSSL, buffers, heads, splices, the write
 * queue) is tls_leg_engine.c, built without Node so native/fuzz/ links it (tls_handshake and
 * tls_session fuzzers); this file is the leg thread, its epoll set and the N-API functions.
 * Sanitizers and fuzzers: docs/internet.md, "The native code".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <node_api.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "native_common.h"
#include "tls_leg_engine.h"

#define MAX_EVENTS 64
#define WAKE_KEY UINT64_MAX

static int thread_started = 0;

/* The engine's events go to JavaScript through the leg's thread-safe function. */
void leg_sink_send(void *sink, event_t *event) {
  if (napi_call_threadsafe_function(sink, event, napi_tsfn_nonblocking) != napi_ok) {
    pool_put(event->data);
    free(event);
  }
}

void leg_sink_release(void *sink, int abort) {
  napi_release_threadsafe_function(sink, abort ? napi_tsfn_abort : napi_tsfn_release);
}

static void *leg_thread(void *unused) {
  (void)unused;
  pthread_setname_np(pthread_self(), "berth-tls");
  struct epoll_event events[MAX_EVENTS];
  for (;;) {
    int n = epoll_wait(leg_epoll_fd, events, MAX_EVENTS, -1);
    for (int i = 0; i < n; i++) {
      uint64_t key = events[i].data.u64;
      if (key == WAKE_KEY) {
        uint64_t count;
        if (read(leg_wake_fd, &count, sizeof(count)) < 0) { /* nothing was pending */
        }
        service_dirty_legs();
        continue;
      }
      /* The lock is taken per event (each turn is bounded), so JavaScript gets in between. */
      lock_from_worker(&leg_lock);
      leg_t *l = leg_by_key(key); /* NULL: stopped or failed meanwhile */
      if (l != NULL) service(l, events[i].events);
      unlock_from_worker(&leg_lock);
    }
  }
  return NULL;
}

static int ensure_thread(void) {
  if (thread_started) return 0;
  leg_epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (leg_epoll_fd < 0) return errno;
  leg_wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WAKE_KEY};
  int error_number = 0;
  if (leg_wake_fd < 0 || epoll_ctl(leg_epoll_fd, EPOLL_CTL_ADD, leg_wake_fd, &ev) != 0) error_number = errno;
  if (error_number == 0) error_number = start_detached_thread(leg_thread);
  if (error_number != 0) {
    if (leg_wake_fd >= 0) close(leg_wake_fd);
    close(leg_epoll_fd);
    leg_wake_fd = leg_epoll_fd = -1;
    return error_number;
  }
  thread_started = 1;
  return 0;
}


/* ------------------------------------------------------------------ JavaScript side */

static void call_js(napi_env env, napi_value callback, void *context, void *data) {
  (void)context;
  event_t *event = data;
  if (env != NULL && callback != NULL && event != NULL) {
    napi_value argv[3], undefined;
    napi_get_undefined(env, &undefined);
    napi_create_int32(env, event->kind, &argv[0]);
    argv[1] = undefined;
    argv[2] = undefined;
    if (event->kind == EVENT_DATA)
      napi_create_buffer_copy(env, event->length, event->data, NULL, &argv[1]); else if (event->kind == EVENT_SECURE) {
      napi_create_string_utf8(env, event->alpn, NAPI_AUTO_LENGTH, &argv[1]);
      napi_create_string_latin1(env, event->servername, NAPI_AUTO_LENGTH, &argv[2]);
    } else if (event->kind == EVENT_ERROR) {
      napi_create_string_utf8(env, event->message, NAPI_AUTO_LENGTH, &argv[1]);
    }
    napi_call_function(env, undefined, callback, 3, argv, NULL);
  }
  if (event != NULL) pool_put(event->data);
  free(event);
}


static void free_context(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  SSL_CTX_free(data);
}


/* Contexts are tagged with their kind: start() takes only a server context for the sandbox's
   side and a client context for an upstream, and nothing else as a context. */
static const napi_type_tag SERVER_CONTEXT_TAG = {0x6265727468544c53ULL, 0x7365727665720001ULL};
static const napi_type_tag CLIENT_CONTEXT_TAG = {0x6265727468544c53ULL, 0x636c69656e740002ULL};

static napi_value wrap_context(napi_env env, SSL_CTX *ctx, const napi_type_tag *tag) {
  napi_value out;
  if (napi_create_external(env, ctx, free_context, NULL, &out) != napi_ok) {
    SSL_CTX_free(ctx);
    return throw_error(env, "could not wrap the TLS context", 0);
  }
  if (napi_type_tag_object(env, out, tag) != napi_ok)
    return throw_error(env, "could not tag the TLS context", 0);
  return out;
}

/* A copy of a JavaScript string (free it); its length, or -1 when it is not a string. */
static int read_string(napi_env env, napi_value value, char **out) {
  size_t length = 0;
  napi_valuetype type = napi_undefined;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_string ||
      napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok)
    return -1;
  *out = malloc(length + 1);
  if (*out == NULL) return -1;
  napi_get_value_string_utf8(env, value, *out, length + 1, &length);
  return (int)length;
}

static napi_value throw_openssl(napi_env env, const char *what) {
  char reason[256] = "unknown reason";
  unsigned long code = ERR_peek_last_error();
  if (code != 0) ERR_error_string_n(code, reason, sizeof(reason));
  ERR_clear_error();
  char message[400];
  snprintf(message, sizeof(message), "%s: %s", what, reason);
  return throw_error(env, message, 0);
}

/* serverContext(certificateChainPem, privateKeyPem) -> context for the sandbox's side. */
static napi_value server_context(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char *cert = NULL, *key = NULL;
  if (argc < 2 || read_string(env, argv[0], &cert) < 0 || read_string(env, argv[1], &key) < 0) {
    free(cert);
    return throw_type_error(env, "serverContext(certificatePem, keyPem) needs two strings");
  }
  ERR_clear_error();
  SSL_CTX *ctx = leg_server_context(cert, key);
  free(cert);
  free(key);
  if (ctx == NULL)
    return throw_openssl(env, "serverContext: the certificate or key was not accepted");
  return wrap_context(env, ctx, &SERVER_CONTEXT_TAG);
}

/* clientContext(trustedCertificatesPem) -> context for upstream connections. */
static napi_value client_context(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char *pem = NULL;
  if (argc < 1 || read_string(env, argv[0], &pem) < 0)
    return throw_type_error(env, "clientContext(trustedPem) needs a string");
  ERR_clear_error();
  SSL_CTX *ctx = leg_client_context(pem);
  free(pem);
  if (ctx == NULL) return throw_openssl(env, "clientContext: could not build the trust store");
  return wrap_context(env, ctx, &CLIENT_CONTEXT_TAG);
}

/*
 * start(fd, context, host | null, initialBytes | null, onEvent(kind, a, b)) -> id.
 * host null: the sandbox's side (TLS server); otherwise the upstream (TLS client to host).
 */
static napi_value start(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t fd = -1;
  SSL_CTX *ctx = NULL;
  if (argc < 5)
    return throw_type_error(env, "start(fd, context, host, initialBytes, onEvent) needs five "
                                 "arguments");
  if (!get_integer(env, argv[0], "start: fd", 0, MAX_DESCRIPTOR, &fd)) return NULL;
  napi_valuetype host_type = napi_undefined;
  napi_typeof(env, argv[2], &host_type);
  if (host_type != napi_string && host_type != napi_null && host_type != napi_undefined)
    return throw_type_error(env, "start: the host must be a string, or null for the sandbox's side");
  /* The sandbox's side (no host) takes a server context, an upstream a client context. */
  const napi_type_tag *tag = host_type == napi_string ? &CLIENT_CONTEXT_TAG : &SERVER_CONTEXT_TAG;
  bool tagged = false;
  napi_valuetype context_type = napi_undefined;
  napi_typeof(env, argv[1], &context_type);
  if (context_type != napi_external ||
      napi_check_object_type_tag(env, argv[1], tag, &tagged) != napi_ok || !tagged ||
      napi_get_value_external(env, argv[1], (void **)&ctx) != napi_ok || ctx == NULL)
    return throw_type_error(env, host_type == napi_string
                                     ? "start: an upstream leg needs a clientContext()"
                                     : "start: the sandbox's leg needs a serverContext()");
  bool is_buffer = false;
  napi_is_buffer(env, argv[3], &is_buffer);
  if (!is_buffer && !is_nullish(env, argv[3]))
    return throw_type_error(env, "start: initialBytes must be a Buffer or null");
  if (!check_function(env, argv[4], "start: onEvent")) return NULL;
  char *host = NULL;
  if (host_type == napi_string && read_string(env, argv[2], &host) <= 0) {
    free(host);
    return throw_range_error(env, "start: the host name is empty");
  }
  void *initial = NULL;
  size_t initial_length = 0;
  if (is_buffer) napi_get_buffer_info(env, argv[3], &initial, &initial_length);
  if (initial_length > INT_MAX) { /* BIO_write takes an int */
    free(host);
    return throw_range_error(env, "start: initialBytes is larger than 2 GB");
  }
  napi_value name;
  napi_create_string_utf8(env, "berth tls leg", NAPI_AUTO_LENGTH, &name);
  napi_threadsafe_function events;
  if (napi_create_threadsafe_function(env, argv[4], NULL, name, 0, 1, NULL, NULL, NULL, call_js,
                                      &events) != napi_ok) {
    free(host);
    return throw_error(env, "start: could not create the event callback", 0);
  }
  ERR_clear_error();
  BIO *rbio = NULL, *wbio = NULL;
  SSL *ssl = new_ssl(ctx, host, initial, initial_length, &rbio, &wbio);
  free(host);
  if (ssl == NULL) {
    napi_release_threadsafe_function(events, napi_tsfn_abort);
    return throw_openssl(env, "start: could not set up TLS");
  }

  lock_from_javascript(&leg_lock);
  int error_number = ensure_thread();
  uint32_t slot = 0;
  if (error_number == 0) error_number = grow_legs(&slot);
  leg_t *l = error_number == 0 ? &legs[slot] : NULL;
  if (l != NULL) {
    open_leg(l, (int)fd, ssl, rbio, wbio, events, env);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.u64 = leg_key(slot, l->generation)};
    if (epoll_ctl(leg_epoll_fd, EPOLL_CTL_ADD, (int)fd, &ev) != 0) {
      error_number = errno;
      l->sink = NULL;
      free_leg(l); /* frees ssl */
      ssl = NULL;
    } else {
      l->watched = 1;
      wake(l); /* a client leg says hello, a server leg may hold the ClientHello already */
    }
  }
  double key = l != NULL ? id_of(slot, l->generation) : 0;
  unlock_from_javascript(&leg_lock);
  if (error_number != 0) {
    SSL_free(ssl);
    napi_release_threadsafe_function(events, napi_tsfn_abort);
    return throw_error(env, "start: could not start the TLS leg", error_number);
  }
  napi_value id;
  napi_create_double(env, key, &id);
  return id;
}

/* A leg's id from JavaScript, checked (see get_id); 0 with the error thrown. */
typedef struct {
  uint32_t slot, generation;
} leg_id_t;

static int get_leg_id(napi_env env, size_t argc, napi_value *argv, size_t index, const char *what,
                      leg_id_t *id) {
  if (argc <= index) {
    char message[200];
    snprintf(message, sizeof(message), "%s is missing", what);
    throw_type_error(env, message);
    return 0;
  }
  return get_id(env, argv[index], what, &id->slot, &id->generation);
}

/* The running leg with this id, or NULL. Lock held. */
static leg_t *find(leg_id_t id) { return leg_at(id.slot, id.generation); }

static napi_value boolean(napi_env env, int value) {
  napi_value out;
  napi_get_boolean(env, value, &out);
  return out;
}

/* read(id, headOnly): deliver the next plaintext (or the end) once, through onEvent; with
   headOnly, no further than the first blank line. */
static napi_value read_leg(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  leg_id_t id;
  bool head_only = false;
  if (!get_leg_id(env, argc, argv, 0, "read: id", &id)) return NULL;
  if (argc >= 2 && !is_nullish(env, argv[1]) &&
      napi_get_value_bool(env, argv[1], &head_only) != napi_ok)
    return throw_type_error(env, "read: headOnly must be a boolean");
  lock_from_javascript(&leg_lock);
  leg_t *l = find(id);
  int ok = l != NULL && leg_request_read(l, head_only);
  unlock_from_javascript(&leg_lock);
  return boolean(env, ok);
}

/* write(id, buffer) -> true when the caller should wait for DRAIN before writing more. */
static napi_value write_leg(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *data = NULL;
  size_t length = 0;
  bool is_buffer = false;
  leg_id_t id;
  if (!get_leg_id(env, argc, argv, 0, "write: id", &id)) return NULL;
  if (argc < 2 || napi_is_buffer(env, argv[1], &is_buffer) != napi_ok || !is_buffer)
    return throw_type_error(env, "write(id, buffer) needs a buffer");
  napi_get_buffer_info(env, argv[1], &data, &length);
  if (length == 0) return boolean(env, 0); /* SSL_write of nothing would read as a failure */
  /* Copied into pool buffers before the lock is taken. */
  chunk_t *first = NULL, *last = NULL;
  for (size_t done = 0; done < length;) {
    size_t piece = length - done < POOL_BUFFER_BYTES ? length - done : POOL_BUFFER_BYTES;
    chunk_t *c = malloc(sizeof(chunk_t));
    char *buffer = c != NULL ? pool_get() : NULL;
    if (buffer == NULL) {
      free(c);
      while (first != NULL) {
        chunk_t *next = first->next;
        free_chunk(first);
        first = next;
      }
      return throw_error(env, "write: out of memory", ENOMEM);
    }
    memcpy(buffer, (char *)data + done, piece);
    *c = (chunk_t){.next = NULL, .length = piece, .offset = 0, .data = buffer};
    if (last != NULL)
      last->next = c;
    else
      first = c;
    last = c;
    done += piece;
  }
  lock_from_javascript(&leg_lock);
  leg_t *l = find(id);
  int wait = 0;
  if (l != NULL && !l->end_requested) {
    wait = leg_queue_write(l, first, last, length);
    first = NULL;
  }
  unlock_from_javascript(&leg_lock);
  if (first != NULL) {
    while (first != NULL) {
      chunk_t *next = first->next;
      free_chunk(first);
      first = next;
    }
    return throw_error(env, "write: the TLS leg is not running", 0);
  }
  return boolean(env, wait);
}

/* splice(targetId, sourceId, length): after what is queued on the target, the source's next
   `length` plaintext bytes are sent on the target; SPLICED on the target when they were. */
static napi_value splice_leg(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t length = 0;
  leg_id_t target_id, source_id;
  if (!get_leg_id(env, argc, argv, 0, "splice: targetId", &target_id) ||
      !get_leg_id(env, argc, argv, 1, "splice: sourceId", &source_id))
    return NULL;
  if (argc < 3) return throw_type_error(env, "splice(targetId, sourceId, length) needs a length");
  if (!get_integer(env, argv[2], "splice: length", 1, MAX_SAFE_INTEGER, &length)) return NULL;
  chunk_t *c = calloc(1, sizeof(chunk_t));
  if (c == NULL) return throw_error(env, "splice: out of memory", ENOMEM);
  lock_from_javascript(&leg_lock);
  leg_t *target = find(target_id), *source = find(source_id);
  int ok = target != NULL && source != NULL && leg_queue_splice(target, source, c, (size_t)length);
  if (ok) c = NULL;
  unlock_from_javascript(&leg_lock);
  free(c);
  if (!ok) return throw_error(env, "splice: both legs must be running and idle", 0);
  return boolean(env, 1);
}

/* end(id): once everything queued is sent, close_notify and a shutdown for writing. */
static napi_value end_leg(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  leg_id_t id;
  if (!get_leg_id(env, argc, argv, 0, "end: id", &id)) return NULL;
  lock_from_javascript(&leg_lock);
  leg_t *l = find(id);
  if (l != NULL) leg_request_end(l);
  unlock_from_javascript(&leg_lock);
  return boolean(env, l != NULL);
}

/* Stops a leg from the JavaScript thread; no event follows. Lock held. */
static void cancel(leg_t *l) {
  napi_threadsafe_function events = l->sink;
  free_leg(l);
  napi_release_threadsafe_function(events, napi_tsfn_abort);
}

/* stop(id) -> whether it was still running. Synchronous: the descriptor may be closed after. */
static napi_value stop_leg(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  leg_id_t id;
  if (!get_leg_id(env, argc, argv, 0, "stop: id", &id)) return NULL;
  lock_from_javascript(&leg_lock);
  leg_t *l = find(id);
  if (l != NULL) cancel(l);
  unlock_from_javascript(&leg_lock);
  return boolean(env, l != NULL);
}

/* idleMs(id) -> milliseconds since bytes last moved on the leg (-1 when it is not running). A
   splice moves bytes JavaScript never sees; idle timeouts ask here. */
static napi_value idle_ms(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  leg_id_t id;
  if (!get_leg_id(env, argc, argv, 0, "idleMs: id", &id)) return NULL;
  lock_from_javascript(&leg_lock);
  leg_t *l = find(id);
  double idle = l != NULL ? (double)(leg_now_ms() - l->last_activity_ms) : -1;
  unlock_from_javascript(&leg_lock);
  napi_create_double(env, idle, &out);
  return out;
}

static napi_value active_legs(napi_env env, napi_callback_info info) {
  (void)info;
  uint32_t count = 0;
  lock_from_javascript(&leg_lock);
  for (uint32_t i = 0; i < leg_capacity; i++) count += legs[i].used ? 1 : 0;
  unlock_from_javascript(&leg_lock);
  napi_value out;
  napi_create_uint32(env, count, &out);
  return out;
}

static void stop_environment(void *arg) {
  napi_env env = arg;
  lock_from_javascript(&leg_lock);
  for (uint32_t i = 0; i < leg_capacity; i++) {
    if (legs[i].used && legs[i].env == env) cancel(&legs[i]);
  }
  unlock_from_javascript(&leg_lock);
}

/*
 * TEST ONLY (test/egress/native-tls-leg.test.ts): testOnlyAdvanceGeneration(staleId, count)
 * moves the generation of the free slot `staleId` named on as if `count` more legs had used it
 * and ended (a million real reuses would take minutes), and returns the id the next leg in that
 * slot will get, or null when the slot is then retired. Changes nothing else; refuses a slot in
 * use.
 */
static napi_value test_only_advance_generation(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  leg_id_t id;
  int64_t count = 0;
  if (!get_leg_id(env, argc, argv, 0, "testOnlyAdvanceGeneration: staleId", &id)) return NULL;
  if (argc < 2) return throw_type_error(env, "testOnlyAdvanceGeneration(staleId, count)");
  if (!get_integer(env, argv[1], "testOnlyAdvanceGeneration: count", 0, MAX_SAFE_INTEGER, &count))
    return NULL;
  lock_from_javascript(&leg_lock);
  leg_t *l = id.slot < leg_capacity ? &legs[id.slot] : NULL;
  int usable = l != NULL && !l->used && !l->retired;
  if (usable && !next_generation(l->generation, (uint64_t)count, &l->generation)) l->retired = 1;
  int retired = usable && l->retired;
  double next = usable && !retired ? id_of(id.slot, l->generation) : 0;
  unlock_from_javascript(&leg_lock);
  if (!usable) return throw_error(env, "testOnlyAdvanceGeneration: that slot is in use or retired", 0);
  if (retired)
    napi_get_null(env, &out);
  else
    napi_create_double(env, next, &out);
  return out;
}

static napi_value legs_lock_stats(napi_env env, napi_callback_info info) {
  (void)info;
  return lock_stats(env, &leg_lock);
}

void tls_legs_register(napi_env env, napi_value exports) {
  napi_add_env_cleanup_hook(env, stop_environment, env);
  napi_value tls;
  napi_create_object(env, &tls);
  napi_property_descriptor properties[] = {
      {"serverContext", NULL, server_context, NULL, NULL, NULL, napi_default, NULL},
      {"clientContext", NULL, client_context, NULL, NULL, NULL, napi_default, NULL},
      {"start", NULL, start, NULL, NULL, NULL, napi_default, NULL},
      {"read", NULL, read_leg, NULL, NULL, NULL, napi_default, NULL},
      {"write", NULL, write_leg, NULL, NULL, NULL, napi_default, NULL},
      {"end", NULL, end_leg, NULL, NULL, NULL, napi_default, NULL},
      {"splice", NULL, splice_leg, NULL, NULL, NULL, napi_default, NULL},
      {"stop", NULL, stop_leg, NULL, NULL, NULL, napi_default, NULL},
      {"idleMs", NULL, idle_ms, NULL, NULL, NULL, napi_default, NULL},
      {"active", NULL, active_legs, NULL, NULL, NULL, napi_default, NULL},
      {"testOnlyAdvanceGeneration", NULL, test_only_advance_generation, NULL, NULL, NULL,
       napi_default, NULL},
      {"lockStats", NULL, legs_lock_stats, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, tls, sizeof(properties) / sizeof(properties[0]), properties);
  napi_set_named_property(env, exports, "tls", tls);
}
