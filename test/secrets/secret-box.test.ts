import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SecretBox } from '../../src/secrets/secret-box.js';
import { BerthError } from '../../src/errors/berth-error.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'berth-key-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function refusal(fn: () => unknown): BerthError {
  try {
    fn();
  } catch (error) {
    if (error instanceof BerthError) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

describe('SecretBox', () => {
  it('creates a 32-byte key file with mode 0600 on first start and reuses it', () => {
    const file = join(tempDir(), 'data', 'secret.key');
    const first = SecretBox.load({ secretKeyFile: file });
    expect(first.created).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(file).size).toBe(32);
    const sealed = first.box.seal('env_1', 'TOKEN', 'hunter2-value');
    const second = SecretBox.load({ secretKeyFile: file });
    expect(second.created).toBe(false);
    expect(second.box.open('env_1', 'TOKEN', sealed)).toBe('hunter2-value');
  });

  it('seals with a fresh IV each time and never contains the value', () => {
    const { box } = SecretBox.load({ secretKeyFile: join(tempDir(), 'k') });
    const a = box.seal('env_1', 'S', 'the-same-value');
    const b = box.seal('env_1', 'S', 'the-same-value');
    expect(a).not.toBe(b);
    expect(a).not.toContain('the-same-value');
    expect(Buffer.from(a.slice(3), 'base64').toString('latin1')).not.toContain('the-same-value');
  });

  it('binds a value to its environment and name, and detects tampering', () => {
    const { box } = SecretBox.load({ secretKeyFile: join(tempDir(), 'k') });
    const sealed = box.seal('env_1', 'S', 'value');
    expect(refusal(() => box.open('env_2', 'S', sealed)).message).toMatch(/cannot be decrypted/);
    expect(refusal(() => box.open('env_1', 'T', sealed)).code).toBe('internal');
    const bytes = Buffer.from(sealed.slice(3), 'base64');
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 1;
    expect(refusal(() => box.open('env_1', 'S', `v1:${bytes.toString('base64')}`)).code).toBe(
      'internal',
    );
    const other = SecretBox.load({ secretKeyFile: join(tempDir(), 'other') }).box;
    expect(refusal(() => other.open('env_1', 'S', sealed)).code).toBe('internal');
  });

  it('refuses a key file readable by group or others, naming the fix', () => {
    const file = join(tempDir(), 'k');
    SecretBox.load({ secretKeyFile: file });
    chmodSync(file, 0o644);
    const error = refusal(() => SecretBox.load({ secretKeyFile: file }));
    expect(error.code).toBe('invalid_input');
    expect(error.message).toContain('readable by group or others');
    expect(error.message).toContain(`chmod 600 ${file}`);
  });

  it('refuses a key file of the wrong size', () => {
    const file = join(tempDir(), 'k');
    writeFileSync(file, Buffer.alloc(31), { mode: 0o600 });
    expect(refusal(() => SecretBox.load({ secretKeyFile: file })).message).toMatch(
      /has 31 bytes, a key has exactly 32/,
    );
  });

  it('uses a configured base64 key instead of the file, and refuses a wrong one', () => {
    const dir = tempDir();
    const key = Buffer.alloc(32, 7).toString('base64');
    const { box, created } = SecretBox.load({ secretKeyFile: join(dir, 'never'), secretKey: key });
    expect(created).toBe(false);
    const again = SecretBox.fromKey(Buffer.alloc(32, 7));
    expect(again.open('e', 'n', box.seal('e', 'n', 'v'))).toBe('v');
    expect(() => readFileSync(join(dir, 'never'))).toThrow();
    expect(
      refusal(() => SecretBox.load({ secretKeyFile: join(dir, 'x'), secretKey: 'c2hvcnQ=' }))
        .message,
    ).toMatch(/base64 of exactly 32 bytes, it decodes to 5/);
  });
});
