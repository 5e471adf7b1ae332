import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { CertificateAuthority } from '../../src/egress/certificate-authority.js';
import { egressSettingsFromConfig } from '../../src/egress/egress-settings-from-config.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-egress-settings-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const env = (extra: Record<string, string>) => ({
  HOME: dir,
  BERTH_EXTRA_CA_FILES: '',
  ...extra,
});

describe('egress settings from the configuration', () => {
  it('reads the host map, address allowances and extra ports from BERTH_EGRESS_*', () => {
    const config = loadConfig(
      {},
      env({
        BERTH_EGRESS_HOSTS: 'Mirror.Test.=10.1.2.3, registry.test=fd00::5',
        BERTH_EGRESS_ALLOW: '10.1.2.0/24,fd00::/64',
        BERTH_EGRESS_PORTS: '8080, 8443',
      }),
    );
    expect(config.egressHosts).toEqual({ 'mirror.test': '10.1.2.3', 'registry.test': 'fd00::5' });
    expect(config.egressAllow).toEqual(['10.1.2.0/24', 'fd00::/64']);
    expect(config.egressPorts).toEqual([8080, 8443]);
    const none = loadConfig({}, env({}));
    expect([none.egressHosts, none.egressAllow, none.egressPorts]).toEqual([{}, [], []]);
  });

  it.each([
    ['BERTH_EGRESS_HOSTS', 'mirror.test', /BERTH_EGRESS_HOSTS: "mirror.test" is not NAME=ADDRESS/],
    [
      'BERTH_EGRESS_HOSTS',
      'mirror.test=somewhere',
      /egressHosts\.mirror\.test: must be an IP address/,
    ],
    ['BERTH_EGRESS_ALLOW', '127.0.0.1', /egressAllow\[0\]: must be a CIDR range/],
    ['BERTH_EGRESS_PORTS', '70000', /egressPorts\[0\]/],
  ])('refuses %s=%s naming the field', (name, value, message) => {
    expect(() => loadConfig({}, env({ [name]: value }))).toThrow(message);
  });

  it('reads the extra CA files once and names the ones it cannot use', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'site proxy' });
    const good = join(dir, 'site.crt');
    const bad = join(dir, 'notes.txt');
    writeFileSync(good, ca.certificatePem);
    writeFileSync(bad, 'not a certificate\n');
    const config = loadConfig(
      {},
      env({
        BERTH_EXTRA_CA_FILES: `${good}:${bad}:${join(dir, 'missing.crt')}`,
        BERTH_EGRESS_HOSTS: 'a.test=127.0.0.1',
      }),
    );
    const settings = await egressSettingsFromConfig(config);
    expect(settings.options.upstreamCa).toEqual([ca.certificatePem]);
    expect(settings.unreadable).toEqual([bad, join(dir, 'missing.crt')]);
    expect(settings.options.hosts).toEqual({ 'a.test': '127.0.0.1' });
  });
});
