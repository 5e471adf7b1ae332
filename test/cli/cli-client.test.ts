import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../api/api-server.js';
import { runBerth } from '../support/cli.js';

/**
 * The CLI on the generated typed client (`berth/client`, issue 13 "One typed API"): its calls go
 * through openapi-fetch over the CLI's node:http transport (src/cli/http-transport.ts), answer
 * and fail as before, and never load Node's fetch implementation (undici), whose load alone
 * costs about as long as Node's start (the speed budget: docs/benchmarks.md, CLI start-up).
 */

const work = mkdtempSync(join(tmpdir(), 'berth-cli-client-'));
/** Preloaded into the CLI: says at exit whether undici was loaded. */
const probe = join(work, 'undici-probe.cjs');
writeFileSync(
  probe,
  "process.on('exit', () => process.stderr.write(`undici-loaded=${process.moduleLoadList.some((m) => m.includes('undici'))}\\n`));\n",
);
const probed = { NODE_OPTIONS: `--require ${probe}` };

describe('the CLI on berth/client', () => {
  let server: TestServer;
  let auth: string[];
  let odd: Server;
  let oddUrl = '';

  beforeAll(async () => {
    server = await startTestServer();
    auth = ['--url', server.url, '--token', server.adminToken];
    // A server that answers something other than JSON.
    odd = createServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/html' });
      response.end('<html>a proxy page</html>');
    });
    await new Promise<void>((resolve) => odd.listen(0, '127.0.0.1', () => resolve()));
    const address = odd.address();
    oddUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  });
  afterAll(async () => {
    await server?.close();
    await new Promise((resolve) => odd?.close(resolve));
    rmSync(work, { recursive: true, force: true });
  });

  it('answers through the typed client without loading undici', async () => {
    const created = await runBerth(['token', 'create', 'reader', '--json', ...auth], probed);
    expect(created.code, created.stderr).toBe(0);
    expect((JSON.parse(created.stdout) as { name: string }).name).toBe('reader');
    expect(created.stderr).toContain('undici-loaded=false');

    const listed = await runBerth(['token', 'list', ...auth], probed);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain('reader');
    expect(listed.stderr).toContain('undici-loaded=false');

    const tasks = await runBerth(['task', 'list', '--limit', '5', ...auth], probed);
    expect(tasks.code, tasks.stderr).toBe(0);
    expect(tasks.stdout).toContain('no tasks');
    expect(tasks.stderr).toContain('undici-loaded=false');
  });

  it("fails as before: the server's error, an unreachable server, an answer that is not JSON", async () => {
    const missing = await runBerth(['task', 'show', 'task_nope', ...auth], probed);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('berth: task task_nope not found');
    expect(missing.stderr).toContain('undici-loaded=false');

    const json = await runBerth(['task', 'show', 'task_nope', '--json', ...auth]);
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: 'not_found' } });

    const badToken = await runBerth(['task', 'list', '--url', server.url, '--token', 'berth_x']);
    expect(badToken.code).toBe(2);
    expect(badToken.stderr.trim()).toBe('berth: the token is not valid');

    const revoked = await runBerth(['token', 'revoke', 'nobody', ...auth]);
    expect(revoked.code).toBe(1);
    expect(revoked.stderr).toContain('nobody');

    const down = await runBerth([
      'task',
      'show',
      'task_x',
      '--url',
      'http://127.0.0.1:9',
      '--token',
      't',
    ]);
    expect(down.code).toBe(1);
    expect(down.stderr.trim()).toBe(
      'berth: cannot reach the Berth server at http://127.0.0.1:9 (is `berth serve` running?)',
    );

    const notJson = await runBerth(['task', 'show', 'task_x', '--url', oddUrl, '--token', 't']);
    expect(notJson.code).toBe(1);
    expect(notJson.stderr).toContain('the server answered 200 with a body that is not JSON');

    const badUrl = await runBerth(['task', 'list', '--url', 'ftp://x', '--token', 't']);
    expect(badUrl.code).toBe(2);
    expect(badUrl.stderr).toContain('is not an http:// or https:// URL');
  });
});
