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

#define CIPHER_BYTES (64 * 1024)
/* Plaintext moves in pooled buffers: fresh 256 KB blocks would come from mmap and fault in
   every page on each use (that cost more than the encryption). */
#define POOL_BUFFER_BYTES (256 * 1024)
#define POOL_MAX 256
#define DELIVERY_PIECE (64 * 1024)
/* A read for a message head delivers up to the first blank line, or this much without one. */
#define HEAD_LIMIT (64 * 1024)
#define PLAIN_BYTES POOL_BUFFER_BYTES
#define RBIO_LIMIT (256 * 1024)
#define WBIO_LIMIT (256 * 1024)
#define OUT_HIGH (1024 * 1024)
#define MAX_EVENTS 64
/* Rounds of a leg (and its splice partner) per hold of the lock; each round moves at most about
   RBIO_LIMIT + PLAIN_BYTES + WBIO_LIMIT bytes through OpenSSL. */
#define ROUNDS_PER_HOLD 4
#define WAKE_KEY UINT64_MAX

/* FINISHED: everything written was sent, then close_notify and a shutdown for writing. */
enum {
  EVENT_SECURE = 1,
  EVENT_DATA = 2,
  EVENT_END = 3,
  EVENT_DRAIN = 4,
  EVENT_ERROR = 5,
  EVENT_FINISHED = 6,
  EVENT_SPLICED = 7
};

/* What a leg sends, in order: bytes JavaScript wrote, or a splice: the next `length` bytes of
   another leg's plaintext, moved here without passing through JavaScript. */
typedef struct chunk {
  struct chunk *next;
  size_t length, offset;
  char *data;          /* a pool buffer; NULL for a splice */
  uint64_t source_key; /* a splice's source leg */
} chunk_t;

typedef struct {
  int used;
  int retired; /* every generation of this slot was used: never used again */
  uint32_t generation;
  int dirty; /* JavaScript asked for something: service on the next wake-up */
  int partner_gone; /* the other leg of a splice of this one ended: check on the next service */
  int fd;
  int watched;
  SSL *ssl;
  BIO *rbio, *wbio; /* memory BIOs, owned by ssl */
  int secure;       /* handshake done and reported */
  int input_ended;  /* recv said end of input */
  int tls_ended;    /* no more plaintext will come */
  int end_delivered;
  int want_read;
  int head_only; /* the pending read stops after the first blank line (a message head) */
  int splice_source; /* this leg's plaintext feeds another leg's splice ... */
  uint64_t splice_target; /* ... this one */
  char *plain;
  size_t plain_length;
  chunk_t *out_head, *out_tail;
  size_t out_bytes;
  int drain_wanted;
  int end_requested, close_notify_sent, write_shut;
  char *cipher;
  size_t cipher_start, cipher_length;
  int64_t last_activity_ms; /* the last time bytes moved (reads, writes, splices) */
  napi_threadsafe_function events;
  napi_env env;
} leg_t;

typedef struct {
  int kind;
  char *data;
  size_t length;
  char alpn[32];
  char servername[256];
  char message[320];
} event_t;

static shared_lock_t lock = SHARED_LOCK_INITIALIZER;
static leg_t *legs = NULL;
static uint32_t leg_capacity = 0;
static int epoll_fd = -1;
static int wake_fd = -1;
static int thread_started = 0;
static char receive_buffer[CIPHER_BYTES]; /* used by the leg thread only */

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static char *pool[POOL_MAX];
static int pool_count = 0;

static char *pool_get(void) {
  char *buffer = NULL;
  pthread_mutex_lock(&pool_lock);
  if (pool_count > 0) buffer = pool[--pool_count];
  pthread_mutex_unlock(&pool_lock);
  return buffer != NULL ? buffer : malloc(POOL_BUFFER_BYTES);
}

static void pool_put(char *buffer) {
  if (buffer == NULL) return;
  pthread_mutex_lock(&pool_lock);
  if (pool_count < POOL_MAX) {
    pool[pool_count++] = buffer;
    buffer = NULL;
  }
  pthread_mutex_unlock(&pool_lock);
  free(buffer);
}

