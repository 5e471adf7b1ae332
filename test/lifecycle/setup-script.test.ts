import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  describeScriptFailure,
  exportedVariables,
  formatEnvZero,
  parseEnvZero,
  parseErrorRecords,
  scriptFiles,
  wrapScript,
  type ScriptPhase,
} from '../../src/lifecycle/setup-script.js';

const run = promisify(execFile);

// The wrapper is run by the host's own bash here (the same program the sandbox runs).
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-setup-script-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function runScript(
  script: string,
  strict = true,
  phase: ScriptPhase = 'setup',
  env: Record<string, string> = {},
) {
  const files = scriptFiles(phase, dir);
  await writeFile(files.scriptPath, script);
  const program = wrapScript({ phase, strict, workdir: dir, stateDir: dir });
  let exitCode = 0;
  let stdout: string;
  try {
    ({ stdout } = await run('bash', ['-l', '-c', program], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, ...env },
    }));
  } catch (error) {
    exitCode = (error as { code: number }).code;
    stdout = (error as { stdout: string }).stdout;
  }
  const records = parseErrorRecords(await readFile(files.errorsPath, 'utf8'));
  const start = parseEnvZero(await readFile(files.envStartPath));
  const end = parseEnvZero(await readFile(files.envEndPath));
  return { exitCode, stdout, records, start, end, files };
}

describe('setup script wrapper', () => {
  it('stops at the first failing command and names its line, command and exit code', async () => {
    const script = [
      'echo one',
      'f() {',
      '  ls /does-not-exist-berth',
      '}',
      'true',
      'f',
      'echo never',
    ].join('\n');
    const r = await runScript(script);
    expect(r.exitCode).not.toBe(0);
    expect(r.stdout).toBe('one\n');
    const failure = describeScriptFailure({
      phase: 'setup',
      exitCode: r.exitCode,
      timedOut: false,
      timeoutMs: 1000,
      script,
      scriptPath: r.files.scriptPath,
      records: r.records,
    });
    expect(failure).toMatchObject({
      line: 3,
      lineText: '  ls /does-not-exist-berth',
      command: 'ls /does-not-exist-berth',
    });
    expect(failure?.message).toBe(
      'setup script failed at line 3: `ls /does-not-exist-berth` exited with code 2',
    );
  });

  it('fails on a failing pipeline member and on an unset variable', async () => {
    const pipe = await runScript('echo a\nfalse | cat\necho b\n');
    expect(pipe.exitCode).toBe(1);
    expect(pipe.records.at(-1)?.line).toBe(2);
    const unset = await runScript('echo "$NOT_SET_ANYWHERE"\necho b\n');
    expect(unset.exitCode).not.toBe(0);
    expect(unset.stdout).toBe('');
  });

  it('goes on after a failure when strict mode is off', async () => {
    const r = await runScript('false\necho still here\n', false);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('still here\n');
  });

  it('reports an explicit exit without a line', async () => {
    const script = 'echo a\nexit 7\n';
    const r = await runScript(script);
    const failure = describeScriptFailure({
      phase: 'maintenance',
      exitCode: r.exitCode,
      timedOut: false,
      timeoutMs: 1,
      script,
      scriptPath: r.files.scriptPath,
      records: r.records,
    });
    expect(failure?.message).toBe('maintenance script exited with code 7');
  });

  it('captures exported variables, including values with newlines, and withholds secret ones', async () => {
    const script = [
      'export GREETING="hello',
      'world"',
      'export PATH="$PATH:/opt/tool/bin"',
      'LOCAL_ONLY=1',
      'export TOKEN_COPY="Bearer $MY_SECRET"',
      'cd /',
    ].join('\n');
    const r = await runScript(script, true, 'setup', { MY_SECRET: 'abc123', KEEP: 'same' });
    expect(r.exitCode).toBe(0);
    const { exports, withheld } = exportedVariables(r.start, r.end, ['abc123']);
    expect(exports.GREETING).toBe('hello\nworld');
    expect(exports.PATH).toMatch(/:\/opt\/tool\/bin$/);
    expect(exports).not.toHaveProperty('LOCAL_ONLY');
    expect(exports).not.toHaveProperty('KEEP');
    expect(exports).not.toHaveProperty('PWD');
    expect(exports).not.toHaveProperty('TOKEN_COPY');
    expect(withheld).toEqual(['TOKEN_COPY']);
  });

  it('runs the script in the workspace with its own line numbers in a login shell', async () => {
    const r = await runScript('pwd\nshopt -q login_shell && echo login\n');
    expect(r.stdout).toBe(`${dir}\nlogin\n`);
  });
});

describe('env -0 files', () => {
  it('round-trip', () => {
    const vars = { A: 'x=y', B: 'multi\nline', C: '' };
    expect(Object.fromEntries(parseEnvZero(formatEnvZero(vars)))).toEqual(vars);
  });
});
