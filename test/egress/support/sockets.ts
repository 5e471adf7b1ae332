import { createHash } from 'node:crypto';
import net from 'node:net';

/** Two connected loopback sockets, both half-open capable: [connecting end, accepted end]. */
export async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const near = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await new Promise((resolve) => near.once('connect', resolve));
  const far = await accepted;
  server.close();
  return [near, far];
}

/** Everything a stream sends until its end. */
export function collect(socket: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
  });
}

export const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export async function until(check: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The descriptor number of a connected socket. */
export function descriptorOf(socket: net.Socket): number {
  return (socket as unknown as { _handle: { fd: number } })._handle.fd;
}
