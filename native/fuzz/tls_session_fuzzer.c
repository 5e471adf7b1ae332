/*
 * libFuzzer target: two TLS legs after real handshakes, driven by the input through everything
 * their peers and JavaScript can do: the peers (a sandbox's client or an upstream server, real
 * OpenSSL on the other end of a socketpair) send any plaintext (message heads, bodies, blank
 * lines anywhere), close_notify, half-close, close, or inject raw bytes into the record stream;
 * JavaScript reads (whole or a head only), writes, splices one leg's plaintext into the other,
 * ends and stops legs, in any order. The legs are served as their thread would be.
 *
 * Byte 0: bit 0 and bit 1 make leg 0 and leg 1 an upstream leg (TLS client) instead of the
 * sandbox's side (TLS server); bits 2-7 give the length of the name a sandbox's client sends as
 * SNI (0: FUZZ_HOST; else 4 to 255 characters, copied into the SECURE event). Then records of [op, side, length (1 byte), bytes] (see the
 * switch below; two ops send large bodies, past the legs' buffer limits and OUT_HIGH).
 *
 * Checked besides the sanitizers: what a leg delivered to JavaScript is exactly the start of what
 * its peer sent (when nothing of that leg was spliced away), a head-only read never delivers past
 * the first blank line nor more than HEAD_LIMIT, what a peer received is exactly the start of what
 * JavaScript wrote (when nothing was spliced into that leg), and a leg that ended told
 * JavaScript once.
 */
#define _GNU_SOURCE
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_support.h"

typedef struct {
  unsigned char *data;
  size_t length, capacity;
} bytes_t;

static void append(bytes_t *b, const void *data, size_t length) {
  if (b->length + length > b->capacity) {
    size_t capacity = (b->length + length) * 2 + 64;
    unsigned char *grown = realloc(b->data, capacity);
    if (grown == NULL) abort();
    b->data = grown;
    b->capacity = capacity;
  }
  memcpy(b->data + b->length, data, length);
  b->length += length;
}

typedef struct {
  int upstream; /* the leg is an upstream leg (TLS client); its peer is a TLS server */
  int sv[2];
  uint64_t key;
  fuzz_sink_t sink;
  SSL *peer;
  int peer_open, peer_broken, peer_shut;
  bytes_t peer_sent;     /* plaintext the peer's SSL_write took */
  bytes_t peer_received; /* plaintext the peer read */
  unsigned char *pending;
  size_t pending_length; /* a write OpenSSL wants retried with the same bytes */
  bytes_t written;       /* what JavaScript queued with write() */
  int spliced_from, spliced_into, garbage;
  int head_only_pending; /* the last read asked for a head only */
} side_t;

static void fail(const char *what, int side) {
  fprintf(stderr, "tls_session_fuzzer: leg %d: %s\n", side, what);
  abort();
}

/* The peer sends: a write OpenSSL wants retried is retried first, with the same bytes. */
static void peer_write(side_t *s, const unsigned char *data, size_t length) {
  if (!s->peer_open || s->peer_broken || s->peer_shut) return;
  if (s->pending_length > 0) {
    ERR_clear_error();
    int n = SSL_write(s->peer, s->pending, (int)s->pending_length);
    if (n <= 0) {
      int e = SSL_get_error(s->peer, n);
      if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) s->peer_broken = 1;
      return;
    }
    append(&s->peer_sent, s->pending, (size_t)n);
    free(s->pending);
    s->pending = NULL;
    s->pending_length = 0;
  }
  if (length == 0) return;
  ERR_clear_error();
  int n = SSL_write(s->peer, data, (int)length);
  if (n > 0) {
    append(&s->peer_sent, data, (size_t)n);
  } else {
    int e = SSL_get_error(s->peer, n);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
      if ((s->pending = malloc(length)) == NULL) abort();
      memcpy(s->pending, data, length);
      s->pending_length = length;
    } else {
      s->peer_broken = 1;
    }
  }
}

static void peer_read(side_t *s) {
  if (!s->peer_open || s->peer_broken) return;
  unsigned char buffer[16 * 1024];
  for (;;) {
    ERR_clear_error();
    int n = SSL_read(s->peer, buffer, sizeof(buffer));
    if (n > 0) {
      append(&s->peer_received, buffer, (size_t)n);
      continue;
    }
    int e = SSL_get_error(s->peer, n);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) s->peer_broken = 1;
    return;
  }
}

/* Bytes for a large body (a pattern with blank lines in it now and then). */
static unsigned char *large_body(size_t length, unsigned char seed) {
  unsigned char *body = malloc(length);
  if (body == NULL) abort();
  for (size_t k = 0; k < length; k++) body[k] = (unsigned char)(k * 7 + seed);
  for (size_t k = 100; k + 4 <= length; k += 70000) memcpy(body + k, "\r\n\r\n", 4);
  return body;
}