static void free_chunk(chunk_t *c) {
  pool_put(c->data);
  free(c);
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t leg_key(uint32_t slot, uint32_t generation) {
  return ((uint64_t)generation << 32) | (uint64_t)slot;
}

/* The running leg in this slot with this generation, or NULL. Lock held. */
static leg_t *leg_at(uint32_t slot, uint32_t generation) {
  if (slot >= leg_capacity || !legs[slot].used || legs[slot].generation != generation) return NULL;
  return &legs[slot];
}

/* The running leg with this key (an epoll key or a splice's), or NULL. Lock held. */
static leg_t *leg_by_key(uint64_t key) {
  return leg_at((uint32_t)(key & 0xffffffffu), (uint32_t)(key >> 32));
}

static void wake(leg_t *l);

/* The other legs of this one's splices: woken when it ends, since they can never complete. */
static void wake_splice_partners(leg_t *l) {
  leg_t *partner = l->splice_source ? leg_by_key(l->splice_target) : NULL;
  if (partner != NULL) {
    partner->partner_gone = 1;
    wake(partner);
  }
  for (chunk_t *c = l->out_head; c != NULL; c = c->next) {
    if (c->data != NULL || (partner = leg_by_key(c->source_key)) == NULL) continue;
    partner->partner_gone = 1;
    wake(partner);
  }
}

static event_t *new_event(int kind) {
  event_t *event = calloc(1, sizeof(event_t));
  if (event != NULL) event->kind = kind;
  return event;
}

static void send_event(leg_t *l, event_t *event) {
  if (event == NULL) return;
  if (napi_call_threadsafe_function(l->events, event, napi_tsfn_nonblocking) != napi_ok) {
    pool_put(event->data);
    free(event);
  }
}

/* Frees a leg's slot (its generation moves on) and wakes its splice partners. Lock held. */
static void free_leg(leg_t *l) {
  wake_splice_partners(l);
  if (l->watched) epoll_ctl(epoll_fd, EPOLL_CTL_DEL, l->fd, NULL);
  l->watched = 0;
  SSL_free(l->ssl);
  l->ssl = NULL;
  pool_put(l->plain);
  free(l->cipher);
  for (chunk_t *c = l->out_head; c != NULL;) {
    chunk_t *next = c->next;
    free_chunk(c);
    c = next;
  }
  uint32_t generation = l->generation;
  int retired = !next_generation(generation, 1, &generation);
  memset(l, 0, sizeof(*l));
  l->generation = generation;
  l->retired = retired;
}

/* Sends what OpenSSL queued for the peer; returns 1 on progress, 0 on none, -errno. */
static int flush_ciphertext(leg_t *l) {
  int progress = 0;
  if (l->cipher == NULL && (l->cipher = malloc(CIPHER_BYTES)) == NULL) return -ENOMEM;
  for (;;) {
    if (l->cipher_length == 0) {
      int n = BIO_read(l->wbio, l->cipher, CIPHER_BYTES);
      if (n <= 0) break;
      l->cipher_start = 0;
      l->cipher_length = (size_t)n;
    }
    ssize_t sent =
        send(l->fd, l->cipher + l->cipher_start, l->cipher_length, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent > 0) {
      l->cipher_start += (size_t)sent;
      l->cipher_length -= (size_t)sent;
      progress = 1;
    } else if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      return -errno;
    } else {
      break;
    }
  }
  return progress;
}

/* Ends a leg from the leg thread: a last try to send an alert, then ERROR. Lock held. */
static void fail(leg_t *l, const char *message) {
  event_t *event = new_event(EVENT_ERROR);
  if (event != NULL) snprintf(event->message, sizeof(event->message), "%s", message);
  flush_ciphertext(l);
  napi_threadsafe_function events = l->events;
  send_event(l, event);
  free_leg(l);
  napi_release_threadsafe_function(events, napi_tsfn_release);
}

