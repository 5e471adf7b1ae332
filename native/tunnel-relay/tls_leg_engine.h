/*
 * The TLS legs' engine: everything a leg does with the bytes of its peer (a sandbox or an
 * upstream server), apart from Node: receiving ciphertext, the handshake and decryption (by
 * OpenSSL), a message head's search for its blank line, delivering plaintext, splices from one
 * leg to another, encryption, sending, close_notify and the half-close. The addon (tls_legs.c)
 * adds the leg thread, its epoll set and the N-API functions; the fuzzers under native/fuzz/ link
 * this file with Debian's OpenSSL and drive legs over socketpairs. The threat model and the
 * guarantees are at the top of tls_legs.c.
 *
 * The engine's user provides leg_sink_send and leg_sink_release (how events reach JavaScript, or
 * a fuzzer's checks). Every function here runs with the legs' lock held (leg_lock).
 */
#ifndef BERTH_TLS_LEG_ENGINE_H
#define BERTH_TLS_LEG_ENGINE_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "native_core.h"

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
/* Rounds of a leg (and its splice partner) per hold of the lock; each round moves at most about
   RBIO_LIMIT + PLAIN_BYTES + WBIO_LIMIT bytes through OpenSSL. */
#define ROUNDS_PER_HOLD 4
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
  void *sink; /* where its events go (leg_sink_send): JavaScript's callback in the addon */
  void *env;  /* the JavaScript environment that started it */
} leg_t;

typedef struct {
  int kind;
  char *data;
  size_t length;
  char alpn[32];
  char servername[256];
  char message[320];
} event_t;

/* Provided by the engine's user: takes the event (and frees it, with its data: pool_put). */
void leg_sink_send(void *sink, event_t *event);
/* Provided by the engine's user: no more events will come from this leg (abort: stopped by
   JavaScript, no event follows; else it failed and its ERROR event was sent). */
void leg_sink_release(void *sink, int abort);

extern shared_lock_t leg_lock;
extern leg_t *legs;
extern uint32_t leg_capacity;
/* The leg thread's epoll set and its wake-up eventfd (-1 until the thread starts). */
extern int leg_epoll_fd;
extern int leg_wake_fd;

char *pool_get(void);
void pool_put(char *buffer);
void free_chunk(chunk_t *c);
int64_t leg_now_ms(void);
uint64_t leg_key(uint32_t slot, uint32_t generation);
leg_t *leg_at(uint32_t slot, uint32_t generation);
leg_t *leg_by_key(uint64_t key);
event_t *new_event(int kind);
/* Marks the leg for service and wakes the leg thread. */
void wake(leg_t *l);
/* Frees a leg's slot (its generation moves on) and wakes its splice partners. */
void free_leg(leg_t *l);
/* One bounded turn of everything a leg (and its splice partner) can do now. */
void service(leg_t *l, uint32_t events);
/* Serves every leg marked dirty, one bounded turn and one hold of leg_lock each. */
void service_dirty_legs(void);
/* A free slot (*slot); 0 or an errno. */
int grow_legs(uint32_t *slot);
/* The SSL object of a leg (host NULL: the sandbox's side, a TLS server); NULL on failure. */
SSL *new_ssl(SSL_CTX *ctx, const char *host, const char *initial, size_t initial_length,
             BIO **rbio, BIO **wbio);
/* Fills a free slot (grow_legs) with a starting leg; the caller watches its descriptor. */
void open_leg(leg_t *l, int fd, SSL *ssl, BIO *rbio, BIO *wbio, void *sink, void *env);
/* What JavaScript asks of a running leg (tls_legs.c checks its arguments first):
   read: deliver the next plaintext (or a head) once; 0 when the leg feeds a splice. */
int leg_request_read(leg_t *l, int head_only);
/* write: queues the chunks (length bytes in all); 1 when the caller should wait for DRAIN. */
int leg_queue_write(leg_t *l, chunk_t *first, chunk_t *last, size_t length);
/* splice: after what is queued on target, the source's next `length` plaintext bytes; the
   chunk c (allocated by the caller) is taken on success (1); 0 when either leg is busy. */
int leg_queue_splice(leg_t *target, leg_t *source, chunk_t *c, size_t length);
/* end: close_notify and a shutdown for writing once everything queued was sent. */
void leg_request_end(leg_t *l);
/* The contexts legs take; NULL on failure (OpenSSL's error queue says why). */
SSL_CTX *leg_server_context(const char *certificate_chain_pem, const char *private_key_pem);
SSL_CTX *leg_client_context(const char *trusted_pem);

#endif
