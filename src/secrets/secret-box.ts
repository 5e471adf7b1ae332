/**
 * SecretBox: encryption at rest for environment secrets.
 *
 * Threat model.
 * - Protects against: someone who reads the database (a copied `berth.db`, its -wal/-shm, a
 *   backup, a PostgreSQL dump) but not the key. Every value is sealed with AES-256-GCM under a
 *   fresh random 12-byte IV; the environment id and the secret's name are the additional
 *   authenticated data, so a ciphertext moved to another environment or renamed to another
 *   secret no longer opens, and any change to a stored value is detected (open fails).
 * - Does not protect against: someone who can read the key (the key file, or the
 *   `BERTH_SECRET_KEY` configuration) together with the database, or who runs code as the Berth
 *   server's user; secret values are in the server's memory while a setup script runs.
 * - The key file is created on first start with mode 0600 in the data directory; a key file of
 *   the wrong size or readable by group or others is refused (never silently repaired), so a
 *   leaked or damaged key is noticed instead of used.
 * - Values never leave this module except to the lifecycle that hands them to a setup or
 *   maintenance process; nothing here logs.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import {
  closeSync,
  fchmodSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { BerthError } from '../errors/berth-error.js';

const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const FORMAT = 'v1';

export interface SecretKeySource {
  /** The key file (created on first start when `secretKey` is not given). */
  secretKeyFile: string;
  /** The key itself, base64 of 32 bytes; takes precedence over the file. */
  secretKey?: string | undefined;
}

function aad(environmentId: string, name: string): Buffer {
  return Buffer.from(`berth-secret\0${environmentId}\0${name}`, 'utf8');
}

function keyFromBase64(text: string): Buffer {
  const trimmed = text.trim();
  const key = /^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)
    ? Buffer.from(trimmed, 'base64')
    : Buffer.alloc(0);
  if (key.length !== KEY_BYTES) {
    throw new BerthError(
      'invalid_input',
      `the configured secret key (BERTH_SECRET_KEY) must be base64 of exactly ${KEY_BYTES} bytes, it decodes to ${key.length}; make one with: openssl rand -base64 32`,
    );
  }
  return key;
}

function readKeyFile(file: string): Buffer {
  const stat = statSync(file);
  if (!stat.isFile())
    throw new BerthError('invalid_input', `the secret key file ${file} is not a regular file`);
  if ((stat.mode & 0o077) !== 0) {
    throw new BerthError(
      'invalid_input',
      `the secret key file ${file} is readable by group or others (mode ${(stat.mode & 0o777).toString(8).padStart(3, '0')}); restrict it with: chmod 600 ${file}`,
    );
  }
  if (stat.size !== KEY_BYTES) {
    throw new BerthError(
      'invalid_input',
      `the secret key file ${file} has ${stat.size} bytes, a key has exactly ${KEY_BYTES}; restore the right file (without it stored secrets cannot be opened)`,
    );
  }
  return readFileSync(file);
}

/** Creates the key file if it does not exist yet; returns false if another process won the race. */
function createKeyFile(file: string): boolean {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  let fd: number;
  try {
    fd = openSync(file, 'wx', 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    fchmodSync(fd, 0o600);
    writeSync(fd, randomBytes(KEY_BYTES));
  } finally {
    closeSync(fd);
  }
  return true;
}

export class SecretBox {
  private constructor(private readonly key: Buffer) {}

  /** A box over a key given directly (32 bytes). */
  static fromKey(key: Uint8Array): SecretBox {
    if (key.length !== KEY_BYTES)
      throw new BerthError('invalid_input', `a secret key has exactly ${KEY_BYTES} bytes`);
    return new SecretBox(Buffer.from(key));
  }

  /**
   * The configured key: `secretKey` (base64) if given, else the key file, created with mode 0600
   * on first start. Refuses a key file of the wrong size or mode with a message that says why.
   */
  static load(source: SecretKeySource): { box: SecretBox; created: boolean } {
    if (source.secretKey !== undefined && source.secretKey !== '') {
      return { box: new SecretBox(keyFromBase64(source.secretKey)), created: false };
    }
    let created = false;
    try {
      statSync(source.secretKeyFile);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      created = createKeyFile(source.secretKeyFile);
    }
    return { box: new SecretBox(readKeyFile(source.secretKeyFile)), created };
  }

  /** Seals a value for one secret of one environment: `v1:` + base64(iv | tag | ciphertext). */
  seal(environmentId: string, name: string, value: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(aad(environmentId, name));
    const ciphertext = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
    return `${FORMAT}:${Buffer.concat([iv, cipher.getAuthTag(), ciphertext]).toString('base64')}`;
  }

  /** Opens a sealed value; fails if the key is wrong or the value was changed or moved. */
  open(environmentId: string, name: string, sealed: string): string {
    const fail = (cause?: unknown) =>
      new BerthError(
        'internal',
        `secret "${name}" of environment ${environmentId} cannot be decrypted (wrong key, or the stored value was changed)`,
        { environmentId, secret: name },
        { cause },
      );
    if (!sealed.startsWith(`${FORMAT}:`)) throw fail();
    const bytes = Buffer.from(sealed.slice(FORMAT.length + 1), 'base64');
    if (bytes.length < IV_BYTES + TAG_BYTES) throw fail();
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, bytes.subarray(0, IV_BYTES));
      decipher.setAAD(aad(environmentId, name));
      decipher.setAuthTag(bytes.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([
        decipher.update(bytes.subarray(IV_BYTES + TAG_BYTES)),
        decipher.final(),
      ]).toString('utf8');
    } catch (error) {
      throw fail(error);
    }
  }
}