static void fail_errno(leg_t *l, const char *what, int error_number) {
  char message[256];
  snprintf(message, sizeof(message), "%s: %s", what, strerror(error_number));
  fail(l, message);
}

/* The reason OpenSSL gives for a failed call, with the certificate check's verdict. */
static void fail_tls(leg_t *l, const char *what, int ssl_error) {
  char reason[256] = "";
  unsigned long code = ERR_peek_last_error();
  if (code != 0)
    ERR_error_string_n(code, reason, sizeof(reason));
  else if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_SSL)
    snprintf(reason, sizeof(reason), "the TLS connection failed");
  else
    snprintf(reason, sizeof(reason), "TLS error %d", ssl_error);
  char message[320];
  long verify = SSL_get_verify_result(l->ssl);
  if (!SSL_is_server(l->ssl) && verify != X509_V_OK)
    snprintf(message, sizeof(message), "%s: %s (%s)", what, reason,
             X509_verify_cert_error_string(verify));
  else
    snprintf(message, sizeof(message), "%s: %s", what, reason);
  ERR_clear_error();
  fail(l, message);
}

/* Takes ciphertext from the socket; returns 1 on progress, 0 on none, -errno. */
static int receive(leg_t *l) {
  int progress = 0;
  while (!l->input_ended && BIO_pending(l->rbio) < RBIO_LIMIT) {
    ssize_t n = recv(l->fd, receive_buffer, sizeof(receive_buffer), MSG_DONTWAIT);
    if (n > 0) {
      if (BIO_write(l->rbio, receive_buffer, (int)n) != (int)n) return -ENOMEM;
      progress = 1;
    } else if (n == 0) {
      l->input_ended = 1;
      progress = 1;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      break;
    } else {
      return -errno;
    }
  }
  return progress;
}

/* Nothing more can arrive: the socket ended and OpenSSL has used every byte it got. */
static int input_exhausted(leg_t *l) {
  return l->input_ended && BIO_pending(l->rbio) == 0;
}

/* Handshake, then decryption into the plaintext buffer. 1 progress, 0 none, -1 failed (freed). */
static int decrypt(leg_t *l) {
  int progress = 0;
  if (!l->secure) {
    ERR_clear_error();
    int r = SSL_do_handshake(l->ssl);
    if (r != 1) {
      int e = SSL_get_error(l->ssl, r);
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        fail_tls(l, "TLS handshake failed", e);
        return -1;
      }
      if (input_exhausted(l)) {
        fail(l, "the peer closed the connection during the TLS handshake");
        return -1;
      }
      return 0;
    }
    l->secure = 1;
    event_t *event = new_event(EVENT_SECURE);
    if (event != NULL) {
      const unsigned char *alpn = NULL;
      unsigned int alpn_length = 0;
      SSL_get0_alpn_selected(l->ssl, &alpn, &alpn_length);
      if (alpn_length >= sizeof(event->alpn)) alpn_length = sizeof(event->alpn) - 1;
      if (alpn != NULL) memcpy(event->alpn, alpn, alpn_length);
      const char *servername = SSL_get_servername(l->ssl, TLSEXT_NAMETYPE_host_name);
      if (servername != NULL) snprintf(event->servername, sizeof(event->servername), "%s", servername);
    }
    send_event(l, event);
    progress = 1;
  }
  while (!l->tls_ended && l->plain_length < PLAIN_BYTES) {
    if (l->plain == NULL && (l->plain = pool_get()) == NULL) {
      fail(l, "out of memory");
      return -1;
    }
    ERR_clear_error();
    int n = SSL_read(l->ssl, l->plain + l->plain_length, (int)(PLAIN_BYTES - l->plain_length));
    if (n > 0) {
      lock.hold_bytes += (uint64_t)n;
      l->plain_length += (size_t)n;
      progress = 1;
      continue;
    }
    int e = SSL_get_error(l->ssl, n);
    if (e == SSL_ERROR_ZERO_RETURN) {
      l->tls_ended = 1; /* close_notify */
      progress = 1;
    } else if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      /* An end of the socket without close_notify ends the plaintext too; what it meant for
         the message in flight is for the HTTP framing above to judge, as with Node's TLS. */
      if (input_exhausted(l)) {
        l->tls_ended = 1;
        progress = 1;
      }
    } else {
      fail_tls(l, "TLS read failed", e);
      return -1;
    }
    break;
  }
  return progress;
}

