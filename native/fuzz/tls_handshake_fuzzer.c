/*
 * libFuzzer target: the bytes a hostile peer sends to a TLS leg before and during the handshake.
 * Byte 0 picks the leg: bit 0 clear, the sandbox's side (the proxy is the TLS server: a
 * ClientHello and what follows, from the sandbox); set, an upstream leg (the proxy is the TLS
 * client of FUZZ_HOST: a server's flight, from an upstream); bit 1, the first record's bytes are
 * the leg's initial bytes (start()'s initialBytes) instead of coming over the socket. Then records of [op, length (2 bytes, little
 * endian), bytes]: op 0 sends the bytes from the peer, 1 ends the peer's writing, 2 drains what
 * the leg sent, 3 closes the peer. The leg is served after each record, as its thread would be.
 *
 * Checked besides the sanitizers: no handshake completes (SECURE) with bytes that do not hold
 * the other side's key: a server leg's peer would need to finish a key exchange the leg started,
 * and an upstream leg must refuse anything without the test certificate's signature.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_support.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int upstream = data[0] & 1;
  /* Bit 1: the first record's bytes are start()'s initialBytes (what the proxy already read of
     the sandbox's ClientHello), not sent on the socket. */
  const uint8_t *initial = NULL;
  size_t initial_length = 0, i = 1;
  if ((data[0] & 2) && size >= 4) {
    initial_length = (size_t)data[2] | ((size_t)data[3] << 8);
    if (initial_length > size - 4) initial_length = size - 4;
    initial = data + 4;
    i = 4 + initial_length;
  }
  fuzz_sink_t sink = {0};
  int sv[2];
  uint64_t key =
      upstream ? fuzz_start_leg(fuzz_client_context(), FUZZ_HOST, initial, initial_length, &sink, sv)
               : fuzz_start_leg(fuzz_server_context(), NULL, initial, initial_length, &sink, sv);
  fuzz_service(key);
  int peer_open = 1;
  for (; i + 3 <= size && fuzz_leg(key) != NULL;) {
    int op = data[i] & 3;
    size_t length = (size_t)data[i + 1] | ((size_t)data[i + 2] << 8);
    i += 3;
    if (length > size - i) length = size - i;
    if (op == 0 && peer_open) {
      if (send(sv[0], data + i, length, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) fuzz_drain(sv[0]);
    } else if (op == 1 && peer_open) {
      shutdown(sv[0], SHUT_WR);
    } else if (op == 2 && peer_open) {
      fuzz_drain(sv[0]);
    } else if (op == 3 && peer_open) {
      close(sv[0]);
      peer_open = 0;
    }
    if (op == 0) i += length;
    fuzz_service(key);
    if (peer_open) fuzz_drain(sv[0]);
  }
  if (sink.secure != 0) {
    fprintf(stderr, "a %s leg completed a handshake with a peer that holds no key\n",
            upstream ? "upstream" : "sandbox");
    abort();
  }
  if (fuzz_leg(key) == NULL && !sink.released) abort(); /* failed without telling JavaScript */
  fuzz_stop(key);
  if (peer_open) close(sv[0]);
  close(sv[1]);
  fuzz_sink_free(&sink);
  return 0;
}
