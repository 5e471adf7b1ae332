/*
 * The TLS legs' engine (tls_leg_engine.h): what a leg does with its peer's bytes, apart from
 * Node so the fuzzers link it. Threat model and guarantees: the top of tls_legs.c.
 */
#define _GNU_SOURCE
#include "tls_leg_engine.h"

#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

shared_lock_t leg_lock = SHARED_LOCK_INITIALIZER;
leg_t *legs = NULL;
uint32_t leg_capacity = 0;
int leg_epoll_fd = -1;
int leg_wake_fd = -1;
static char receive_buffer[CIPHER_BYTES]; /* used by the leg thread only */

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static char *pool[POOL_MAX];
static int pool_count = 0;

char *pool_get(void) {
  char *buffer = NULL;
  pthread_mutex_lock(&pool_lock);
  if (pool_count > 0) buffer = pool[--pool_count];
  pthread_mutex_unlock(&pool_lock);
  return buffer != NULL ? buffer : malloc(POOL_BUFFER_BYTES);
}

void pool_put(char *buffer) {
  if (buffer == NULL) return;
  pthread_mutex_lock(&pool_lock);
  if (pool_count < POOL_MAX) {
    pool[pool_count++] = buffer;
    buffer = NULL;
  }
  pthread_mutex_unlock(&pool_lock);
  free(buffer);
}

void free_chunk(chunk_t *c) {
  pool_put(c->data);
  free(c);
}

int64_t leg_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t leg_key(uint32_t slot, uint32_t generation) {
  return ((uint64_t)generation << 32) | (uint64_t)slot;
}

/* The running leg in this slot with this generation, or NULL. Lock held. */
leg_t *leg_at(uint32_t slot, uint32_t generation) {
  if (slot >= leg_capacity || !legs[slot].used || legs[slot].generation != generation) return NULL;
  return &legs[slot];
}

/* The running leg with this key (an epoll key or a splice's), or NULL. Lock held. */
leg_t *leg_by_key(uint64_t key) {
  return leg_at((uint32_t)(key & 0xffffffffu), (uint32_t)(key >> 32));
}


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

event_t *new_event(int kind) {
  event_t *event = calloc(1, sizeof(event_t));
  if (event != NULL) event->kind = kind;
  return event;
}

static void send_event(leg_t *l, event_t *event) {
  if (event == NULL) return;
  leg_sink_send(l->sink, event);
}

/* Frees a leg's slot (its generation moves on) and wakes its splice partners. Lock held. */
void free_leg(leg_t *l) {
  wake_splice_partners(l);
  if (l->watched) epoll_ctl(leg_epoll_fd, EPOLL_CTL_DEL, l->fd, NULL);
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
  void *sink = l->sink;
  send_event(l, event);
  free_leg(l);
  leg_sink_release(sink, 0);
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
      leg_lock.hold_bytes += (uint64_t)n;
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
      /* A splice's chunk has no data: NULL + offset is undefined behaviour in C, even + 0
         (UBSan's finding under scripts/test-native-asan.sh), so it is taken only for data. */
      const char *data = c->data != NULL ? c->data + c->offset : NULL;
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
      leg_lock.hold_bytes += (uint64_t)n;
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
  if (progress) l->last_activity_ms = leg_now_ms();
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
void service(leg_t *l, uint32_t events) {
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
    if (write(leg_wake_fd, &one, sizeof(one)) < 0) { /* the counter is already set */
    }
  }
}

/* Serves every leg marked dirty, one bounded turn each, one hold of the lock each. */
void service_dirty_legs(void) {
  for (uint32_t slot = 0;; slot++) {
    lock_from_worker(&leg_lock);
    while (slot < leg_capacity && !(legs[slot].used && legs[slot].dirty)) slot++;
    int found = slot < leg_capacity;
    if (found) service(&legs[slot], 0);
    unlock_from_worker(&leg_lock);
    if (!found) return;
  }
}

void wake(leg_t *l) {
  l->dirty = 1;
  uint64_t one = 1;
  if (write(leg_wake_fd, &one, sizeof(one)) < 0) { /* the counter is already set */
  }
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

static SSL_CTX *new_context(int server) {
  SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (ctx == NULL) return NULL;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  return ctx;
}

int grow_legs(uint32_t *slot) {
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
SSL *new_ssl(SSL_CTX *ctx, const char *host, const char *initial, size_t initial_length,
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

SSL_CTX *leg_server_context(const char *certificate_chain_pem, const char *private_key_pem) {
  SSL_CTX *ctx = new_context(1);
  BIO *cert_bio = BIO_new_mem_buf(certificate_chain_pem, -1);
  BIO *key_bio = BIO_new_mem_buf(private_key_pem, -1);
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
  if (!ok) {
    SSL_CTX_free(ctx);
    return NULL;
  }
  ERR_clear_error(); /* the end of the chain leaves a "no start line" */
  SSL_CTX_set_alpn_select_cb(ctx, select_http11, NULL);
  SSL_CTX_set_num_tickets(ctx, 0);
  return ctx;
}

SSL_CTX *leg_client_context(const char *trusted_pem) {
  SSL_CTX *ctx = new_context(0);
  BIO *bio = BIO_new_mem_buf(trusted_pem, -1);
  int ok = ctx != NULL && bio != NULL;
  X509_STORE *store = ok ? SSL_CTX_get_cert_store(ctx) : NULL;
  for (X509 *cert; ok && (cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL;) {
    X509_STORE_add_cert(store, cert); /* a duplicate is not an error worth failing for */
    X509_free(cert);
  }
  ERR_clear_error();
  BIO_free(bio);
  if (!ok) {
    SSL_CTX_free(ctx);
    return NULL;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  static const unsigned char http11[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(ctx, http11, sizeof(http11) - 1);
  return ctx;
}

void open_leg(leg_t *l, int fd, SSL *ssl, BIO *rbio, BIO *wbio, void *sink, void *env) {
  l->used = 1;
  l->fd = fd;
  l->ssl = ssl;
  l->rbio = rbio;
  l->wbio = wbio;
  l->sink = sink;
  l->env = env;
  l->last_activity_ms = leg_now_ms();
}

int leg_request_read(leg_t *l, int head_only) {
  if (l->splice_source) return 0;
  /* A read already pending takes the new mode (an idle connection's watch becomes a read). */
  l->want_read = 1;
  l->head_only = head_only;
  wake(l);
  return 1;
}

int leg_queue_write(leg_t *l, chunk_t *first, chunk_t *last, size_t length) {
  int wait = 0;
  if (l->out_tail != NULL)
    l->out_tail->next = first;
  else
    l->out_head = first;
  l->out_tail = last;
  l->out_bytes += length;
  if (l->out_bytes >= OUT_HIGH) wait = l->drain_wanted = 1;
  wake(l);
  return wait;
}

int leg_queue_splice(leg_t *target, leg_t *source, chunk_t *c, size_t length) {
  if (target == source || target->end_requested || source->splice_source || source->want_read)
    return 0;
  *c = (chunk_t){.next = NULL, .length = length, .offset = 0, .data = NULL,
                 .source_key = leg_key((uint32_t)(source - legs), source->generation)};
  if (target->out_tail != NULL)
    target->out_tail->next = c;
  else
    target->out_head = c;
  target->out_tail = c;
  source->splice_source = 1;
  source->splice_target = leg_key((uint32_t)(target - legs), target->generation);
  wake(target);
  return 1;
}

void leg_request_end(leg_t *l) {
  l->end_requested = 1;
  wake(l);
}