/* Hands the first `length` plaintext bytes to JavaScript (the rest moves up). */
static int deliver_bytes(leg_t *l, size_t length) {
  event_t *event = new_event(EVENT_DATA);
  if (event == NULL || (event->data = pool_get()) == NULL) {
    free(event);
    return 0; /* tried again on the next event */
  }
  memcpy(event->data, l->plain, length);
  event->length = length;
  memmove(l->plain, l->plain + length, l->plain_length - length);
  l->plain_length -= length;
  l->want_read = 0;
  send_event(l, event);
  return 1;
}

/* Gives JavaScript what it asked for: the plaintext so far (or only a head), or the end. */
static int deliver(leg_t *l) {
  if (!l->want_read) return 0;
  if (l->head_only && l->plain_length > 0) {
    /* Only the head: what follows it (a body) stays here, for a splice or the next read. */
    char *blank = memmem(l->plain, l->plain_length, "\r\n\r\n", 4);
    if (blank == NULL && l->plain_length < HEAD_LIMIT && !l->tls_ended) return 0;
    size_t length = blank != NULL ? (size_t)(blank - l->plain) + 4 : l->plain_length;
    return deliver_bytes(l, length < HEAD_LIMIT ? length : HEAD_LIMIT);
  }
  if (l->plain_length > 0) {
    /* At most DELIVERY_PIECE per read: pieces of the size Node's allocator keeps and reuses
       (larger ones come fresh from mmap each time and fault in every page). */
    return deliver_bytes(l, l->plain_length < DELIVERY_PIECE ? l->plain_length : DELIVERY_PIECE);
  }
  if (l->tls_ended && !l->end_delivered) {
    l->end_delivered = 1;
    l->want_read = 0;
    send_event(l, new_event(EVENT_END));
    return 1;
  }
  return 0;
}

