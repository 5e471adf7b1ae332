import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { egressSettingsFromConfig } from '../../src/egress/egress-settings-from-config.js';
import { SetupNetworkGuard } from '../../src/egress/setup-network-guard.js';
import { upstreamProxyDoctorCheck } from '../../src/egress/upstream-proxy-doctor-check.js';
import type { SetupNetworkFirewallSpec } from '../../src/adapters/firewall/setup-network-firewall.js';

// The server's corporate proxy from its environment to the egress proxy, the setup network and
// `berth doctor` (issue 19 item 7); its password must show nowhere.

const PASSWORD = 'Hunter2-corp-pass';
let dataDir: string;
let listener: net.Server;
let listenerPort: number;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'berth-upstream-proxy-'));
  listener = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', () => resolve()));
  listenerPort = (listener.address() as net.AddressInfo).port;
});
afterAll(async () => {
  await new Promise<void>((resolve) => listener.close(() => resolve()));
  rmSync(dataDir, { recursive: true, force: true });
});

function config(env: Record<string, string>) {
  return loadConfig({ dataDir }, { HOME: dataDir, BERTH_EXTRA_CA_FILES: '', ...env });
}

describe('the upstream proxy in the configuration', () => {
  it('is read from HTTPS_PROXY with NO_PROXY and reaches the egress enforcer', async () => {
    const c = config({
      HTTPS_PROXY: `http://svc:${PASSWORD}@proxy.corp.test:3128`,
      NO_PROXY: 'intranet.test',
    });
    expect(c.upstreamProxy?.https).toMatchObject({ host: 'proxy.corp.test', port: 3128 });
    expect(c.upstreamProxy?.https?.authorization).toMatch(/^Basic /);
    expect(c.upstreamProxy?.http).toBeUndefined();
    expect(JSON.stringify(c)).not.toContain(PASSWORD);
    expect(JSON.stringify(c)).not.toContain(c.upstreamProxy?.https?.authorization);
    const egress = await egressSettingsFromConfig(c);
    expect(egress.options.upstreamProxy).toBe(c.upstreamProxy);
  });

  it('refuses to go out with a proxy URL it cannot use, naming the variable and not the password', async () => {
    const c = config({ HTTPS_PROXY: `https://svc:${PASSWORD}@proxy.test` });
    expect(c.upstreamProxy).toBeUndefined();
    await expect(egressSettingsFromConfig(c)).rejects.toThrow(
      /^configuration: HTTPS_PROXY: only an http:\/\/ upstream proxy is supported/,
    );
    const doctor = await upstreamProxyDoctorCheck(c);
    expect(doctor).toMatchObject({ ok: false });
    expect(doctor.fix).toContain('BERTH_UPSTREAM_PROXY');
    const socks = config({ BERTH_UPSTREAM_PROXY: `socks5://svc:${PASSWORD}@proxy.test` });
    expect(socks.upstreamProxyProblem).toContain('BERTH_UPSTREAM_PROXY');
    expect(JSON.stringify([c, socks, doctor])).not.toContain(PASSWORD);
  });

  it('is absent without a proxy variable', () => {
    expect(config({}).upstreamProxy).toBeUndefined();
  });
});

describe('setup behind the upstream proxy', () => {
  it('opens the proxy address on the setup network and gives scripts the proxy without credentials', async () => {
    const installed: SetupNetworkFirewallSpec[] = [];
    const c = config({
      BERTH_UPSTREAM_PROXY: `http://svc:${PASSWORD}@proxy.corp.test:3128`,
      NO_PROXY: '.intranet.test',
    });
    const guard = new SetupNetworkGuard({
      allow: ['10.1.0.5/32'],
      upstreamProxy: c.upstreamProxy,
      resolveProxy: (host) =>
        Promise.resolve(host === 'proxy.corp.test' ? ['10.20.30.40', 'fd00::40'] : []),
      firewall: {
        install: (spec) => (installed.push(spec), Promise.resolve({ ipv6Skipped: false })),
        remove: () => Promise.resolve(),
      },
      resolvers: () => [],
      sweep: () => Promise.resolve([]),
    });
    const guarded = await guard.protect('att_proxy');
    expect(installed[0]?.allow).toEqual(['10.1.0.5/32', '10.20.30.40/32', 'fd00::40/128']);
    expect(guarded.description).toContain(
      'upstream proxy: proxy.corp.test:3128 (with credentials) at 10.20.30.40, fd00::40',
    );
    expect(guard.scriptEnv()).toEqual({
      HTTPS_PROXY: 'http://proxy.corp.test:3128',
      https_proxy: 'http://proxy.corp.test:3128',
      HTTP_PROXY: 'http://proxy.corp.test:3128',
      http_proxy: 'http://proxy.corp.test:3128',
      NO_PROXY: 'localhost,127.0.0.1,::1,intranet.test',
      no_proxy: 'localhost,127.0.0.1,::1,intranet.test',
    });
    expect(JSON.stringify([guarded, guard.scriptEnv()])).not.toContain(PASSWORD);
    await guard.release('att_proxy');
  });

  it('changes nothing without an upstream proxy', async () => {
    const installed: SetupNetworkFirewallSpec[] = [];
    const guard = new SetupNetworkGuard({
      firewall: {
        install: (spec) => (installed.push(spec), Promise.resolve({ ipv6Skipped: false })),
        remove: () => Promise.resolve(),
      },
      resolvers: () => [],
      sweep: () => Promise.resolve([]),
    });
    const guarded = await guard.protect('att_plain');
    expect(installed[0]?.allow).toEqual([]);
    expect(guarded.description).not.toContain('upstream proxy');
    expect(guard.scriptEnv()).toEqual({});
  });
});

describe('berth doctor on the upstream proxy', () => {
  it('says none without one', async () => {
    expect(await upstreamProxyDoctorCheck(config({}))).toMatchObject({
      ok: true,
      detail: 'none (the egress proxy connects directly)',
    });
  });

  it('names the proxy in use (no credentials) and whether it answers', async () => {
    const up = await upstreamProxyDoctorCheck(
      config({ HTTPS_PROXY: `http://svc:${PASSWORD}@127.0.0.1:${listenerPort}` }),
    );
    expect(up).toMatchObject({ ok: true });
    expect(up.detail).toContain(
      `HTTPS and tunnels via 127.0.0.1:${listenerPort} (with credentials)`,
    );
    expect(JSON.stringify(up)).not.toContain(PASSWORD);

    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', () => resolve()));
    const closedPort = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const down = await upstreamProxyDoctorCheck(
      config({ BERTH_UPSTREAM_PROXY: `127.0.0.1:${closedPort}` }),
    );
    expect(down).toMatchObject({ ok: false });
    expect(down.detail).toContain(`127.0.0.1:${closedPort} not reachable (ECONNREFUSED)`);
    expect(down.fix).toContain('BERTH_UPSTREAM_PROXY');
  });
});
