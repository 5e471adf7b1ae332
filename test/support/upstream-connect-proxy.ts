import http from 'node:http';
import net from 'node:net';

/**
 * A corporate-style forward proxy for tests, on loopback only: CONNECT tunnels and plain
 * requests in absolute form, to the addresses `resolve` gives (names it does not know are
 * answered 502). It records every request it receives, with the Proxy-Authorization header,
 * and refuses with 407 when `credentials` are set and not sent (or with `refuseWith`).
 */
export interface UpstreamConnectProxy {
  port: number;
  url: string;
  /** What arrived, in order: CONNECT host:port, or METHOD absolute-URL. */
  requests: Array<{ method: string; target: string; authorization: string | undefined }>;
  /** Answer everything with this status from now on (undefined: act normally). */
  refuseWith: number | undefined;
  close(): Promise<void>;
}

export async function startUpstreamConnectProxy(options: {
  resolve: (host: string) => string | undefined;
  credentials?: { user: string; password: string };
  listenHost?: string;
}): Promise<UpstreamConnectProxy> {
  const requests: UpstreamConnectProxy['requests'] = [];
  const sockets = new Set<net.Socket>();
  const expected =
    options.credentials === undefined
      ? undefined
      : `Basic ${Buffer.from(`${options.credentials.user}:${options.credentials.password}`).toString('base64')}`;
  const state: { refuseWith: number | undefined } = { refuseWith: undefined };
  const refusal = (authorization: string | undefined): number | undefined => {
    if (state.refuseWith !== undefined) return state.refuseWith;
    if (expected !== undefined && authorization !== expected) return 407;
    return undefined;
  };
  const server = http.createServer((req, res) => {
    const authorization = req.headers['proxy-authorization'];
    requests.push({ method: req.method ?? '', target: req.url ?? '', authorization });
    const status = refusal(authorization);
    if (status !== undefined) {
      res.writeHead(status, status === 407 ? { 'proxy-authenticate': 'Basic realm="test"' } : {});
      res.end(`test proxy: ${status}\n`);
      return;
    }
    let url: URL;
    try {
      url = new URL(req.url ?? '');
    } catch {
      res.writeHead(400).end();
      return;
    }
    const address = options.resolve(url.hostname);
    if (address === undefined) {
      res.writeHead(502).end('test proxy: unknown name\n');
      return;
    }
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    const upstream = http.request(
      {
        host: address,
        port: Number(url.port || '80'),
        method: req.method,
        path: `${url.pathname}${url.search}`,
        headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    const authorization = req.headers['proxy-authorization'];
    requests.push({ method: 'CONNECT', target: req.url ?? '', authorization });
    socket.on('error', () => undefined);
    const status = refusal(authorization);
    if (status !== undefined) {
      socket.end(
        `HTTP/1.1 ${status} ${status === 407 ? 'Proxy Authentication Required' : 'Refused'}\r\ncontent-length: 0\r\n\r\n`,
      );
      return;
    }
    const match = /^(.+):(\d+)$/.exec(req.url ?? '');
    const address = match === null ? undefined : options.resolve(match[1] ?? '');
    if (match === null || address === undefined) {
      socket.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    const upstream = net.connect({ host: address, port: Number(match[2]) }, () => {
      socket.write('HTTP/1.1 200 Connection established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      socket.pipe(upstream);
      upstream.pipe(socket);
    });
    upstream.on('error', () => socket.destroy());
    socket.once('close', () => upstream.destroy());
  });
  await new Promise<void>((resolve) =>
    server.listen(0, options.listenHost ?? '127.0.0.1', () => resolve()),
  );
  const port = (server.address() as net.AddressInfo).port;
  const userinfo =
    options.credentials === undefined
      ? ''
      : `${encodeURIComponent(options.credentials.user)}:${encodeURIComponent(options.credentials.password)}@`;
  const proxy: UpstreamConnectProxy = {
    port,
    url: `http://${userinfo}${options.listenHost ?? '127.0.0.1'}:${port}`,
    requests,
    get refuseWith() {
      return state.refuseWith;
    },
    set refuseWith(value: number | undefined) {
      state.refuseWith = value;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  return proxy;
}
