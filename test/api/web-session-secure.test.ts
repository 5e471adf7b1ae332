import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { startTestServer, type TestServer } from './api-server.js';

/**
 * The session cookie is `Secure` when the browser reaches the server over HTTPS: said by
 * BERTH_PUBLIC_URL when a proxy ends TLS in front of it (the server itself sees plain HTTP).
 * X-Forwarded-Proto is any client's to send and is not believed.
 */

const PUBLIC_URL = 'https://berth.example.test';

async function signInAndOut(server: TestServer, headers: Record<string, string> = {}) {
  const signIn = await server.request('POST', '/v1/session', {
    token: null,
    headers,
    body: { token: server.adminToken },
  });
  expect(signIn.status, signIn.text).toBe(201);
  const setCookie = signIn.headers.get('set-cookie') ?? '';
  const cookie = /berth_session=[^;]*/.exec(setCookie)?.[0] ?? '';
  expect(cookie).not.toBe('');
  const signOut = await server.request('DELETE', '/v1/session', {
    token: null,
    headers: {
      ...headers,
      cookie,
      'x-berth-csrf': (signIn.json as { csrfToken: string }).csrfToken,
    },
  });
  expect(signOut.status, signOut.text).toBe(204);
  return { signedIn: setCookie, signedOut: signOut.headers.get('set-cookie') ?? '' };
}

describe('web sessions: the Secure cookie attribute', () => {
  let plain: TestServer;
  let proxied: TestServer;
  beforeAll(async () => {
    plain = await startTestServer();
    proxied = await startTestServer({ env: { BERTH_PUBLIC_URL: PUBLIC_URL } });
  });
  afterAll(async () => {
    await plain?.close();
    await proxied?.close();
  });

  it('is set, on signing in and out, when BERTH_PUBLIC_URL is https', async () => {
    const { signedIn, signedOut } = await signInAndOut(proxied);
    // Only a secure page of this very host can set a __Host- cookie (no cookie tossing).
    expect(signedIn).toMatch(/^__Host-berth_session=/);
    expect(signedOut).toMatch(/^__Host-berth_session=;/);
    expect(signedIn).toMatch(/;\s*Secure(;|$)/i);
    expect(signedIn).toMatch(/HttpOnly/i);
    expect(signedIn).toMatch(/SameSite=Strict/i);
    expect(signedOut).toMatch(/berth_session=;/);
    expect(signedOut).toMatch(/;\s*Secure(;|$)/i);
  });

  it('is not set over plain HTTP without it, whatever X-Forwarded-Proto says', async () => {
    for (const headers of [{}, { 'x-forwarded-proto': 'https' }, { forwarded: 'proto=https' }]) {
      const { signedIn, signedOut } = await signInAndOut(plain, headers);
      expect(signedIn, JSON.stringify(headers)).not.toMatch(/Secure/i);
      expect(signedIn, JSON.stringify(headers)).toMatch(/^berth_session=/);
      expect(signedOut, JSON.stringify(headers)).not.toMatch(/Secure/i);
    }
  });

  it('BERTH_PUBLIC_URL must be an http(s) URL', () => {
    for (const bad of ['berth.example.test', 'ftp://berth.example.test', 'javascript:alert(1)'])
      expect(() => loadConfig({}, { HOME: '/tmp', BERTH_PUBLIC_URL: bad }), bad).toThrow(
        /publicUrl/,
      );
    expect(loadConfig({}, { HOME: '/tmp', BERTH_PUBLIC_URL: PUBLIC_URL }).publicUrl).toBe(
      PUBLIC_URL,
    );
  });
});