static void set_up(side_t *s, int upstream, size_t sni_length) {
  char sni[256] = FUZZ_HOST;
  memset(s, 0, sizeof(*s));
  s->upstream = upstream;
  s->key = upstream ? fuzz_start_leg(fuzz_client_context(), FUZZ_HOST, NULL, 0, &s->sink, s->sv)
                    : fuzz_start_leg(fuzz_server_context(), NULL, NULL, 0, &s->sink, s->sv);
  s->peer = SSL_new(upstream ? fuzz_peer_server_context() : fuzz_peer_client_context());
  if (s->peer == NULL) abort();
  SSL_set_mode(s->peer, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_set_fd(s->peer, s->sv[0]);
  if (upstream)
    SSL_set_accept_state(s->peer);
  else {
    SSL_set_connect_state(s->peer);
    if (sni_length > 0) {
      for (size_t k = 0; k < sni_length && k < sizeof(sni) - 1; k++)
        sni[k] = k % 64 == 63 ? '.' : (char)('a' + (k * 7) % 26);
      sni[sni_length < sizeof(sni) - 1 ? sni_length : sizeof(sni) - 1] = 0;
    }
    SSL_set_tlsext_host_name(s->peer, sni);
  }
  s->peer_open = 1;
  for (int round = 0; round < 20 && !(s->sink.secure && SSL_is_init_finished(s->peer)); round++) {
    ERR_clear_error();
    SSL_do_handshake(s->peer);
    fuzz_service(s->key);
  }
  if (!s->sink.secure || !SSL_is_init_finished(s->peer)) fail("the handshake did not complete", upstream);
  if (strcmp(s->sink.alpn, "http/1.1") != 0) fail("the SECURE event's ALPN is not http/1.1", upstream);
  if (!upstream && strcmp(s->sink.servername, sni) != 0)
    fail("the SECURE event's SNI is not the one the client sent", upstream);
}

/* Whether a (length a_length) is the start of b; memcmp takes no NULL, even for 0 bytes. */
static int starts(const unsigned char *a, size_t a_length, const unsigned char *b, size_t b_length) {
  return a_length == 0 || (a_length <= b_length && memcmp(a, b, a_length) == 0);
}

static void check(side_t *s, int index) {
  if (s->sink.ended > 1) fail("END told twice", index);
  if (s->sink.released > 1) fail("released twice", index);
  /* A write OpenSSL wants retried may have sent some of its records already: what the peer
     offered is what it sent and then the pending write. */
  size_t sent = s->peer_sent.length, delivered = s->sink.delivered_length;
  if (!s->spliced_from && !s->garbage &&
      !(delivered <= sent
            ? starts(s->sink.delivered, delivered, s->peer_sent.data, sent)
            : starts(s->peer_sent.data, sent, s->sink.delivered, delivered) &&
                  starts(s->sink.delivered + sent, delivered - sent, s->pending, s->pending_length)))
    fail("delivered bytes its peer did not send, or in another order", index);
  if (!s->spliced_into &&
      !starts(s->peer_received.data, s->peer_received.length, s->written.data, s->written.length))
    fail("its peer received bytes JavaScript did not write, or in another order", index);
}

static void check_head(side_t *s, int index, size_t before) {
  /* A head-only read delivered: at most HEAD_LIMIT, and no blank line before its end. */
  if (!s->head_only_pending || s->sink.delivered_length == before) return;
  s->head_only_pending = 0;
  const unsigned char *head = s->sink.last_data;
  size_t length = s->sink.last_data_length;
  if (length > HEAD_LIMIT) fail("a head longer than HEAD_LIMIT", index);
  const unsigned char *blank = memmem(head, length, "\r\n\r\n", 4);
  if (blank != NULL && (size_t)(blank - head) + 4 != length)
    fail("a head-only read went past the blank line", index);
}

static void serve(side_t *sides, int index) {
  size_t before = sides[index].sink.delivered_length;
  fuzz_service(sides[index].key);
  check_head(&sides[index], index, before);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  side_t sides[2];
  /* 0, or 4 to 255 characters (the longest name TLS carries). */
  size_t sni_length = (size_t)(data[0] >> 2) == 0 ? 0 : 4 + ((size_t)(data[0] >> 2) - 1) * 4;
  if (sni_length > 255) sni_length = 255;
  set_up(&sides[0], data[0] & 1, sni_length);
  set_up(&sides[1], (data[0] >> 1) & 1, sni_length);
  for (size_t i = 1; i + 3 <= size;) {
    int op = data[i] % 14;
    int index = data[i + 1] & 1;
    size_t length = data[i + 2];
    i += 3;
    side_t *s = &sides[index], *other = &sides[1 - index];
    leg_t *l = fuzz_leg(s->key), *o = fuzz_leg(other->key);
    const unsigned char *bytes = data + i;
    size_t available = size - i < length ? size - i : length;
    switch (op) {
      case 0: /* the peer sends plaintext */
        peer_write(s, bytes, available);
        i += available;
        break;
      case 1: /* JavaScript reads: a head only when the length byte is odd */
        if (l != NULL && leg_request_read(l, length & 1)) s->head_only_pending = length & 1;
        break;
      case 2: /* JavaScript writes */
        if (l != NULL && !l->end_requested && available > 0) {
          chunk_t *c = malloc(sizeof(chunk_t));
          char *buffer = pool_get();
          if (c == NULL || buffer == NULL) abort();
          memcpy(buffer, bytes, available);
          *c = (chunk_t){.next = NULL, .length = available, .offset = 0, .data = buffer};
          leg_queue_write(l, c, c, available);
          append(&s->written, bytes, available);
        }
        i += available;
        break;
      case 3: /* JavaScript splices the other leg's next bytes into this one */
        if (l != NULL && o != NULL) {
          chunk_t *c = calloc(1, sizeof(chunk_t));
          if (c == NULL) abort();
          /* Up to 128 bytes, or with the top bit 4 KB to 512 KB (past PLAIN_BYTES). */
          size_t splice_length = length & 0x80 ? ((length & 0x7f) + 1) * 4096 : length + 1;
          if (leg_queue_splice(l, o, c, splice_length)) {
            s->spliced_into = other->spliced_from = 1;
          } else {
            free(c);
          }
        }
        break;
      case 4: /* JavaScript ends the leg */
        if (l != NULL) leg_request_end(l);
        break;
      case 5: /* the peer sends close_notify */
        if (s->peer_open && !s->peer_broken && !s->peer_shut) {
          SSL_shutdown(s->peer);
          s->peer_shut = 1;
        }
        break;
      case 6: /* the peer ends its writing without close_notify */
        if (s->peer_open) shutdown(s->sv[0], SHUT_WR);
        s->peer_shut = 1;
        break;
      case 7: /* raw bytes in the record stream */
        if (s->peer_open && available > 0 &&
            send(s->sv[0], bytes, available, MSG_DONTWAIT | MSG_NOSIGNAL) > 0)
          s->garbage = 1;
        i += available;
        break;
      case 8:
        serve(sides, index);
        break;
      case 9:
        peer_read(s);
        break;
      case 10: /* JavaScript stops the leg */
        fuzz_stop(s->key);
        break;
      case 12: /* JavaScript writes a large body: length * 8 KB (up to 2 MB, past OUT_HIGH) */
        if (l != NULL && !l->end_requested) {
          size_t total = (length + 1) * 8192;
          unsigned char *body = large_body(total, (unsigned char)length);
          chunk_t *first = NULL, *last = NULL;
          for (size_t done = 0; done < total; done += POOL_BUFFER_BYTES) {
            size_t piece = total - done < POOL_BUFFER_BYTES ? total - done : POOL_BUFFER_BYTES;
            chunk_t *c = malloc(sizeof(chunk_t));
            char *buffer = pool_get();
            if (c == NULL || buffer == NULL) abort();
            memcpy(buffer, body + done, piece);
            *c = (chunk_t){.next = NULL, .length = piece, .offset = 0, .data = buffer};
            if (last != NULL) last->next = c; else first = c;
            last = c;
          }
          leg_queue_write(l, first, last, total);
          append(&s->written, body, total);
          free(body);
        }
        break;
      case 13: /* the peer sends a large body: length * 2 KB (up to 512 KB, past PLAIN_BYTES) */
        if (s->pending_length == 0) {
          size_t total = (length + 1) * 2048;
          unsigned char *body = large_body(total, (unsigned char)(length ^ 0x5a));
          peer_write(s, body, total);
          free(body);
        }
        break;
      case 11: /* the peer closes its socket */
        if (s->peer_open) {
          close(s->sv[0]);
          s->peer_open = 0;
        }
        break;
    }
    /* The leg thread runs whenever there is something to do; JavaScript reads whenever it
       likes: serve after a peer's action, as the epoll event would. */
    if (op == 0 || op == 5 || op == 6 || op == 7 || op == 11 || op == 13) serve(sides, index);
    check(&sides[0], 0);
    check(&sides[1], 1);
  }
  /* What is in flight settles. */
  for (int round = 0; round < 8; round++) {
    for (int index = 0; index < 2; index++) {
      peer_write(&sides[index], NULL, 0);
      serve(sides, index);
      peer_read(&sides[index]);
    }
  }
  for (int index = 0; index < 2; index++) check(&sides[index], index);
  for (int index = 0; index < 2; index++) {
    side_t *s = &sides[index];
    fuzz_stop(s->key);
    SSL_free(s->peer);
    if (s->peer_open) close(s->sv[0]);
    close(s->sv[1]);
    fuzz_sink_free(&s->sink);
    free(s->peer_sent.data);
    free(s->peer_received.data);
    free(s->written.data);
    free(s->pending);
  }
  ERR_clear_error();
  return 0;
}