/* Encrypts queued plaintext and sends ciphertext. 1 progress, 0 none, -1 failed (freed). */
static int encrypt_and_send(leg_t *l) {
  int progress = 0;
  if (l->secure) {
    while (l->out_head != NULL && BIO_pending(l->wbio) < WBIO_LIMIT) {
      chunk_t *c = l->out_head;
      leg_t *source = NULL;
      const char *data = c->data + c->offset;
      size_t length = c->length - c->offset;
      if (c->data == NULL) {
        source = leg_by_key(c->source_key);
        if (source == NULL || (source->plain_length == 0 && source->tls_ended)) {
          fail(l, "the upstream connection ended before the body did");
          return -1;
        }
        if (source->plain_length == 0) break; /* the source's next bytes come back here */
        data = source->plain;
        if (length > source->plain_length) length = source->plain_length;
      }
      ERR_clear_error();
      int n = SSL_write(l->ssl, data, (int)length);
      if (n <= 0) {
        int e = SSL_get_error(l->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
        fail_tls(l, "TLS write failed", e);
        return -1;
      }
      c->offset += (size_t)n;
      lock.hold_bytes += (uint64_t)n;
      progress = 1;
      if (source != NULL) {
        memmove(source->plain, source->plain + n, source->plain_length - (size_t)n);
        source->plain_length -= (size_t)n;
      } else {
        l->out_bytes -= (size_t)n;
      }
      if (c->offset == c->length) {
        l->out_head = c->next;
        if (l->out_head == NULL) l->out_tail = NULL;
        if (source != NULL) {
          source->splice_source = 0;
          send_event(l, new_event(EVENT_SPLICED));
        }
        free_chunk(c);
      }
    }
    if (l->out_head == NULL && l->end_requested && !l->close_notify_sent) {
      ERR_clear_error();
      SSL_shutdown(l->ssl);
      l->close_notify_sent = 1;
      progress = 1;
    }
  }
  int sent = flush_ciphertext(l);
  if (sent < 0) {
    fail_errno(l, "sending failed", -sent);
    return -1;
  }
  progress |= sent;
  if (l->close_notify_sent && l->cipher_length == 0 && BIO_pending(l->wbio) == 0 &&
      !l->write_shut) {
    shutdown(l->fd, SHUT_WR);
    l->write_shut = 1;
    progress = 1;
    send_event(l, new_event(EVENT_FINISHED));
  }
  if (l->drain_wanted && l->out_bytes < OUT_HIGH) {
    l->drain_wanted = 0;
    send_event(l, new_event(EVENT_DRAIN));
  }
  return progress;
}

/* One round of everything a leg can do: 1 progress, 0 none, -1 failed (freed). Lock held. */
static int step(leg_t *l) {
  int progress = receive(l);
  if (progress < 0) {
    fail_errno(l, "receiving failed", -progress);
    return -1;
  }
  int result = decrypt(l);
  if (result < 0) return -1;
  progress |= result;
  progress |= deliver(l);
  result = encrypt_and_send(l);
  if (result < 0) return -1;
  progress |= result;
  if (progress) l->last_activity_ms = now_ms();
  return progress;
}

/* The other leg of a running splice (its source or its target), or NULL. Lock held. */
static leg_t *splice_partner(leg_t *l) {
  if (l->splice_source) return leg_by_key(l->splice_target);
  if (l->out_head != NULL && l->out_head->data == NULL) return leg_by_key(l->out_head->source_key);
  return NULL;
}

/* Why a splice of this leg can never complete (the other leg ended), or NULL. Lock held. */
static const char *broken_splice(leg_t *l) {
  if (l->splice_source && leg_by_key(l->splice_target) == NULL)
    return "the connection this leg's body was spliced into is gone";
  for (chunk_t *c = l->out_head; c != NULL; c = c->next) {
    if (c->data == NULL && leg_by_key(c->source_key) == NULL)
      return "the upstream connection ended before the body did";
  }
  return NULL;
}

/* One bounded turn of everything a leg (and the other leg of its splice) can do now: at most
   ROUNDS_PER_HOLD rounds; with more to do, it is marked and comes back after a wake-up. Lock
   held. */
static void service(leg_t *l, uint32_t events) {
  l->dirty = 0;
  if (l->partner_gone) {
    l->partner_gone = 0;
    const char *reason = broken_splice(l);
    if (reason != NULL) {
      fail(l, reason);
      return;
    }
  }
  if (events & EPOLLERR) {
    int error_number = 0;
    socklen_t length = sizeof(error_number);
    getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &error_number, &length);
    if (error_number != 0) {
      fail_errno(l, "the connection failed", error_number);
      return;
    }
  }
  uint64_t key = leg_key((uint32_t)(l - legs), l->generation);
  for (int rounds = 0; rounds < ROUNDS_PER_HOLD; rounds++) {
    l = leg_by_key(key);
    if (l == NULL) return;
    leg_t *partner = splice_partner(l);
    uint64_t partner_key = partner != NULL ? leg_key((uint32_t)(partner - legs), partner->generation) : 0;
    int progress = step(l);
    if (progress < 0) progress = 0;
    /* The source decrypts what the target sends; each may free the other's room. */
    if (partner != NULL && (partner = leg_by_key(partner_key)) != NULL) {
      int other = step(partner);
      if (other > 0) progress = 1;
    }
    if (!progress) return;
  }
  /* Still busy: come back after the other legs (and any JavaScript call) had their turn. */
  l = leg_by_key(key);
  if (l != NULL) {
    l->dirty = 1;
    uint64_t one = 1;
    if (write(wake_fd, &one, sizeof(one)) < 0) { /* the counter is already set */
    }
  }
}

