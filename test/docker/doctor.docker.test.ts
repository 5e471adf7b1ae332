import { describe, expect, it } from 'vitest';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBerth, tempDir } from '../support/cli.js';

interface Check {
  name: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

async function doctor(env: Record<string, string>, dataDir = tempDir('doctor')) {
  const r = await runBerth(['doctor', '--json', '--no-registries', '--data-dir', dataDir], env);
  return { code: r.code, report: JSON.parse(r.stdout) as { ok: boolean; checks: Check[] } };
}

describe('berth doctor (docker)', () => {
  it('finds the running engine and checks the images and the data directory', async () => {
    const { report } = await doctor({});
    const engine = report.checks.find((c) => c.name === 'docker engine');
    expect(engine?.ok).toBe(true);
    expect(engine?.detail).toMatch(/API 1\.\d+/);
    const minimal = report.checks.find((c) => c.name === 'image berth/minimal:latest');
    expect(minimal).toBeDefined();
    if (!minimal?.ok) expect(minimal?.fix).toBe('npx berth image build minimal');
    expect(report.checks.find((c) => c.name === 'data directory')?.ok).toBe(true);
    // setup.sh builds the egress proxy's native tunnel relay; doctor says tunnels use it.
    expect(report.checks.find((c) => c.name === 'tunnel relay')).toMatchObject({
      ok: true,
      detail: expect.stringMatching(/native relay/) as unknown,
    });
  });

  it('says what is missing and the command that fixes it when no engine answers', async () => {
    const { code, report } = await doctor({ BERTH_DOCKER_SOCKET: '/nonexistent/docker.sock' });
    expect(code).toBe(1);
    const engine = report.checks.find((c) => c.name === 'docker engine');
    expect(engine?.ok).toBe(false);
    expect(engine?.detail).toContain('/nonexistent/docker.sock');
    expect(engine?.fix).toMatch(/dockerd|setup\.sh/);
  });

  it('flags a secret key file that others can read', async () => {
    const dataDir = tempDir('doctor-key');
    const key = join(dataDir, 'secret.key');
    writeFileSync(key, Buffer.alloc(32, 1));
    chmodSync(key, 0o644);
    const { report } = await doctor({}, dataDir);
    const check = report.checks.find((c) => c.name === 'secret key');
    expect(check?.ok).toBe(false);
    expect(check?.fix).toBe(`chmod 600 ${key}`);
  });

  it('flags a data directory it cannot write', async () => {
    const parent = join(tempDir('doctor-file'), 'a-file');
    writeFileSync(parent, 'not a directory');
    const { report } = await doctor({}, join(parent, 'data'));
    const check = report.checks.find((c) => c.name === 'data directory');
    expect(check?.ok).toBe(false);
    expect(check?.fix).toMatch(/--data-dir/);
  });
});
