import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerImageEngine } from '../../src/adapters/runtime/docker/docker-image-engine.js';
import { DockerRuntime } from '../../src/adapters/runtime/docker/docker-runtime.js';
import { readHostPackageSettings } from '../../src/images/host-package-settings.js';
import { ImageBuilder } from '../../src/images/image-builder.js';
import { DEBIAN_PROVIDED } from '../../src/images/language-versions.js';

/**
 * Berth's `universal` image carries what issue 3 lists, each checked by using it from inside a
 * sandbox (no network: everything must already be in the image). The image is built with the
 * product's builder when missing (about 20 minutes on a loaded 2-core machine, see
 * docs/runtime.md), so a CI run without it builds it here.
 */

const REF = 'berth/universal:latest';
const runtime = new DockerRuntime({ instance: `universal-${randomBytes(3).toString('hex')}` });
let sandboxId = '';

async function sh(script: string, timeoutMs = 120_000): Promise<string> {
  const result = await runtime.exec(sandboxId, { script, login: true, workdir: '/tmp', timeoutMs });
  expect(result.exitCode, `${script}\n${result.output}`).toBe(0);
  return result.stdout;
}

beforeAll(async () => {
  const engine = new DockerImageEngine();
  if ((await engine.imageId(REF)) === undefined) {
    const started = Date.now();
    await new ImageBuilder({ engine, baseSource: 'debootstrap' }).build('universal', {
      onProgress: () => undefined,
    });
    console.log(`built ${REF} in ${Math.round((Date.now() - started) / 1000)} s`);
  }
  const sandbox = await runtime.create({
    image: REF,
    labels: {},
    resources: { cpus: 2, memoryMb: 2048, pids: 1024 },
  });
  sandboxId = sandbox.id;
  await runtime.start(sandboxId);
}, 3_600_000);

afterAll(async () => {
  if (sandboxId !== '') await runtime.remove(sandboxId);
});