/* Serves every leg marked dirty, one bounded turn each, one hold of the lock each. */
static void service_dirty_legs(void) {
  for (uint32_t slot = 0;; slot++) {
    lock_from_worker(&lock);
    while (slot < leg_capacity && !(legs[slot].used && legs[slot].dirty)) slot++;
    int found = slot < leg_capacity;
    if (found) service(&legs[slot], 0);
    unlock_from_worker(&lock);
    if (!found) return;
  }
}

static void *leg_thread(void *unused) {
  (void)unused;
  pthread_setname_np(pthread_self(), "berth-tls");
  struct epoll_event events[MAX_EVENTS];
  for (;;) {
    int n = epoll_wait(epoll_fd, events, MAX_EVENTS, -1);
    for (int i = 0; i < n; i++) {
      uint64_t key = events[i].data.u64;
      if (key == WAKE_KEY) {
        uint64_t count;
        if (read(wake_fd, &count, sizeof(count)) < 0) { /* nothing was pending */
        }
        service_dirty_legs();
        continue;
      }
      /* The lock is taken per event (each turn is bounded), so JavaScript gets in between. */
      lock_from_worker(&lock);
      leg_t *l = leg_by_key(key); /* NULL: stopped or failed meanwhile */
      if (l != NULL) service(l, events[i].events);
      unlock_from_worker(&lock);
    }
  }
  return NULL;
}

static int ensure_thread(void) {
  if (thread_started) return 0;
  epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) return errno;
  wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WAKE_KEY};
  int error_number = 0;
  if (wake_fd < 0 || epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &ev) != 0) error_number = errno;
  if (error_number == 0) error_number = start_detached_thread(leg_thread);
  if (error_number != 0) {
    if (wake_fd >= 0) close(wake_fd);
    close(epoll_fd);
    wake_fd = epoll_fd = -1;
    return error_number;
  }
  thread_started = 1;
  return 0;
}

