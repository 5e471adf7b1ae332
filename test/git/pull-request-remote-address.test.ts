import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/util/logger.js';
import {
  countConnectionsAround,
  failure,
  listenOn,
  redirectToLoopback,
} from '../support/connection-counter.js';
import { addressTestPullRequest, addressTestService } from '../support/pull-request-support.js';

/**
 * `task pr` clones and pushes an https, http or git:// remote on the server's host with the
 * environment's token, so it connects only where the checkout may (http-target.ts): a token
 * holder's environment URL naming loopback made the host connect there, a 302 was followed, and
 * git's error came back to the caller, telling whether the port answered (review 2, finding A3).
 * Real listeners count the connections git makes.
 */

const TOKEN = 'SECRET-PR-TOKEN-8812';

describe("a pull request's clone of an https, http or git:// remote", () => {
  const listener = countConnectionsAround();

  const request = (taskId: string, repository: string) =>
    addressTestPullRequest(taskId, repository, { username: 'x-access-token', password: TOKEN });
  const logged: string[] = [];
  const service = (allow?: string[]) =>
    addressTestService(allow, {
      logger: createLogger(
        'info',
        new Writable({
          write(chunk: Buffer, _encoding, done) {
            logged.push(chunk.toString('utf8'));
            done();
          },
        }),
      ),
    });

  it('does not connect to a loopback address unless the operator allows it', async () => {
    for (const repository of [
      `http://127.0.0.1:${listener.port}/srv/app.git`,
      `https://localhost:${listener.port}/srv/app.git`,
      `git://127.0.0.1:${listener.port}/srv/app.git`,
    ]) {
      const refused = await failure(service().open(request('task_praddr1', repository)));
      expect(refused).toContain('its address is refused');
      expect(refused).toContain('BERTH_SETUP_ALLOW');
      expect(refused).toContain('nothing was pushed');
      expect(refused).not.toContain(TOKEN);
    }
    expect(listener.count()).toBe(0);

    const allowed = await failure(
      service(['127.0.0.1/32']).open(
        request('task_praddr2', `http://localhost:${listener.port}/srv/app.git`),
      ),
    );
    expect(allowed).toContain('could not clone');
    expect(listener.count()).toBe(1);
  });

  it('says the same whether the port answered or not, and logs git’s own message', async () => {
    // A port nothing listens on: the listener's, closed for a moment.
    const closed = createServer();
    const closedPort = await listenOn(closed);
    await new Promise((resolve) => closed.close(resolve));

    const allowed = service(['127.0.0.1/32']);
    for (const scheme of ['http', 'git']) {
      const answered = await failure(
        allowed.open(request('task_praddr3', `${scheme}://127.0.0.1:${listener.port}/srv/app.git`)),
      );
      const silent = await failure(
        allowed.open(request('task_praddr3', `${scheme}://127.0.0.1:${closedPort}/srv/app.git`)),
      );
      expect(answered).toContain('could not clone');
      expect(answered.replaceAll(String(listener.port), 'PORT')).toBe(
        silent.replaceAll(String(closedPort), 'PORT'),
      );
    }
    const log = logged.join('');
    expect(log).toContain('could not clone');
    expect(log).toMatch(/refused|reset|empty reply|closed|hung up|failed/i);
    expect(log).not.toContain(TOKEN);
  });

  it('follows no redirect, so the token never goes to another port', async () => {
    const { seen, redirectPort, close } = await redirectToLoopback();
    try {
      const message = await failure(
        service(['127.0.0.1/32']).open(
          request('task_praddr4', `http://localhost:${redirectPort}/srv/app.git`),
        ),
      );
      expect(message).toContain('could not clone');
      expect(seen).toEqual([]);
    } finally {
      await close();
    }
  });
});
