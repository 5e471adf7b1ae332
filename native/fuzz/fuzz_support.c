/* See fuzz_support.h. */
#define _GNU_SOURCE
#include "fuzz_support.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what) {
  fprintf(stderr, "fuzz support: %s\n", what);
  abort();
}

void leg_sink_send(void *sink_pointer, event_t *event) {
  fuzz_sink_t *sink = sink_pointer;
  switch (event->kind) {
    case EVENT_SECURE:
      sink->secure++;
      if (memchr(event->servername, 0, sizeof(event->servername)) == NULL ||
          memchr(event->alpn, 0, sizeof(event->alpn)) == NULL)
        die("an unterminated name in a SECURE event");
      memcpy(sink->servername, event->servername, sizeof(sink->servername));
      memcpy(sink->alpn, event->alpn, sizeof(sink->alpn));
      break;
    case EVENT_DATA:
      if (event->length == 0 || event->length > PLAIN_BYTES) die("a DATA event out of bounds");
      if (sink->delivered_length + event->length > sink->delivered_capacity) {
        size_t capacity = (sink->delivered_length + event->length) * 2;
        unsigned char *grown = realloc(sink->delivered, capacity);
        if (grown == NULL) die("out of memory");
        sink->delivered = grown;
        sink->delivered_capacity = capacity;
      }
      memcpy(sink->delivered + sink->delivered_length, event->data, event->length);
      sink->last_data = sink->delivered + sink->delivered_length;
      sink->last_data_length = event->length;
      sink->delivered_length += event->length;
      break;
    case EVENT_END:
      sink->ended++;
      break;
    case EVENT_DRAIN:
      sink->drains++;
      break;
    case EVENT_ERROR:
      sink->errored++;
      break;
    case EVENT_FINISHED:
      sink->finished++;
      break;
    case EVENT_SPLICED:
      sink->spliced++;
      break;
    default:
      die("an unknown event");
  }
  pool_put(event->data);
  free(event);
}

void leg_sink_release(void *sink_pointer, int abort_) {
  (void)abort_;
  fuzz_sink_t *sink = sink_pointer;
  if (sink->released++) die("a leg's sink released twice");
}

void fuzz_sink_free(fuzz_sink_t *sink) {
  free(sink->delivered);
  memset(sink, 0, sizeof(*sink));
}

static char *certificate_pem, *key_pem;

static char *bio_string(BIO *bio) {
  char *data = NULL;
  long length = BIO_get_mem_data(bio, &data);
  char *copy = malloc((size_t)length + 1);
  if (copy == NULL) die("out of memory");
  memcpy(copy, data, (size_t)length);
  copy[length] = 0;
  return copy;
}

/* An EC P-256 key and a self-signed certificate for FUZZ_HOST, made once per process. */
static void make_certificate(void) {
  if (certificate_pem != NULL) return;
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *cert = X509_new();
  if (key == NULL || cert == NULL) die("no key");
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600L * 24 * 365);
  X509_NAME *name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)FUZZ_HOST, -1, -1,
                             0);
  X509_set_issuer_name(cert, name);
  X509_set_pubkey(cert, key);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
  X509_EXTENSION *san = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:" FUZZ_HOST);
  X509_EXTENSION *ca = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
  if (san == NULL || ca == NULL) die("no extension");
  X509_add_ext(cert, san, -1);
  X509_add_ext(cert, ca, -1);
  X509_EXTENSION_free(san);
  X509_EXTENSION_free(ca);
  if (X509_sign(cert, key, EVP_sha256()) == 0) die("cannot sign");
  BIO *cert_bio = BIO_new(BIO_s_mem()), *key_bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(cert_bio, cert);
  PEM_write_bio_PrivateKey(key_bio, key, NULL, NULL, 0, NULL, NULL);
  certificate_pem = bio_string(cert_bio);
  key_pem = bio_string(key_bio);
  BIO_free(cert_bio);
  BIO_free(key_bio);
  X509_free(cert);
  EVP_PKEY_free(key);
}

