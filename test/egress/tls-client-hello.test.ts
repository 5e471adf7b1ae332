import net from 'node:net';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { parseClientHello } from '../../src/egress/tls-client-hello.js';

/** Captures the first flight a real TLS client sends. */
async function captureClientHello(options: tls.ConnectionOptions): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const captured = new Promise<Buffer>((resolve) => {
    server.once('connection', (socket) => {
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => {
        chunks.push(c);
        const all = Buffer.concat(chunks);
        if (parseClientHello(all).status !== 'incomplete' || all.length > 70000) {
          socket.destroy();
          resolve(all);
        }
      });
    });
  });
  const client = tls.connect({ host: '127.0.0.1', port, ...options });
  client.on('error', () => undefined);
  const hello = await captured;
  client.destroy();
  server.close();
  return hello;
}

/** Splits one handshake record into two records (legal TLS fragmentation). */
function fragment(hello: Buffer, at: number): Buffer {
  const body = hello.subarray(5);
  const header = (len: number) => Buffer.from([22, 3, 1, len >> 8, len & 0xff]);
  return Buffer.concat([
    header(at),
    body.subarray(0, at),
    header(body.length - at),
    body.subarray(at),
  ]);
}

describe('parseClientHello', () => {
  it('reads SNI and ALPN from a real ClientHello', async () => {
    const hello = await captureClientHello({
      servername: 'registry.example',
      ALPNProtocols: ['h2', 'http/1.1'],
    });
    expect(parseClientHello(hello)).toEqual({
      status: 'complete',
      hello: { serverName: 'registry.example', alpn: ['h2', 'http/1.1'] },
    });
  });

  it('asks for more until the message is complete, also across records', async () => {
    const hello = await captureClientHello({ servername: 'a.example' });
    for (const cut of [1, 3, 5, 9, hello.length - 1])
      expect(parseClientHello(hello.subarray(0, cut)).status).toBe('incomplete');
    const split = fragment(hello, 10);
    expect(parseClientHello(split.subarray(0, 20)).status).toBe('incomplete');
    expect(parseClientHello(split)).toMatchObject({
      status: 'complete',
      hello: { serverName: 'a.example' },
    });
  });

  it('reports a ClientHello without SNI', async () => {
    const hello = await captureClientHello({ servername: '' });
    expect(parseClientHello(hello)).toMatchObject({
      status: 'complete',
      hello: { serverName: undefined },
    });
  });

  it.each([
    ['SSH banner', Buffer.from('SSH-2.0-OpenSSH_9.2p1\r\n')],
    ['HTTP', Buffer.from('GET / HTTP/1.1\r\n')],
    ['TLS alert record', Buffer.from([21, 3, 3, 0, 2, 2, 40])],
    ['SSLv2-style', Buffer.from([0x80, 0x2e, 0x01, 0x00, 0x02])],
    ['handshake that is not a ClientHello', Buffer.from([22, 3, 1, 0, 4, 2, 0, 0, 0])],
    ['zero-length record', Buffer.from([22, 3, 1, 0, 0])],
  ])('refuses %s', (_label, bytes) => {
    expect(parseClientHello(bytes).status).toBe('invalid');
  });

  it('refuses a truncated body inside a complete message', () => {
    // handshake length 6 but body too short for the fixed fields
    const bytes = Buffer.from([22, 3, 1, 0, 10, 1, 0, 0, 6, 3, 3, 0, 0, 0, 0]);
    expect(parseClientHello(bytes)).toMatchObject({ status: 'invalid' });
  });
});
