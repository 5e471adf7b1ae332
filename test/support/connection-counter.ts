import type { Server as HttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';

/**
 * Scaffolding of the address tests (a host-side fetch, clone or push connects only where the
 * server's policy allows): a real TCP listener that counts the connections made to it.
 */

export interface ConnectionCounter {
  server: Server;
  port: number;
  /** How many connections were made so far (each is closed at once). */
  count: () => number;
  close: () => Promise<void>;
}

/** Listens on `host` on a free port. */
export async function listenOn(server: Server | HttpServer, host = '127.0.0.1'): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, host, () => resolve()));
  const address = server.address();
  return typeof address === 'object' && address ? address.port : 0;
}

/** A listener on `host` that counts the connections made to it. */
export async function countConnections(host = '127.0.0.1'): Promise<ConnectionCounter> {
  let count = 0;
  const server = createServer((socket) => {
    count++;
    socket.destroy();
  });
  const port = await listenOn(server, host);
  return {
    server,
    port,
    count: () => count,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The message `promise` fails with, or 'no failure'. */
export const failure = (promise: Promise<unknown>): Promise<string> =>
  promise.then(
    () => 'no failure',
    (error: unknown) => (error instanceof Error ? error.message : String(error)),
  );
