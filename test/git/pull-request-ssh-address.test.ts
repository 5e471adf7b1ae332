import { describe, expect, it } from 'vitest';
import { countConnectionsAround, failure } from '../support/connection-counter.js';
import { addressTestPullRequest, addressTestService } from '../support/pull-request-support.js';

/**
 * A pull request's push to an ssh remote runs ssh on the server's host with the environment's
 * key, so it connects only where the checkout may (ssh-target.ts): a token holder's ssh URL
 * naming loopback made the host connect there (issue 20 review). A real listener counts the
 * connections ssh makes (the service clones the remote before it pushes).
 */

const KEY =
  '-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n-----END OPENSSH PRIVATE KEY-----\n';

describe("a pull request's ssh push", () => {
  const listener = countConnectionsAround();

  const request = (taskId: string) =>
    addressTestPullRequest(taskId, `ssh://git@127.0.0.1:${listener.port}/srv/app.git`, {
      username: 'git',
      password: KEY,
    });
  const service = addressTestService;

  it('does not connect to a loopback address unless the operator allows it', async () => {
    const refused = await failure(service().open(request('task_sshaddr1')));
    expect(refused).toContain('its address is refused');
    expect(refused).toContain('BERTH_SETUP_ALLOW');
    expect(listener.count()).toBe(0);

    // Allowed: ssh connects (no sshd here, so the clone fails after the connection).
    const allowed = await failure(service(['127.0.0.1/32']).open(request('task_sshaddr2')));
    expect(allowed).not.toContain('its address is refused');
    expect(listener.count()).toBe(1);
  });
});
