import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll } from 'vitest';

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

/**
 * A counting listener on `host` for the enclosing describe block (or file): opened before its
 * tests, closed after them.
 */
export function countConnectionsAround(
  host = '127.0.0.1',
): Pick<ConnectionCounter, 'port' | 'count'> {
  let counter: ConnectionCounter | undefined;
  beforeAll(async () => {
    counter = await countConnections(host);
  });
  afterAll(async () => {
    await counter?.close();
  });
  const open = (): ConnectionCounter => {
    if (!counter) throw new Error('the connection counter is open only while the tests run');
    return counter;
  };
  return {
    get port() {
      return open().port;
    },
    count: () => open().count(),
  };
}

/** The message `promise` fails with, or 'no failure'. */
export const failure = (promise: Promise<unknown>): Promise<string> =>
  promise.then(
    () => 'no failure',
    (error: unknown) => (error instanceof Error ? error.message : String(error)),
  );

/**
 * An http server on loopback that asks for a password (401, then 404), noting each request
 * (`METHOD URL AUTHORIZATION`) in `seen`, and a redirector on another port whose every answer is
 * a 302 to it: a client that follows no redirect leaves `seen` empty.
 */
export async function redirectToLoopback(): Promise<{
  seen: string[];
  redirectPort: number;
  close: () => Promise<void>;
}> {
  const seen: string[] = [];
  const internal = createHttpServer((req, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? '-'}`);
    res.writeHead(req.headers.authorization ? 404 : 401, {
      'www-authenticate': 'Basic realm="x"',
    });
    res.end();
  });
  let internalPort = 0;
  const redirector: HttpServer = createHttpServer((req, res) => {
    res.writeHead(302, {
      location: `http://127.0.0.1:${internalPort}/internal${req.url ?? '/'}`,
    });
    res.end();
  });
  internalPort = await listenOn(internal);
  const redirectPort = await listenOn(redirector);
  return {
    seen,
    redirectPort,
    close: async () => {
      await new Promise((resolve) => internal.close(resolve));
      await new Promise((resolve) => redirector.close(resolve));
    },
  };
}
