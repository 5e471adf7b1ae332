import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A private git server for the tests: `git http-backend` (the smart HTTP protocol, clone, fetch
 * and push) behind HTTP Basic authentication, as a real HTTP server on an address of this machine.
 * A request without the right `Authorization: Basic user:password` gets 401 with a
 * `WWW-Authenticate` challenge, as git hosts answer; every request's Authorization header is
 * recorded so tests can say which credentials were used.
 */
export class GitHttpServer {
  readonly seen = { authorized: 0, refused: 0, authorizations: [] as string[] };
  /** The accepted password (a token); change it to make the client's wrong. */
  password: string;
  private server: Server | undefined;
  private base = '';

  constructor(
    private readonly root: string,
    readonly username: string,
    password: string,
    /** Serve without asking for credentials (a public repository); requests are still counted. */
    private readonly anonymous = false,
  ) {
    this.password = password;
  }

  /** Every request seen, in order (method and path). */
  readonly requests: string[] = [];

  async start(host = '127.0.0.1'): Promise<void> {
    const server = createServer((req, res) => this.handle(req, res));
    server.listen(0, host);
    await once(server, 'listening');
    this.server = server;
    this.base = `http://${host}:${(server.address() as AddressInfo).port}`;
  }

  /** The URL of a repository under the root (no credentials in it). */
  url(name: string): string {
    return `${this.base}/${name}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.requests.push(`${req.method ?? ''} ${req.url ?? ''}`);
    const auth = req.headers.authorization ?? '';
    this.seen.authorizations.push(auth);
    const wanted = `Basic ${Buffer.from(`${this.username}:${this.password}`).toString('base64')}`;
    if (auth !== wanted && !this.anonymous) {
      this.seen.refused++;
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="berth test git"' });
      res.end('Authentication required\n');
      return;
    }
    this.seen.authorized++;
    const u = new URL(req.url ?? '/', 'http://x');
    const cgi = spawn('git', ['http-backend'], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        GIT_PROJECT_ROOT: this.root,
        GIT_HTTP_EXPORT_ALL: '1',
        PATH_INFO: u.pathname,
        QUERY_STRING: u.search.slice(1),
        REQUEST_METHOD: req.method ?? 'GET',
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        // With an authenticated user, http-backend allows pushes (receive-pack) too.
        REMOTE_USER: this.username,
        REMOTE_ADDR: '127.0.0.1',
      },
    });
    req.pipe(cgi.stdin);
    let head = Buffer.alloc(0);
    let headersDone = false;
    cgi.stdout.on('data', (chunk: Buffer) => {
      if (headersDone) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      headersDone = true;
      let status = 200;
      for (const line of head.subarray(0, end).toString().split('\r\n')) {
        const [name = '', ...rest] = line.split(':');
        const value = rest.join(':').trim();
        if (name.toLowerCase() === 'status') status = Number(value.split(' ')[0]);
        else res.setHeader(name, value);
      }
      res.writeHead(status);
      res.write(head.subarray(end + 4));
    });
    cgi.stdout.on('end', () => res.end());
  }
}
