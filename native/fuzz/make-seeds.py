#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora (native/fuzz/corpus/TARGET/). Run once by hand when a
target's input format changes; the files are committed. The handshake seeds are real TLS
messages (Python's ssl module on memory BIOs, a throwaway certificate made here), so the
fuzzer starts from well-formed ClientHellos and server flights and mutates from there."""
import os
import ssl
import struct
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    directory = os.path.join(HERE, 'corpus', target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), 'wb') as f:
        f.write(data)


def handshake_record(op, data=b''):
    return bytes([op]) + struct.pack('<H', len(data)) + data


def chunks(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


def client_hello(maximum=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(['http/1.1'])
    if maximum is not None:
        ctx.maximum_version = maximum
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = ctx.wrap_bio(incoming, outgoing, server_hostname='fuzz.berth.test')
    try:
        client.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def server_flight(hello, certificate, key, maximum=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certificate, key)
    ctx.set_alpn_protocols(['http/1.1'])
    if maximum is not None:
        ctx.maximum_version = maximum
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = ctx.wrap_bio(incoming, outgoing, server_side=True)
    incoming.write(hello)
    try:
        server.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def handshake_seeds():
    for name, maximum in (('tls13', None), ('tls12', ssl.TLSVersion.TLSv1_2)):
        hello = client_hello(maximum)
        write('tls_handshake', f'sandbox-client-hello-{name}',
              b'\x00' + handshake_record(0, hello) + handshake_record(2))
        write('tls_handshake', f'sandbox-client-hello-{name}-as-initial-bytes',
              b'\x02' + handshake_record(0, hello) + handshake_record(2))
        write('tls_handshake', f'sandbox-client-hello-{name}-in-pieces',
              b'\x00' + b''.join(handshake_record(0, c) for c in chunks(hello, 7)) +
              handshake_record(1))
    with tempfile.TemporaryDirectory() as directory:
        certificate = os.path.join(directory, 'cert.pem')
        key = os.path.join(directory, 'key.pem')
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                        'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=fuzz.berth.test',
                        '-addext', 'subjectAltName=DNS:fuzz.berth.test', '-days', '1',
                        '-keyout', key, '-out', certificate], check=True, capture_output=True)
        for name, maximum in (('tls13', None), ('tls12', ssl.TLSVersion.TLSv1_2)):
            flight = server_flight(client_hello(maximum), certificate, key, maximum)
            write('tls_handshake', f'upstream-server-flight-{name}',
                  b'\x01' + handshake_record(0, flight) + handshake_record(2))
            write('tls_handshake', f'upstream-server-flight-{name}-then-end',
                  b'\x01' + b''.join(handshake_record(0, c) for c in chunks(flight, 100)) +
                  handshake_record(1))


def op(code, side, data=b'', length=None):
    return bytes([code, side, len(data) if length is None else length]) + data


PEER_SEND, READ, WRITE, SPLICE, END, CLOSE_NOTIFY, SHUT, GARBAGE, SERVE, PEER_READ, STOP, CLOSE, LARGE_WRITE, PEER_LARGE = range(14)


def session_seeds():
    head = b'GET /a HTTP/1.1\r\nHost: fuzz.berth.test\r\nContent-Length: 5\r\n\r\n'
    write('tls_session', 'head-then-body',
          b'\x00' + op(PEER_SEND, 0, head + b'hello') + op(READ, 0, length=1) + op(SERVE, 0) +
          op(READ, 0, length=0) + op(SERVE, 0))
    write('tls_session', 'splice-body-upstream-to-sandbox',
          b'\x02' + op(PEER_SEND, 1, b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nbody-part') +
          op(READ, 1, length=1) + op(SERVE, 1) + op(WRITE, 0, b'HTTP/1.1 200 OK\r\n\r\n') +
          op(SPLICE, 0, length=8) + op(SERVE, 0) + op(SERVE, 1) + op(PEER_READ, 0))
    write('tls_session', 'write-end-close-notify',
          b'\x00' + op(WRITE, 1, b'data for the peer') + op(END, 1) + op(SERVE, 1) +
          op(PEER_READ, 1) + op(CLOSE_NOTIFY, 1) + op(READ, 1, length=0) + op(SERVE, 1))
    write('tls_session', 'garbage-record-mid-stream',
          b'\x01' + op(PEER_SEND, 0, b'first') + op(GARBAGE, 0, b'\x17\x03\x03\x00\x05abcde') +
          op(READ, 0, length=0) + op(SERVE, 0))
    write('tls_session', 'head-without-blank-line-then-shut',
          b'\x00' + op(PEER_SEND, 0, b'GET / HTTP/1.1\r\nX: ' + b'y' * 200) + op(READ, 0, length=1) +
          op(SERVE, 0) + op(SHUT, 0) + op(SERVE, 0))
    write('tls_session', 'splice-then-stop-source',
          b'\x03' + op(READ, 1, length=1) + op(PEER_SEND, 1, b'abc') + op(SERVE, 1) +
          op(SPLICE, 0, length=200) + op(STOP, 1) + op(SERVE, 0) + op(CLOSE, 0) + op(SERVE, 0))
    write('tls_session', 'large-body-spliced',
          b'\x02' + op(PEER_SEND, 1, b'HTTP/1.1 200 OK\r\nContent-Length: 409600\r\n\r\n') +
          op(READ, 1, length=1) + op(SERVE, 1) + op(PEER_LARGE, 1, length=199) +
          op(SPLICE, 0, length=0x80 | 99) + (op(SERVE, 0) + op(SERVE, 1) + op(PEER_READ, 0)) * 6)
    write('tls_session', 'longest-sni',
          bytes([0xfc]) + op(PEER_SEND, 0, b'GET / HTTP/1.1\r\n\r\n') + op(READ, 0, length=1) +
          op(SERVE, 0))
    write('tls_session', 'large-write-drain',
          b'\x00' + op(LARGE_WRITE, 0, length=255) + (op(SERVE, 0) + op(PEER_READ, 0)) * 8 +
          op(END, 0) + op(SERVE, 0))


def relay_seeds():
    # Byte 0: bit 0 the upstream still connecting, bits 1-7 KB of initial bytes. Then [op, length]:
    # 0/1 peer sends, 2/3 peer reads, 4/5 peer ends writing, 6/7 event on a side, 8/9 close
    # (length byte 0), 10/11 another turn after the budget.
    write('relay_pump', 'both-ways-then-ends',
          bytes([0, 0, 16, 6, 0, 1, 32, 7, 0, 2, 64, 4, 0, 6, 0, 7, 0, 3, 64, 5, 0, 7, 0, 6, 0, 2, 64]))
    write('relay_pump', 'connect-with-initial-bytes',
          bytes([1 | (100 << 1), 7, 0, 6, 0, 3, 255, 7, 0, 3, 255, 7, 0, 3, 255, 10, 0, 3, 255]))
    write('relay_pump', 'full-destination',
          bytes([0] + [1, 255] * 8 + [7, 0] * 4 + [2, 1] + [7, 0, 2, 255] * 4 + [5, 0, 7, 0, 2, 255]))
    write('relay_pump', 'peer-closes-mid-stream', bytes([0, 1, 200, 7, 0, 8, 0, 7, 0, 6, 0, 0, 10, 6, 0]))


if __name__ == '__main__':
    handshake_seeds()
    session_seeds()
    relay_seeds()
