import { describe, expect, it } from 'vitest';
import type { AttemptEventBody } from '../../src/domain/task/attempt-event.js';
import { CacheBuildLock } from '../../src/lifecycle/cache-build-lock.js';
import { PhaseOutput } from '../../src/lifecycle/phase-output.js';
import { parseNumstat } from '../../src/lifecycle/results.js';
import { scanPatterns } from '../../src/lifecycle/secret-scan.js';
import { SecretMasker } from '../../src/secrets/secret-masker.js';

describe('PhaseOutput', () => {
  it('masks a secret split across chunks and a character split across chunks, and keeps a tail', () => {
    const events: AttemptEventBody[] = [];
    const output = new PhaseOutput(new SecretMasker(['hunter2-token']), (e) => events.push(e));
    const text = Buffer.from('token=hunter2-token é done\n', 'utf8');
    // Cut inside the secret and inside the two bytes of "é".
    const cuts = [9, 14, text.indexOf(0xc3) + 1];
    let from = 0;
    for (const cut of [...cuts, text.length]) {
      output.onOutput({ stream: 'stdout', data: text.subarray(from, cut) });
      from = cut;
    }
    output.onOutput({ stream: 'stderr', data: Buffer.from('warn\n') });
    output.end();
    const stdout = events
      .filter((e) => e.type === 'log' && e.stream === 'stdout')
      .map((e) => (e.type === 'log' ? e.text : ''))
      .join('');
    expect(stdout).toBe('token=*** é done\n');
    expect(JSON.stringify(events)).not.toContain('hunter2');
    expect(output.tail()).toContain('warn');
  });
});

describe('CacheBuildLock', () => {
  it('runs one build per key and lets the others wait for its value or its failure', async () => {
    const lock = new CacheBuildLock();
    let builds = 0;
    let release: (value: string) => void = () => undefined;
    const build = () => {
      builds++;
      return new Promise<string>((resolve) => (release = resolve));
    };
    const first = lock.once('env:key', undefined, build);
    const second = lock.once('env:key', undefined, build);
    const other = lock.once('env:other', undefined, () => Promise.resolve('x'));
    release('image-1');
    expect(await first).toEqual({ value: 'image-1', waited: false });
    expect(await second).toEqual({ value: 'image-1', waited: true });
    expect(await other).toEqual({ value: 'x', waited: false });
    expect(builds).toBe(1);
    const failing = lock.once('env:key', undefined, () =>
      Promise.reject(new Error('setup failed')),
    );
    const waiter = lock.once('env:key', undefined, build);
    await expect(failing).rejects.toThrow('setup failed');
    await expect(waiter).rejects.toThrow('setup failed');
    expect(lock.isBuilding('env:key')).toBe(false);
  });

  it('stops a waiter whose signal aborts while the build goes on', async () => {
    const lock = new CacheBuildLock();
    let release: (value: string) => void = () => undefined;
    const first = lock.once(
      'env:key',
      undefined,
      () => new Promise<string>((resolve) => (release = resolve)),
    );
    const cancel = new AbortController();
    const waiter = lock.once('env:key', cancel.signal, () => Promise.resolve('never'));
    cancel.abort(new Error('cancelled by request'));
    await expect(waiter).rejects.toThrow('cancelled by request');
    expect(lock.isBuilding('env:key')).toBe(true);
    release('image-1');
    expect(await first).toEqual({ value: 'image-1', waited: false });
  });
});

describe('results', () => {
  it('reads numstat with binary files marked and paths with spaces and tabs', () => {
    const text = '3\t1\tsrc/a.ts\0-\t-\timg/logo.png\0' + '1\t0\tdir with space/b\tc.txt\0';
    expect(parseNumstat(text)).toEqual([
      { path: 'src/a.ts', added: 3, removed: 1, binary: false },
      { path: 'img/logo.png', added: null, removed: null, binary: true },
      { path: 'dir with space/b\tc.txt', added: 1, removed: 0, binary: false },
    ]);
  });
});

describe('secret scan patterns', () => {
  it('searches each line of a value, skipping PEM armour and too short values', () => {
    const pem = '-----BEGIN KEY-----\nMIIBOgIBAAJBAK\nx\n-----END KEY-----';
    expect(scanPatterns(['abc', 'long-token', pem, 'long-token'])).toEqual([
      'long-token',
      'MIIBOgIBAAJBAK',
    ]);
  });
});