describe('the universal image (docker)', () => {
  it('is labelled as a base image', async () => {
    expect(await new DockerImageEngine().imageLabels(REF)).toMatchObject({
      'berth.managed': 'true',
      'berth.kind': 'base',
      'berth.image': 'universal',
    });
  });

  it('has bash, git, curl, ripgrep and jq', async () => {
    expect(await sh('bash --version | head -1')).toMatch(/^GNU bash, version 5\./);
    expect(await sh('git --version')).toMatch(/^git version 2\./);
    expect(await sh('curl --version | head -1')).toMatch(/^curl \d/);
    expect(await sh('printf "alpha\\nneedle here\\n" > f.txt && rg -n needle f.txt')).toBe(
      '2:needle here\n',
    );
    expect(await sh(`echo '{"a":{"b":[1,2,3]}}' | jq -c '.a.b | map(. * 2)'`)).toBe('[2,4,6]\n');
  });

  it('has the CA bundle, with the host-added certificates in it', async () => {
    const count = Number(
      await sh('grep -c "BEGIN CERTIFICATE" /etc/ssl/certs/ca-certificates.crt'),
    );
    expect(count).toBeGreaterThan(100);
    const bundle = (
      await runtime.readFile(sandboxId, '/etc/ssl/certs/ca-certificates.crt')
    ).toString();
    for (const ca of (await readHostPackageSettings()).extraCaCertificates) {
      const line = ca.pem.split('\n').filter((l) => l.length > 40)[1];
      expect(line, ca.name).toBeDefined();
      expect(bundle, ca.name).toContain(line);
    }
    // Node.js is pointed at the same bundle (it does not read the system store itself).
    expect(await sh('echo "$NODE_EXTRA_CA_CERTS"')).toBe('/etc/ssl/certs/ca-certificates.crt\n');
  });

  it('builds and runs C with gcc and make (build-essential)', async () => {
    const out = await sh(`mkdir -p c && cd c
printf '#include <stdio.h>\\nint main(void){printf("hello from c\\\\n");return 0;}\\n' > hello.c
printf 'hello: hello.c\\n\\tgcc -O2 -o hello hello.c\\n' > Makefile
make -s && ./hello && g++ --version | head -1`);
    expect(out).toMatch(/^hello from c\ng\+\+ /);
  });

  it('has Python 3 with pip, and python3 -m venv makes a working venv', async () => {
    expect(await sh('python3 --version')).toMatch(/^Python 3\.\d+/);
    expect(await sh('python3 -m pip --version')).toMatch(/^pip \d/);
    const out = await sh(
      'python3 -m venv /tmp/venv && /tmp/venv/bin/python -c "import sys; print(sys.prefix)" && /tmp/venv/bin/pip --version',
    );
    expect(out).toMatch(/^\/tmp\/venv\npip \d.* from \/tmp\/venv\//);
  });

  it('has Node.js with npm', async () => {
    expect(await sh('node -e "console.log(process.version)"')).toMatch(/^v\d+\.\d+\.\d+\n$/);
    expect(await sh('npm --version')).toMatch(/^\d+\.\d+\.\d+\n$/);
    // npm works offline on a local package.
    const out = await sh(
      'mkdir -p pkg && cd pkg && npm init -y >/dev/null && npm pkg get name && npm run env --silent | grep -c ^npm_',
    );
    expect(out).toMatch(/^"pkg"\n\d+\n$/);
  });

  it('has Go: go version, a program builds and runs, and $GOPATH/bin is on a login shell PATH', async () => {
    expect(await sh('go version')).toMatch(/^go version go1\.\d+/);
    const out = await sh(`mkdir -p gohello && cd gohello
printf 'package main\\nimport "fmt"\\nfunc main() { fmt.Println("hello from go") }\\n' > main.go
GO111MODULE=off go run main.go
GO111MODULE=off go build -o "$(go env GOPATH)/bin/gohello" main.go`);
    expect(out).toBe('hello from go\n');
    // What lands in $GOPATH/bin (go install) is on PATH in the next login shell.
    expect(await sh('gohello')).toBe('hello from go\n');
  });

  it('has Rust with cargo: a new crate builds and runs, and cargo install lands on PATH', async () => {
    expect(await sh('rustc --version')).toMatch(/^rustc 1\.\d+/);
    const out = await sh(
      'cargo new --quiet --vcs none rusthello && cd rusthello && cargo run --quiet --offline && cargo install --quiet --offline --path .',
    );
    expect(out).toBe('Hello, world!\n');
    // cargo install puts it in ~/.cargo/bin, on PATH in the next login shell.
    expect(await sh('rusthello')).toBe('Hello, world!\n');
  });

  it('has a JDK with Maven: javac compiles, java runs, mvn starts', async () => {
    const out = await sh(`mkdir -p j && cd j
printf 'public class Hello { public static void main(String[] a) { System.out.println("hello from java"); } }\\n' > Hello.java
javac Hello.java && java -cp . Hello`);
    expect(out).toBe('hello from java\n');
    expect(await sh('javac -version 2>&1')).toMatch(/^javac \d+/);
    expect(await sh('mvn --version')).toMatch(/Apache Maven 3\./);
  });

  it('has the language versions that pinned `versions` are checked against (DEBIAN_PROVIDED)', async () => {
    const out = await sh(`python3 -c 'import platform; print(platform.python_version())'
go env GOVERSION
rustc --version
java -version 2>&1 | head -1
ruby -e 'puts RUBY_VERSION'`);
    const [python, go, rust, java, ruby] = out.split('\n');
    expect(python).toBe(DEBIAN_PROVIDED.python);
    expect(go).toBe(`go${DEBIAN_PROVIDED.go}`);
    expect(rust?.split(' ')[1]).toBe(DEBIAN_PROVIDED.rust);
    expect(java).toMatch(new RegExp(`version "${DEBIAN_PROVIDED.java}[."]`));
    expect(ruby).toBe(DEBIAN_PROVIDED.ruby);
  });

  it('has Ruby', async () => {
    expect(await sh('ruby -e "puts [1, 2, 3].sum"')).toBe('6\n');
    expect(await sh('gem --version')).toMatch(/^\d+\.\d+/);
  });
});
