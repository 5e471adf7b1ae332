import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import tls from 'node:tls';
import { CertificateAuthority } from '../../src/egress/certificate-authority.js';

/**
 * The "outside world" the tool test reaches through the egress proxy: one HTTPS server on the
 * host's loopback answering for several test names (SNI picks the certificate, `Host` picks the
 * site), with certificates from a test CA that the proxy trusts for upstreams (like
 * BERTH_EXTRA_CA_FILES) and the sandbox trusts through its system store:
 *
 * - `files.test`: plain files (`/x`, anything else answers its path);
 * - `git.test`: a bare repository served as static files (git's "dumb" HTTP protocol, GET only)
 *   at `/repo.git`, and the same repository through `git http-backend` (the "smart" protocol, whose
 *   fetch is a POST) at `/smart/repo.git`;
 * - `npm.test`: an npm registry (packument JSON + a tarball made with `npm pack`);
 * - `pypi.test`: a PEP 503 simple index with one pure-Python wheel built here.
 *
 * Every request is recorded as `<host> <method> <path>`.
 */

export const WORLD_HOSTS = ['files.test', 'git.test', 'npm.test', 'pypi.test'] as const;

export interface ToolsWorld {
  ca: CertificateAuthority;
  port: number;
  /** `<host> <method> <url>` of every request served. */
  requests: string[];
  /** The package names and versions it serves. */
  npmPackage: { name: string; version: string };
  pyPackage: { name: string; version: string; wheel: string };
  close(): void;
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(data: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of data) crc = (CRC_TABLE[(crc ^ byte) & 0xff] ?? 0) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** A zip archive with stored (uncompressed) entries: enough for a wheel. */
export function zipStored(entries: ReadonlyArray<{ name: string; data: Buffer }>): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = Buffer.from(entry.name);
    const crc = crc32(entry.data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0, 6);
    local.writeUInt16LE(0, 8);
    local.writeUInt16LE(0, 10);
    local.writeUInt16LE(0x21, 12); // 1980-01-01
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(entry.data.length, 18);
    local.writeUInt32LE(entry.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0, 8);
    central.writeUInt16LE(0, 10);
    central.writeUInt16LE(0, 12);
    central.writeUInt16LE(0x21, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(entry.data.length, 20);
    central.writeUInt32LE(entry.data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(0o100644 * 0x10000, 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, entry.data);
    centrals.push(central, name);
    offset += local.length + name.length + entry.data.length;
  }
  const centralSize = centrals.reduce((n, b) => n + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, ...centrals, end]);
}

/** A pure-Python wheel `name-version-py3-none-any.whl` with one module. */
function buildWheel(name: string, version: string): { file: string; data: Buffer } {
  const info = `${name}-${version}.dist-info`;
  const files: Array<{ name: string; data: Buffer }> = [
    { name: `${name}/__init__.py`, data: Buffer.from(`VALUE = "tiny wheel ${version}"\n`) },
    {
      name: `${info}/METADATA`,
      data: Buffer.from(`Metadata-Version: 2.1\nName: ${name}\nVersion: ${version}\n\n`),
    },
    {
      name: `${info}/WHEEL`,
      data: Buffer.from(
        'Wheel-Version: 1.0\nGenerator: berth-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n',
      ),
    },
  ];
  const record = files
    .map((f) => {
      const digest = createHash('sha256').update(f.data).digest('base64url');
      return `${f.name},sha256=${digest},${f.data.length}`;
    })
    .concat(`${info}/RECORD,,`)
    .join('\n');
  files.push({ name: `${info}/RECORD`, data: Buffer.from(`${record}\n`) });
  return { file: `${name}-${version}-py3-none-any.whl`, data: zipStored(files) };
}

/** A tiny npm package packed with `npm pack` (offline: a local directory). */
function packNpmPackage(dir: string, name: string, version: string): Buffer {
  const src = join(dir, 'npm-src');
  mkdirSync(src, { recursive: true });
  writeFileSync(
    join(src, 'package.json'),
    JSON.stringify({ name, version, main: 'index.js', license: 'MIT' }),
  );
  writeFileSync(join(src, 'index.js'), `module.exports = 'tiny npm package ${version}';\n`);
  const out = execFileSync('npm', ['pack', '--silent', '--pack-destination', dir], {
    cwd: src,
    encoding: 'utf8',
  });
  const file = out.trim().split('\n').pop() ?? '';
  return readFileSync(join(dir, file));
}

/** A bare repository with one commit, prepared for git's dumb HTTP protocol. */
function makeBareRepository(dir: string): string {
  const git = (cwd: string, ...args: string[]) =>
    execFileSync(
      'git',
      ['-C', cwd, '-c', 'user.name=Test', '-c', 'user.email=test@berth.example', ...args],
      {
        encoding: 'utf8',
      },
    );
  const work = join(dir, 'git-work');
  mkdirSync(work);
  git(work, 'init', '-q', '-b', 'main');
  writeFileSync(join(work, 'README'), 'cloned through the egress proxy\n');
  git(work, 'add', 'README');
  git(work, 'commit', '-qm', 'initial');
  const bare = join(dir, 'git-root', 'repo.git');
  mkdirSync(join(dir, 'git-root'));
  execFileSync('git', ['clone', '-q', '--bare', work, bare]);
  git(bare, 'update-server-info');
  return join(dir, 'git-root');
}

