import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/adapters/store/sqlite/sqlite-store.js';
import { describeStoreConformance } from './store-conformance.js';

describeStoreConformance('SqliteStore', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-store-'));
  return {
    open: () => Promise.resolve(SqliteStore.open(dir)),
    reopen: () => Promise.resolve(SqliteStore.open(dir)),
    cleanup: () => Promise.resolve(rmSync(dir, { recursive: true, force: true })),
  };
});

describe('SqliteStore file', () => {
  it('is berth.db in the data directory, in WAL mode with foreign keys on', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'berth-store-')), 'nested', 'data');
    const store = SqliteStore.open(dir);
    try {
      await store.migrate();
      expect(store.file).toBe(join(dir, 'berth.db'));
      expect(statSync(dir).mode & 0o077).toBe(0);
    } finally {
      await store.close();
    }
    const raw = new BetterSqlite3(join(dir, 'berth.db'), { readonly: true });
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      const tables = raw
        .prepare("select name from sqlite_master where type = 'table' order by name")
        .pluck()
        .all();
      expect(tables).toEqual(
        expect.arrayContaining(['environments', 'environment_secrets', 'tokens']),
      );
    } finally {
      raw.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