SSL_CTX *fuzz_server_context(void) {
  static SSL_CTX *ctx;
  make_certificate();
  if (ctx == NULL && (ctx = leg_server_context(certificate_pem, key_pem)) == NULL)
    die("leg_server_context failed");
  return ctx;
}

SSL_CTX *fuzz_client_context(void) {
  static SSL_CTX *ctx;
  make_certificate();
  if (ctx == NULL && (ctx = leg_client_context(certificate_pem)) == NULL)
    die("leg_client_context failed");
  return ctx;
}

SSL_CTX *fuzz_peer_client_context(void) {
  static SSL_CTX *ctx;
  if (ctx == NULL) {
    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) die("no peer client context");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    static const unsigned char http11[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, http11, sizeof(http11) - 1);
  }
  return ctx;
}

static int peer_select_http11(SSL *ssl, const unsigned char **out, unsigned char *out_length,
                              const unsigned char *in, unsigned int in_length, void *arg) {
  (void)ssl;
  (void)arg;
  static const unsigned char http11[] = "\x08http/1.1";
  unsigned char *selected = NULL;
  if (SSL_select_next_proto(&selected, out_length, http11, sizeof(http11) - 1, in, in_length) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

SSL_CTX *fuzz_peer_server_context(void) {
  static SSL_CTX *ctx;
  if (ctx == NULL) {
    make_certificate();
    ctx = SSL_CTX_new(TLS_server_method());
    BIO *cert_bio = BIO_new_mem_buf(certificate_pem, -1), *key_bio = BIO_new_mem_buf(key_pem, -1);
    X509 *cert = PEM_read_bio_X509(cert_bio, NULL, NULL, NULL);
    EVP_PKEY *key = PEM_read_bio_PrivateKey(key_bio, NULL, NULL, NULL);
    if (ctx == NULL || cert == NULL || key == NULL || SSL_CTX_use_certificate(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, key) != 1)
      die("no peer server context");
    SSL_CTX_set_alpn_select_cb(ctx, peer_select_http11, NULL);
    SSL_CTX_set_num_tickets(ctx, 0);
    X509_free(cert);
    EVP_PKEY_free(key);
    BIO_free(cert_bio);
    BIO_free(key_bio);
  }
  return ctx;
}

uint64_t fuzz_start_leg(SSL_CTX *ctx, const char *host, const void *initial, size_t length,
                        fuzz_sink_t *sink, int sv[2]) {
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
    die("no socketpair");
  BIO *rbio = NULL, *wbio = NULL;
  SSL *ssl = new_ssl(ctx, host, initial, length, &rbio, &wbio);
  if (ssl == NULL) die("new_ssl failed");
  uint32_t slot = 0;
  if (grow_legs(&slot) != 0) die("no slot");
  leg_t *l = &legs[slot];
  open_leg(l, sv[1], ssl, rbio, wbio, sink, NULL);
  wake(l);
  return leg_key(slot, l->generation);
}

leg_t *fuzz_leg(uint64_t key) { return leg_by_key(key); }

void fuzz_service(uint64_t key) {
  leg_t *l = leg_by_key(key);
  if (l != NULL) {
    /* The events epoll would report now (poll's bits are epoll's on Linux). */
    struct pollfd ready = {.fd = l->fd, .events = POLLIN | POLLOUT | POLLRDHUP};
    uint32_t events = poll(&ready, 1, 0) == 1 ? (uint32_t)ready.revents : 0;
    lock_from_worker(&leg_lock);
    service(l, events | EPOLLIN | EPOLLOUT);
    unlock_from_worker(&leg_lock);
  }
  service_dirty_legs();
}

void fuzz_stop(uint64_t key) {
  leg_t *l = leg_by_key(key);
  if (l == NULL) return;
  void *sink = l->sink;
  free_leg(l);
  leg_sink_release(sink, 1);
}

size_t fuzz_drain(int fd) {
  static char buffer[64 * 1024];
  size_t total = 0;
  for (;;) {
    ssize_t n = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n <= 0) return total;
    total += (size_t)n;
  }
}
