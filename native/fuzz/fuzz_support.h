/*
 * What the TLS leg fuzzers share: a test certificate made at start-up (never a committed key),
 * the contexts the addon would build from it (leg_server_context, leg_client_context), the
 * engine's event sink, and the legs' set-up over socketpairs. Fuzzers only: no Node.
 */
#ifndef BERTH_FUZZ_SUPPORT_H
#define BERTH_FUZZ_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include "../tunnel-relay/tls_leg_engine.h"

/* The certificate's name: the client leg's host, and what the test client asks for. */
#define FUZZ_HOST "fuzz.berth.test"

/* What a leg told its sink (JavaScript in the addon). */
typedef struct {
  int secure, ended, errored, released, drains, spliced, finished;
  char servername[256]; /* the SECURE event's SNI */
  char alpn[32];        /* the SECURE event's ALPN */
  unsigned char *delivered; /* every DATA event's bytes, in order */
  size_t delivered_length, delivered_capacity;
  size_t last_data_length; /* the last DATA event's length */
  const unsigned char *last_data; /* points into delivered */
} fuzz_sink_t;

/* The contexts, made once: a server context for the sandbox's side, a client one trusting the
   test certificate, and a plain OpenSSL client context (the sandbox or an upstream peer). */
SSL_CTX *fuzz_server_context(void);
SSL_CTX *fuzz_client_context(void);
SSL_CTX *fuzz_peer_client_context(void);
SSL_CTX *fuzz_peer_server_context(void);

/* A leg on sv[1] of a fresh non-blocking socketpair (sv[0] is the peer's end); host NULL: the
   sandbox's side; initial: bytes already read from the peer (start()'s initialBytes). Returns
   the leg's key, or aborts. */
uint64_t fuzz_start_leg(SSL_CTX *ctx, const char *host, const void *initial, size_t length,
                        fuzz_sink_t *sink, int sv[2]);
/* The running leg with this key, or NULL (it failed or was stopped). */
leg_t *fuzz_leg(uint64_t key);
/* Serves the leg as its thread would after an event, and every leg marked dirty. */
void fuzz_service(uint64_t key);
/* Stops a leg as stop() does (no event follows) when it still runs. */
void fuzz_stop(uint64_t key);
void fuzz_sink_free(fuzz_sink_t *sink);
/* Reads and drops what is waiting on a descriptor (non-blocking); returns bytes read. */
size_t fuzz_drain(int fd);

#endif
