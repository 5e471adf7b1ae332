import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { BerthError } from '../../src/errors/berth-error.js';

/**
 * Where Berth keeps its data: `--data-dir`, then BERTH_DATA_DIR, then $XDG_DATA_HOME/berth, then
 * ~/.local/share/berth. loadConfig is given the variables as a plain object, never this process's.
 */

const HOME = '/home/ada';
const base = { HOME, BERTH_EXTRA_CA_FILES: '' };

describe('the data directory', () => {
  it('defaults to ~/.local/share/berth', () => {
    expect(loadConfig({}, base).dataDir).toBe('/home/ada/.local/share/berth');
  });

  it('uses the home directory of the user when HOME is not set', () => {
    expect(loadConfig({}, { BERTH_EXTRA_CA_FILES: '' }).dataDir).toBe(
      join(homedir(), '.local', 'share', 'berth'),
    );
  });

  it('follows XDG_DATA_HOME, and ignores it when empty', () => {
    expect(loadConfig({}, { ...base, XDG_DATA_HOME: '/data/xdg' }).dataDir).toBe('/data/xdg/berth');
    expect(loadConfig({}, { ...base, XDG_DATA_HOME: '' }).dataDir).toBe(
      '/home/ada/.local/share/berth',
    );
  });

  it('takes BERTH_DATA_DIR over XDG_DATA_HOME, and ignores it when empty', () => {
    const env = { ...base, XDG_DATA_HOME: '/data/xdg', BERTH_DATA_DIR: '/srv/berth' };
    expect(loadConfig({}, env).dataDir).toBe('/srv/berth');
    expect(loadConfig({}, { ...env, BERTH_DATA_DIR: '' }).dataDir).toBe('/data/xdg/berth');
  });

  it('takes --data-dir over BERTH_DATA_DIR and XDG_DATA_HOME', () => {
    const env = { ...base, XDG_DATA_HOME: '/data/xdg', BERTH_DATA_DIR: '/srv/berth' };
    expect(loadConfig({ dataDir: '/mnt/flag' }, env).dataDir).toBe('/mnt/flag');
  });

  it('resolves a relative directory against the working directory', () => {
    expect(loadConfig({ dataDir: 'rel/dir' }, base).dataDir).toBe(resolve('rel/dir'));
    expect(loadConfig({}, { ...base, BERTH_DATA_DIR: './data' }).dataDir).toBe(resolve('data'));
  });

  it('keeps the secret key in the data directory and names the instance after it', () => {
    const a = loadConfig({ dataDir: '/srv/a' }, base);
    const b = loadConfig({}, { ...base, BERTH_DATA_DIR: '/srv/b' });
    expect(a.secretKeyFile).toBe('/srv/a/secret.key');
    expect(b.secretKeyFile).toBe('/srv/b/secret.key');
    expect(a.instance).toMatch(/^d[0-9a-f]{12}$/);
    expect(a.instance).not.toBe(b.instance);
    expect(loadConfig({}, { ...base, BERTH_DATA_DIR: '/srv/a' }).instance).toBe(a.instance);
    expect(
      loadConfig({}, { ...base, BERTH_DATA_DIR: '/srv/a', BERTH_SECRET_KEY_FILE: '/keys/k' })
        .secretKeyFile,
    ).toBe('/keys/k');
  });
});

describe('the store', () => {
  it('is SQLite in the data directory unless BERTH_DATABASE_URL names a PostgreSQL database', () => {
    expect(loadConfig({}, base).databaseUrl).toBeUndefined();
    expect(
      loadConfig({}, { ...base, BERTH_DATABASE_URL: 'postgresql://berth@/berth?host=/run/pg' })
        .databaseUrl,
    ).toBe('postgresql://berth@/berth?host=/run/pg');
  });

  it('refuses a BERTH_DATABASE_URL that is not postgres:// or postgresql://', () => {
    expect(() => loadConfig({}, { ...base, BERTH_DATABASE_URL: 'mysql://x/y' })).toThrow(
      new BerthError(
        'invalid_input',
        'configuration: databaseUrl: must be a postgres:// or postgresql:// URL',
      ),
    );
  });
});

describe('attempts', () => {
  it('runs as many attempts at once as a task may have, by default (best-of-8 fully parallel)', () => {
    const config = loadConfig({}, base);
    expect(config.maxAttempts).toBe(8);
    expect(config.concurrency).toBe(8);
    expect(loadConfig({}, { ...base, BERTH_CONCURRENCY: '2' }).concurrency).toBe(2);
  });
});
