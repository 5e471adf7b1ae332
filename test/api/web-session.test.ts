import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import BetterSqlite3 from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BERTH_BIN, startServe, tempDir } from '../support/cli.js';
import { startTestServer, type TestServer } from './api-server.js';

/** The web UI's session cookie and CSRF rules, and the UI's static files, over real HTTP. */

function cookieOf(setCookie: string | null): string {
  const match = /berth_session=([^;]*)/.exec(setCookie ?? '');
  if (!match?.[1]) throw new Error(`no session cookie in ${setCookie}`);
  return `berth_session=${match[1]}`;
}

describe('web sessions', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  const signIn = async (token: string) => {
    const response = await server.request('POST', '/v1/session', {
      token: null,
      body: { token },
    });
    expect(response.status).toBe(201);
    return {
      cookie: cookieOf(response.headers.get('set-cookie')),
      csrf: (response.json as { csrfToken: string }).csrfToken,
      response,
    };
  };

  it('a wrong token is refused with "token not valid" and sets no cookie', async () => {
    const response = await server.request('POST', '/v1/session', {
      token: null,
      body: { token: 'berth_not-a-real-token' },
    });
    expect(response.status).toBe(401);
    expect((response.json as { message: string }).message).toBe('token not valid');
    expect(response.headers.get('set-cookie')).toBeNull();
  });

  it('a token becomes an HttpOnly, SameSite=Strict cookie; the session id is never in the body', async () => {
    const { cookie, csrf, response } = await signIn(server.adminToken);
    const setCookie = response.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(/HttpOnly/i);
    expect(setCookie).toMatch(/SameSite=Strict/i);
    expect(setCookie).toMatch(/Path=\//);
    const sessionId = cookie.split('=')[1] ?? '';
    expect(sessionId.length).toBeGreaterThan(30);
    expect(response.text).not.toContain(sessionId);
    expect(response.text).not.toContain(server.adminToken);
    expect(csrf.length).toBeGreaterThan(30);

    const who = await server.request('GET', '/v1/session', {
      token: null,
      headers: { cookie },
    });
    expect(who.status).toBe(200);
    expect(who.json).toMatchObject({ name: 'admin', admin: true, csrfToken: csrf });
    const list = await server.request('GET', '/v1/environments', {
      token: null,
      headers: { cookie },
    });
    expect(list.status).toBe(200);
  });

  it('a cookie request that changes something needs the CSRF header of its session and this origin', async () => {
    const { cookie, csrf } = await signIn(server.adminToken);
    const other = await signIn(server.adminToken);
    const attempt = (headers: Record<string, string>, name: string) =>
      server.request('POST', '/v1/tokens', {
        token: null,
        headers: { cookie, ...headers },
        body: { name },
      });
    const none = await attempt({}, 'csrf-none');
    expect(none.status).toBe(403);
    expect((none.json as { message: string }).message).toContain('x-berth-csrf');
    expect((await attempt({ 'x-berth-csrf': other.csrf }, 'csrf-other')).status).toBe(403);
    expect((await attempt({ 'x-berth-csrf': 'x' }, 'csrf-short')).status).toBe(403);
    expect(
      (await attempt({ 'x-berth-csrf': csrf, origin: 'http://evil.example.test' }, 'csrf-origin'))
        .status,
    ).toBe(403);
    expect((await attempt({ 'x-berth-csrf': csrf, origin: 'null' }, 'csrf-null')).status).toBe(403);
    // Behind a proxy that ends TLS the browser's origin is https while the server sees http.
    const secure = server.url.replace('http:', 'https:');
    expect((await attempt({ 'x-berth-csrf': csrf, origin: secure }, 'csrf-ok')).status).toBe(201);
    expect((await attempt({ 'x-berth-csrf': csrf, origin: server.url }, 'csrf-ok2')).status).toBe(
      201,
    );
    // Nothing was made by the refused requests.
    const names = (
      (await server.request('GET', '/v1/tokens')).json as { tokens: { name: string }[] }
    ).tokens.map((t) => t.name);
    expect(names).toContain('csrf-ok');
    expect(names.filter((n) => n.startsWith('csrf-') && !n.startsWith('csrf-ok'))).toEqual([]);
  });

  it('bearer requests are unaffected: no CSRF header needed, a cookie beside them ignored', async () => {
    const response = await server.request('POST', '/v1/tokens', {
      headers: { cookie: 'berth_session=garbage' },
      body: { name: 'bearer-made' },
    });
    expect(response.status).toBe(201);
  });

  it('a page on another origin cannot sign the browser in', async () => {
    const response = await server.request('POST', '/v1/session', {
      token: null,
      headers: { origin: 'http://evil.example.test' },
      body: { token: server.adminToken },
    });
    expect(response.status).toBe(403);
    expect(response.headers.get('set-cookie')).toBeNull();
  });

  it('revoking the token ends its sessions; signing out ends the session', async () => {
    const value = await server.createToken('short-lived');
    const { cookie } = await signIn(value);
    expect(
      (await server.request('GET', '/v1/tasks', { token: null, headers: { cookie } })).status,
    ).toBe(200);
    expect((await server.request('DELETE', '/v1/tokens/short-lived')).status).toBe(204);
    const after = await server.request('GET', '/v1/tasks', { token: null, headers: { cookie } });
    expect(after.status).toBe(401);

    const admin = await signIn(server.adminToken);
    const out = await server.request('DELETE', '/v1/session', {
      token: null,
      headers: { cookie: admin.cookie, 'x-berth-csrf': admin.csrf },
    });
    expect(out.status).toBe(204);
    expect(out.headers.get('set-cookie') ?? '').toMatch(/berth_session=;/);
    const gone = await server.request('GET', '/v1/session', {
      token: null,
      headers: { cookie: admin.cookie },
    });
    expect(gone.status).toBe(401);
    expect((gone.json as { message: string }).message).toContain('sign in again');
  });
});

