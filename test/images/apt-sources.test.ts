import { mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  debianSourcesFor,
  debootstrapMirror,
  parseDeb822Sources,
  parseOneLineSources,
  renderDeb822,
} from '../../src/images/apt-sources.js';
import { hostSettingsFiles } from '../../src/images/image-builder.js';
import { readHostPackageSettings } from '../../src/images/host-package-settings.js';

const DEB822 = `Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://vendor.example/apt
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/vendor.gpg

Types: deb
Enabled: no
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
`;

describe('apt sources', () => {
  it('parses deb822, skipping disabled entries', () => {
    const sources = parseDeb822Sources(DEB822);
    expect(sources.map((s) => s.uris[0])).toEqual([
      'http://mirror.example/debian',
      'http://mirror.example/debian-security',
      'http://vendor.example/apt',
    ]);
    expect(sources[0]).toMatchObject({
      suites: ['bookworm', 'bookworm-updates'],
      components: ['main', 'contrib'],
    });
  });

  it('parses one-line sources with options', () => {
    const sources = parseOneLineSources(
      '# comment\ndeb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://m.example/debian bookworm main\ndeb-src http://m.example/debian bookworm main\n',
    );
    expect(sources).toEqual([
      {
        types: ['deb'],
        uris: ['http://m.example/debian'],
        suites: ['bookworm'],
        components: ['main'],
        signedBy: '/usr/share/keyrings/debian-archive-keyring.gpg',
      },
      {
        types: ['deb-src'],
        uris: ['http://m.example/debian'],
        suites: ['bookworm'],
        components: ['main'],
      },
    ]);
  });

  it("keeps only Debian's own entries for the suite and picks the mirror from them", () => {
    const sources = parseDeb822Sources(DEB822);
    const kept = debianSourcesFor(sources, 'bookworm');
    expect(kept.map((s) => s.uris[0])).toEqual([
      'http://mirror.example/debian',
      'http://mirror.example/debian-security',
    ]);
    expect(debootstrapMirror(sources, 'bookworm')).toBe('http://mirror.example/debian');
    expect(debootstrapMirror(sources, 'trixie')).toBeUndefined();
    expect(renderDeb822(kept)).toContain(
      'URIs: http://mirror.example/debian-security\nSuites: bookworm-security',
    );
  });

  it("reads the host's settings from files and carries them into a build context", async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'berth-host-'));
    await mkdir(path.join(root, 'apt/sources.list.d'), { recursive: true });
    await writeFile(path.join(root, 'apt/sources.list.d/debian.sources'), DEB822);
    await writeFile(
      path.join(root, 'apt/sources.list.d/old.list.disabled'),
      'deb http://old.example/ bookworm main\n',
    );
    await mkdir(path.join(root, 'ca/corp'), { recursive: true });
    await writeFile(
      path.join(root, 'ca/corp/proxy.crt'),
      '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
    );
    await writeFile(path.join(root, 'ca/readme.txt'), 'not a cert');
    const settings = await readHostPackageSettings({
      aptDir: path.join(root, 'apt'),
      caDir: path.join(root, 'ca'),
      npmCommand: ['echo', 'http://registry.example/npm/'],
    });
    expect(settings.npmRegistry).toBe('http://registry.example/npm/');
    expect(settings.aptSources).toHaveLength(3);
    expect(settings.extraCaCertificates.map((c) => c.name)).toEqual(['corp_proxy.crt']);

    const files = hostSettingsFiles(settings, 'bookworm');
    expect(Object.keys(files).sort()).toEqual([
      'apply-after.sh',
      'apply-before.sh',
      'apt/berth.sources',
      'ca/corp_proxy.crt',
      'npmrc',
    ]);
    expect(files.npmrc?.toString()).toBe(
      'registry=http://registry.example/npm/\ncafile=/etc/ssl/certs/ca-certificates.crt\n',
    );
    expect(files['apt/berth.sources']?.toString()).not.toContain('vendor.example');
  });
});
