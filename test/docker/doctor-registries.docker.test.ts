import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBerth, tempDir } from '../support/cli.js';
import { lifecycleTestImage } from './lifecycle-support.js';

/**
 * Issue 20 item 10 / issue 19 item 6: `berth doctor` checks, for an image, the package registries
 * its own configuration names (npm's registry, apt's sources, read from the image as the
 * `common-dependencies` preset reads them) through the egress proxy's rules, and says the
 * setting that fixes each failure. The registries are test names mapped with BERTH_EGRESS_HOSTS
 * to a loopback server of this test, a closed loopback port and a private address (refused
 * before any connection): nothing leaves this machine.
 */

const image = `berth-test-doctor-registries:${randomBytes(4).toString('hex')}`;
let server: Server;
let open: number;
let closed: number;

function listen(): Promise<Server> {
  return new Promise((resolve) => {
    const s = createServer((socket) => socket.end());
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
}

function portOf(s: Server): number {
  const address = s.address();
  return typeof address === 'object' && address !== null ? address.port : 0;
}

beforeAll(async () => {
  server = await listen();
  open = portOf(server);
  const spare = await listen();
  closed = portOf(spare);
  await new Promise((resolve) => spare.close(resolve));
  const context = tempDir('doctor-registries');
  // The image's own configuration: npm's registry (project config at /, as the preset reads it)
  // and apt's sources, all on names of this test.
  writeFileSync(
    join(context, 'Dockerfile'),
    [
      `FROM ${lifecycleTestImage()}`,
      'RUN rm -rf /etc/apt/sources.list /etc/apt/sources.list.d && mkdir -p /etc/apt/sources.list.d',
      `RUN printf 'registry=http://mirror.doctor.test:${open}/npm/\\n' > /.npmrc`,
      `RUN printf 'deb http://mirror.doctor.test:${open}/debian bookworm main\\ndeb http://private.doctor.test/debian bookworm main\\ndeb http://closed.doctor.test:${closed}/debian bookworm main\\n' > /etc/apt/sources.list`,
    ].join('\n'),
  );
  execFileSync('docker', ['build', '-q', '-t', image, context], { stdio: 'ignore' });
}, 120_000);

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  try {
    execFileSync('docker', ['rmi', image], { stdio: 'ignore' });
  } catch {
    // not built
  }
});

interface Check {
  name: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

async function doctor(allow: string): Promise<Check[]> {
  const r = await runBerth(['doctor', '--json', '--image', image, '--data-dir', tempDir('doc')], {
    BERTH_EGRESS_HOSTS: `mirror.doctor.test=127.0.0.1,private.doctor.test=10.255.255.1,closed.doctor.test=127.0.0.1`,
    BERTH_EGRESS_ALLOW: allow,
  });
  const report = JSON.parse(r.stdout) as { checks: Check[] };
  return report.checks.filter((c) => c.name.startsWith('registr'));
}

describe('berth doctor: the egress proxy reach to an image registries (docker)', () => {
  it('reads the registries from the image and says the setting that fixes each failure', async () => {
    const byHost = (checks: Check[], host: string) =>
      checks.find((c) => c.name.startsWith(`registry http://${host}`));

    // Nothing opened: every registry sits in a range the proxy refuses by default.
    const refused = await doctor('');
    expect(refused.map((c) => c.name).sort()).toEqual(
      [
        `registry http://closed.doctor.test:${closed} of ${image}`,
        `registry http://mirror.doctor.test:${open} of ${image}`,
        `registry http://private.doctor.test of ${image}`,
      ].sort(),
    );
    expect(byHost(refused, 'mirror.doctor.test')).toMatchObject({
      ok: false,
      detail: expect.stringContaining('loopback address') as unknown,
      fix: expect.stringContaining('BERTH_EGRESS_ALLOW=127.0.0.1/32') as unknown,
    });
    expect(byHost(refused, 'private.doctor.test')).toMatchObject({
      ok: false,
      detail: expect.stringContaining('private (RFC 1918) address') as unknown,
      fix: expect.stringContaining('BERTH_EGRESS_ALLOW=10.255.255.1/32') as unknown,
    });

    // The loopback range opened: the mirror is reached; the closed port says so; the private
    // registry still needs its own range.
    const opened = await doctor('127.0.0.1/32');
    expect(byHost(opened, 'mirror.doctor.test')).toMatchObject({
      ok: true,
      detail: expect.stringContaining(`reached at 127.0.0.1 port ${open}`) as unknown,
    });
    expect(byHost(opened, 'closed.doctor.test')).toMatchObject({
      ok: false,
      detail: expect.stringContaining('ECONNREFUSED') as unknown,
    });
    expect(byHost(opened, 'private.doctor.test')?.ok).toBe(false);
  }, 120_000);
});