static void wake(leg_t *l) {
  l->dirty = 1;
  uint64_t one = 1;
  if (write(wake_fd, &one, sizeof(one)) < 0) { /* the counter is already set */
  }
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

static int select_http11(SSL *ssl, const unsigned char **out, unsigned char *out_length,
                         const unsigned char *in, unsigned int in_length, void *arg) {
  (void)ssl;
  (void)arg;
  static const unsigned char http11[] = "\x08http/1.1";
  unsigned char *selected = NULL;
  if (SSL_select_next_proto(&selected, out_length, http11, sizeof(http11) - 1, in, in_length) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol */
}

static void free_context(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  SSL_CTX_free(data);
}

static SSL_CTX *new_context(int server) {
  SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (ctx == NULL) return NULL;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  return ctx;
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
  SSL_CTX *ctx = new_context(1);
  BIO *cert_bio = BIO_new_mem_buf(cert, -1), *key_bio = BIO_new_mem_buf(key, -1);
  int ok = ctx != NULL && cert_bio != NULL && key_bio != NULL;
  X509 *leaf = ok ? PEM_read_bio_X509(cert_bio, NULL, NULL, NULL) : NULL;
  ok = ok && leaf != NULL && SSL_CTX_use_certificate(ctx, leaf) == 1;
  X509_free(leaf);
  for (X509 *extra; ok && (extra = PEM_read_bio_X509(cert_bio, NULL, NULL, NULL)) != NULL;) {
    if (SSL_CTX_add_extra_chain_cert(ctx, extra) != 1) {
      X509_free(extra);
      ok = 0;
    }
  }
  EVP_PKEY *pkey = ok ? PEM_read_bio_PrivateKey(key_bio, NULL, NULL, NULL) : NULL;
  ok = ok && pkey != NULL && SSL_CTX_use_PrivateKey(ctx, pkey) == 1 &&
       SSL_CTX_check_private_key(ctx) == 1;
  EVP_PKEY_free(pkey);
  BIO_free(cert_bio);
  BIO_free(key_bio);
  free(cert);
  free(key);
  if (!ok) {
    SSL_CTX_free(ctx);
    return throw_openssl(env, "serverContext: the certificate or key was not accepted");
  }
  ERR_clear_error(); /* the end of the chain leaves a "no start line" */
  SSL_CTX_set_alpn_select_cb(ctx, select_http11, NULL);
  SSL_CTX_set_num_tickets(ctx, 0);
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
  SSL_CTX *ctx = new_context(0);
  BIO *bio = BIO_new_mem_buf(pem, -1);
  int ok = ctx != NULL && bio != NULL;
  X509_STORE *store = ok ? SSL_CTX_get_cert_store(ctx) : NULL;
  for (X509 *cert; ok && (cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL;) {
    X509_STORE_add_cert(store, cert); /* a duplicate is not an error worth failing for */
    X509_free(cert);
  }
  ERR_clear_error();
  BIO_free(bio);
  free(pem);
  if (!ok) {
    SSL_CTX_free(ctx);
    return throw_openssl(env, "clientContext: could not build the trust store");
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  static const unsigned char http11[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(ctx, http11, sizeof(http11) - 1);
  return wrap_context(env, ctx, &CLIENT_CONTEXT_TAG);
}

static int grow_legs(uint32_t *slot) {
  for (uint32_t i = 0; i < leg_capacity; i++) {
    if (!legs[i].used && !legs[i].retired) {
      *slot = i;
      return 0;
    }
  }
  if (leg_capacity >= MAX_SLOTS) return EMFILE; /* ids have SLOT_BITS for the slot */
  uint32_t capacity = leg_capacity == 0 ? 64 : leg_capacity * 2;
  leg_t *grown = realloc(legs, capacity * sizeof(leg_t));
  if (grown == NULL) return ENOMEM;
  memset(grown + leg_capacity, 0, (capacity - leg_capacity) * sizeof(leg_t));
  legs = grown;
  *slot = leg_capacity;
  leg_capacity = capacity;
  return 0;
}

/* Builds the SSL object of a leg; NULL (OpenSSL's error queue says why) on failure. */
static SSL *new_ssl(SSL_CTX *ctx, const char *host, const char *initial, size_t initial_length,
                    BIO **rbio, BIO **wbio) {
  SSL *ssl = SSL_new(ctx);
  if (ssl == NULL) return NULL;
  *rbio = BIO_new(BIO_s_mem());
  *wbio = BIO_new(BIO_s_mem());
  if (*rbio == NULL || *wbio == NULL) {
    BIO_free(*rbio);
    BIO_free(*wbio);
    SSL_free(ssl);
    return NULL;
  }
  BIO_set_mem_eof_return(*rbio, -1); /* empty means "more later"; the socket's end is ours */
  SSL_set_bio(ssl, *rbio, *wbio);
  if (host == NULL) {
    SSL_set_accept_state(ssl);
  } else {
    SSL_set_connect_state(ssl);
    X509_VERIFY_PARAM_set_hostflags(SSL_get0_param(ssl), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set_tlsext_host_name(ssl, host) != 1 || SSL_set1_host(ssl, host) != 1) {
      SSL_free(ssl);
      return NULL;
    }
  }
  if (initial_length > 0 && BIO_write(*rbio, initial, (int)initial_length) != (int)initial_length) {
    SSL_free(ssl);
    return NULL;
  }
  return ssl;
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

  lock_from_javascript(&lock);
  int error_number = ensure_thread();
  uint32_t slot = 0;
  if (error_number == 0) error_number = grow_legs(&slot);
  leg_t *l = error_number == 0 ? &legs[slot] : NULL;
  if (l != NULL) {
    l->used = 1;
    l->fd = (int)fd;
    l->ssl = ssl;
    l->rbio = rbio;
    l->wbio = wbio;
    l->events = events;
    l->env = env;
    l->last_activity_ms = now_ms();
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.u64 = leg_key(slot, l->generation)};
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, (int)fd, &ev) != 0) {
      error_number = errno;
      l->events = NULL;
      free_leg(l); /* frees ssl */
      ssl = NULL;
    } else {
      l->watched = 1;
      wake(l); /* a client leg says hello, a server leg may hold the ClientHello already */
    }
  }
  double key = l != NULL ? id_of(slot, l->generation) : 0;
  unlock_from_javascript(&lock);
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
  lock_from_javascript(&lock);
  leg_t *l = find(id);
  int ok = l != NULL && !l->splice_source;
  if (ok) {
    /* A read already pending takes the new mode (an idle connection's watch becomes a read). */
    l->want_read = 1;
    l->head_only = head_only;
    wake(l);
  }
  unlock_from_javascript(&lock);
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
  lock_from_javascript(&lock);
  leg_t *l = find(id);
  int wait = 0;
  if (l != NULL && !l->end_requested) {
    if (l->out_tail != NULL)
      l->out_tail->next = first;
    else
      l->out_head = first;
    l->out_tail = last;
    l->out_bytes += length;
    first = NULL;
    if (l->out_bytes >= OUT_HIGH) wait = l->drain_wanted = 1;
    wake(l);
  }
  unlock_from_javascript(&lock);
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
  lock_from_javascript(&lock);
  leg_t *target = find(target_id), *source = find(source_id);
  int ok = target != NULL && source != NULL && target != source && !target->end_requested &&
           !source->splice_source && !source->want_read;
  if (ok) {
    c->length = (size_t)length;
    c->source_key = leg_key((uint32_t)(source - legs), source->generation);
    if (target->out_tail != NULL)
      target->out_tail->next = c;
    else
      target->out_head = c;
    target->out_tail = c;
    c = NULL;
    source->splice_source = 1;
    source->splice_target = leg_key((uint32_t)(target - legs), target->generation);
    wake(target);
  }
  unlock_from_javascript(&lock);
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
  lock_from_javascript(&lock);
  leg_t *l = find(id);
  if (l != NULL) {
    l->end_requested = 1;
    wake(l);
  }
  unlock_from_javascript(&lock);
  return boolean(env, l != NULL);
}

/* Stops a leg from the JavaScript thread; no event follows. Lock held. */
static void cancel(leg_t *l) {
  napi_threadsafe_function events = l->events;
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
  lock_from_javascript(&lock);
  leg_t *l = find(id);
  if (l != NULL) cancel(l);
  unlock_from_javascript(&lock);
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
  lock_from_javascript(&lock);
  leg_t *l = find(id);
  double idle = l != NULL ? (double)(now_ms() - l->last_activity_ms) : -1;
  unlock_from_javascript(&lock);
  napi_create_double(env, idle, &out);
  return out;
}

static napi_value active_legs(napi_env env, napi_callback_info info) {
  (void)info;
  uint32_t count = 0;
  lock_from_javascript(&lock);
  for (uint32_t i = 0; i < leg_capacity; i++) count += legs[i].used ? 1 : 0;
  unlock_from_javascript(&lock);
  napi_value out;
  napi_create_uint32(env, count, &out);
  return out;
}

static void stop_environment(void *arg) {
  napi_env env = arg;
  lock_from_javascript(&lock);
  for (uint32_t i = 0; i < leg_capacity; i++) {
    if (legs[i].used && legs[i].env == env) cancel(&legs[i]);
  }
  unlock_from_javascript(&lock);
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
  lock_from_javascript(&lock);
  leg_t *l = id.slot < leg_capacity ? &legs[id.slot] : NULL;
  int usable = l != NULL && !l->used && !l->retired;
  if (usable && !next_generation(l->generation, (uint64_t)count, &l->generation)) l->retired = 1;
  int retired = usable && l->retired;
  double next = usable && !retired ? id_of(id.slot, l->generation) : 0;
  unlock_from_javascript(&lock);
  if (!usable) return throw_error(env, "testOnlyAdvanceGeneration: that slot is in use or retired", 0);
  if (retired)
    napi_get_null(env, &out);
  else
    napi_create_double(env, next, &out);
  return out;
}

static napi_value legs_lock_stats(napi_env env, napi_callback_info info) {
  (void)info;
  return lock_stats(env, &lock);
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