/** `git http-backend` as a CGI program: the smart HTTP protocol, as forges speak it. */
function smartGit(
  root: string,
  pathInfo: string,
  url: string,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): void {
  const child = spawn('git', ['http-backend'], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      GIT_PROJECT_ROOT: root,
      GIT_HTTP_EXPORT_ALL: '1',
      PATH_INFO: pathInfo,
      QUERY_STRING: url.includes('?') ? url.slice(url.indexOf('?') + 1) : '',
      REQUEST_METHOD: req.method ?? 'GET',
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      HTTP_CONTENT_ENCODING: req.headers['content-encoding'] ?? '',
      REMOTE_ADDR: '127.0.0.1',
    },
  });
  req.pipe(child.stdin);
  const out: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
  child.on('close', () => {
    const all = Buffer.concat(out);
    const end = all.indexOf('\r\n\r\n');
    const split = end >= 0 ? end + 4 : all.indexOf('\n\n') + 2;
    const head = all.subarray(0, Math.max(0, split)).toString('latin1');
    let status = 200;
    const headers: Record<string, string> = {};
    for (const line of head.split(/\r?\n/)) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === 'status') status = Number.parseInt(value, 10);
      else headers[name] = value;
    }
    const body = all.subarray(Math.max(0, split));
    res.writeHead(status, { ...headers, 'content-length': body.length });
    res.end(body);
  });
}

export async function startToolsWorld(): Promise<ToolsWorld> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-egress-tools-world-'));
  const ca = await CertificateAuthority.create({ commonName: 'egress tools test world' });
  const contexts = new Map<string, tls.SecureContext>();
  for (const host of WORLD_HOSTS) {
    const leaf = await ca.leafFor(host);
    contexts.set(
      host,
      tls.createSecureContext({ key: leaf.privateKeyPem, cert: leaf.certificatePem }),
    );
  }
  const first = await ca.leafFor(WORLD_HOSTS[0]);

  const npmPackage = { name: 'berth-tiny', version: '1.0.0' };
  const tarball = packNpmPackage(dir, npmPackage.name, npmPackage.version);
  const wheel = buildWheel('berth_tiny', '0.1.0');
  const pyPackage = { name: 'berth-tiny', version: '0.1.0', wheel: wheel.file };
  const gitRoot = makeBareRepository(dir);
  const requests: string[] = [];
  let port = 0;

  const server = https.createServer(
    {
      key: first.privateKeyPem,
      cert: first.certificatePem,
      SNICallback: (name, callback) => callback(null, contexts.get(name.toLowerCase())),
    },
    (req, res) => {
      const host = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase();
      const url = req.url ?? '/';
      requests.push(`${host} ${req.method} ${url}`);
      const path = url.split('?')[0] ?? '/';
      const send = (status: number, type: string, body: Buffer | string) => {
        res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
        res.end(body);
      };
      const origin = `https://${host}:${port}`;
      if (host === 'files.test') {
        send(200, 'text/plain', `file ${path} served to ${req.headers['user-agent'] ?? '?'}\n`);
        return;
      }
      if (host === 'git.test' && path.startsWith('/smart/')) {
        smartGit(gitRoot, path.slice('/smart'.length), url, req, res);
        return;
      }
      if (host === 'git.test') {
        const file = resolve(gitRoot, `.${decodeURIComponent(path)}`);
        if (!file.startsWith(gitRoot + sep)) return send(403, 'text/plain', 'outside\n');
        try {
          if (!statSync(file).isFile()) return send(404, 'text/plain', 'not a file\n');
          send(200, 'application/octet-stream', readFileSync(file));
        } catch {
          send(404, 'text/plain', 'not found\n');
        }
        return;
      }
      if (host === 'npm.test') {
        const tarPath = `/${npmPackage.name}/-/${npmPackage.name}-${npmPackage.version}.tgz`;
        if (path === `/${npmPackage.name}`) {
          const packument = {
            name: npmPackage.name,
            'dist-tags': { latest: npmPackage.version },
            versions: {
              [npmPackage.version]: {
                name: npmPackage.name,
                version: npmPackage.version,
                main: 'index.js',
                dist: {
                  tarball: `${origin}${tarPath}`,
                  shasum: createHash('sha1').update(tarball).digest('hex'),
                  integrity: `sha512-${createHash('sha512').update(tarball).digest('base64')}`,
                },
              },
            },
          };
          send(200, 'application/json', JSON.stringify(packument));
        } else if (path === tarPath) {
          send(200, 'application/octet-stream', tarball);
        } else {
          send(404, 'application/json', '{"error":"Not found"}');
        }
        return;
      }
      if (host === 'pypi.test') {
        const digest = createHash('sha256').update(wheel.data).digest('hex');
        if (path === `/simple/${pyPackage.name}/`) {
          send(
            200,
            'text/html',
            `<!DOCTYPE html><html><body><a href="/packages/${wheel.file}#sha256=${digest}">${wheel.file}</a></body></html>\n`,
          );
        } else if (path === `/simple/${pyPackage.name}`) {
          res.writeHead(301, { location: `/simple/${pyPackage.name}/`, 'content-length': 0 });
          res.end();
        } else if (path === `/packages/${wheel.file}`) {
          send(200, 'application/octet-stream', wheel.data);
        } else {
          send(404, 'text/plain', 'not found\n');
        }
        return;
      }
      send(421, 'text/plain', `no site ${host}\n`);
    },
  );
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  port = (server.address() as net.AddressInfo).port;
  return {
    ca,
    port,
    requests,
    npmPackage,
    pyPackage,
    close: () => {
      server.closeAllConnections();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