describe('web sessions across a restart (kept in the store)', () => {
  it('a session signed in before a restart is still signed in after it, with the same CSRF token; the store holds only its hash', async () => {
    const dataDir = tempDir('session-restart');
    const first = await startTestServer({ dataDir });
    const adminToken = first.adminToken;
    let second: TestServer | undefined;
    try {
      const response = await first.request('POST', '/v1/session', {
        token: null,
        body: { token: adminToken },
      });
      expect(response.status).toBe(201);
      const cookie = cookieOf(response.headers.get('set-cookie'));
      const csrf = (response.json as { csrfToken: string }).csrfToken;
      const sessionId = cookie.split('=')[1] ?? '';
      await first.stop();
      // Neither the session id nor the CSRF token is written anywhere in the database.
      const db = new BetterSqlite3(join(dataDir, 'berth.db'), { readonly: true });
      const rows = db.prepare('SELECT * FROM web_sessions').all();
      db.close();
      expect(rows).toHaveLength(1);
      expect(JSON.stringify(rows)).not.toContain(sessionId);
      expect(JSON.stringify(rows)).not.toContain(csrf);

      second = await startTestServer({ dataDir });
      const who = await second.request('GET', '/v1/session', { token: null, headers: { cookie } });
      expect(who.status).toBe(200);
      expect(who.json).toMatchObject({ name: 'admin', csrfToken: csrf });
      const out = await second.request('DELETE', '/v1/session', {
        token: null,
        headers: { cookie, 'x-berth-csrf': csrf },
      });
      expect(out.status).toBe(204);
      const db2 = new BetterSqlite3(join(dataDir, 'berth.db'), { readonly: true });
      expect(db2.prepare('SELECT count(*) AS n FROM web_sessions').get()).toEqual({ n: 0 });
      db2.close();
    } finally {
      await second?.stop();
      await first.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('the web UI at /', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it('serves the page at / and at page paths, with a CSP that allows no inline script', async () => {
    for (const path of ['/', '/login', '/tasks', '/tasks/task_x', '/environments/new']) {
      const response = await server.request('GET', path, { token: null });
      expect(response.status, path).toBe(200);
      expect(response.headers.get('content-type')).toContain('text/html');
      expect(response.text).toContain('<div id="root"></div>');
      const csp = response.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain('unsafe-inline');
      expect(csp).not.toContain('unsafe-eval');
      expect(csp).toContain("object-src 'none'");
      expect(csp).toContain("frame-ancestors 'none'");
      // The built page has no inline script for the CSP to allow.
      expect(response.text).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    }
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(
      (await server.request('GET', '/', { token: null })).text,
    )?.[1];
    expect(script).toBeDefined();
    const js = await server.request('GET', script ?? '', { token: null });
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toContain('text/javascript');
    expect(js.headers.get('cache-control')).toContain('immutable');
  });

  it('leaves the API as it was: /v1, /openapi.json, /health and missing assets are never the page', async () => {
    const missing = await server.request('GET', '/v1/nothing-here');
    expect(missing.status).toBe(404);
    expect((missing.json as { code: string }).code).toBe('not_found');
    const v1 = await server.request('GET', '/v1', { token: null });
    expect(v1.status).toBe(401);
    expect(v1.headers.get('content-type')).toContain('application/json');
    expect((await server.request('GET', '/assets/nope.js', { token: null })).status).toBe(404);
    expect((await server.request('GET', '/openapi.json', { token: null })).json).toMatchObject({
      openapi: '3.1.0',
    });
    expect((await server.request('GET', '/health', { token: null })).json).toMatchObject({
      status: 'ok',
    });
    expect((await server.request('POST', '/tasks', { token: null })).status).toBe(404);
    expect((await server.request('GET', '/../package.json', { token: null })).text).not.toContain(
      '"devDependencies"',
    );
  });
});

describe('berth serve', () => {
  it("prints the web UI's address on start and serves it", async () => {
    const dataDir = tempDir('serve-ui');
    const child = spawn(
      process.execPath,
      [BERTH_BIN, 'serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir],
      {
        env: { ...process.env, BERTH_CONFIG_DIR: join(dataDir, 'config') },
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    try {
      const lines: string[] = [];
      await new Promise<void>((resolve, reject) => {
        const rl = createInterface({ input: child.stdout });
        rl.on('line', (line) => {
          lines.push(line);
          if (line.startsWith('Web UI:')) resolve();
        });
        child.once('exit', (code) =>
          reject(new Error(`serve exited with ${code}: ${lines.join('\n')}`)),
        );
      });
      const api = /listening on (http:\/\/\S+)/.exec(lines.join('\n'))?.[1];
      expect(api).toBeDefined();
      expect(lines).toContain(`Web UI: ${api ?? ''}/ (sign in with a token)`);
    } finally {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
      rmSync(dataDir, { recursive: true, force: true });
    }
    const json = await startServe();
    try {
      expect(json.url).toMatch(/^http:/);
      const first = await fetch(`${json.url}/login`);
      expect(first.headers.get('content-type')).toContain('text/html');
    } finally {
      await json.stop();
    }
  });
});
