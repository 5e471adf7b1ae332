import { beforeEach, afterEach, describe, expect, it } from 'vitest';
import { BerthError } from '../../src/errors/berth-error.js';
import { newId } from '../../src/domain/ids.js';
import { cacheKey, cacheKeyParts } from '../../src/domain/cache/cache-key.js';
import { parseEnvironmentSpec } from '../../src/domain/environment/environment-file.js';
import type { EnvironmentSpec } from '../../src/domain/environment/environment-spec.js';
import type { Store } from '../../src/ports/store.js';

/**
 * The behaviour every Store adapter must have. An adapter's test file calls
 * `describeStoreConformance('SqliteStore', factory)`; the factory opens a fresh, empty store.
 */

export interface StoreFactory {
  open(): Promise<Store>;
  /** Reopens the same database (a restart). */
  reopen(): Promise<Store>;
  cleanup(): Promise<void>;
}

const T0 = '2026-01-01T00:00:00.000Z';
const T1 = '2026-01-01T01:00:00.000Z';

function spec(name: string, extra: Record<string, unknown> = {}): EnvironmentSpec {
  return parseEnvironmentSpec({ name, repository: 'https://git.example/acme/app.git', ...extra });
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return error instanceof BerthError ? error.code : `not a BerthError: ${String(error)}`;
  }
  return 'no error';
}

export function describeStoreConformance(adapter: string, makeFactory: () => StoreFactory): void {
  describe(`Store conformance: ${adapter}`, () => {
    let factory: StoreFactory;
    let store: Store;

    beforeEach(async () => {
      factory = makeFactory();
      store = await factory.open();
      await store.migrate();
    });

    afterEach(async () => {
      await store.close();
      await factory.cleanup();
    });

    it('migrates idempotently and keeps data across a reopen', async () => {
      await store.migrate();
      const id = newId('environment');
      await store.createEnvironment({
        id,
        spec: spec('app'),
        createdByTokenId: null,
        secrets: [],
        now: T0,
      });
      await store.close();
      store = await factory.reopen();
      await store.migrate();
      expect((await store.getEnvironmentByName('app'))?.id).toBe(id);
    });

    it('creates an environment with its secrets and reads it back by id, name and in the list', async () => {
      const id = newId('environment');
      const created = await store.createEnvironment({
        id,
        spec: spec('payments', { secrets: ['NPM_TOKEN'], env: { CI: '1' } }),
        createdByTokenId: 'tok_creator',
        secrets: [
          { name: 'NPM_TOKEN', ciphertext: 'sealed-1' },
          { name: 'API_KEY', ciphertext: 'sealed-2' },
        ],
        now: T0,
      });
      expect(created).toMatchObject({
        id,
        revision: 1,
        createdAt: T0,
        updatedAt: T0,
        createdByTokenId: 'tok_creator',
        secretNames: ['API_KEY', 'NPM_TOKEN'],
      });
      expect(created.spec.env).toEqual({ CI: '1' });
      expect(created.spec.repository).toEqual({
        url: 'https://git.example/acme/app.git',
        defaultBranch: 'main',
      });
      expect(await store.getEnvironmentById(id)).toEqual(created);
      expect(await store.getEnvironmentByName('payments')).toEqual(created);
      expect(await store.listSecretNames(id)).toEqual(['API_KEY', 'NPM_TOKEN']);
      expect(await store.getSecretCiphertexts(id)).toEqual([
        { name: 'API_KEY', ciphertext: 'sealed-2' },
        { name: 'NPM_TOKEN', ciphertext: 'sealed-1' },
      ]);
    });

    it('lists environments by name with their own secret names', async () => {
      await store.createEnvironment({
        id: newId('environment'),
        spec: spec('zeta'),
        createdByTokenId: null,
        secrets: [{ name: 'Z', ciphertext: 'z' }],
        now: T0,
      });
      await store.createEnvironment({
        id: newId('environment'),
        spec: spec('alpha'),
        createdByTokenId: null,
        secrets: [],
        now: T0,
      });
      const list = await store.listEnvironments();
      expect(list.map((e) => [e.spec.name, e.secretNames])).toEqual([
        ['alpha', []],
        ['zeta', ['Z']],
      ]);
    });

    it('refuses a duplicate name with conflict and stores nothing of the second one', async () => {
      await store.createEnvironment({
        id: newId('environment'),
        spec: spec('dup'),
        createdByTokenId: null,
        secrets: [],
        now: T0,
      });
      const secondId = newId('environment');
      const code = await codeOf(
        store.createEnvironment({
          id: secondId,
          spec: spec('dup'),
          createdByTokenId: null,
          secrets: [{ name: 'S', ciphertext: 'x' }],
          now: T0,
        }),
      );
      expect(code).toBe('conflict');
      expect(await store.getEnvironmentById(secondId)).toBeUndefined();
      expect(await store.getSecretCiphertexts(secondId)).toEqual([]);
      expect(await store.listEnvironments()).toHaveLength(1);
    });

    it('stores nothing when a secret in the same create fails (one transaction)', async () => {
      const id = newId('environment');
      // The same secret name twice violates the secrets' key after the environment row was written.
      const code = await codeOf(
        store.createEnvironment({
          id,
          spec: spec('half'),
          createdByTokenId: null,
          secrets: [
            { name: 'S', ciphertext: 'a' },
            { name: 'S', ciphertext: 'b' },
          ].map((s, i) => (i === 1 ? { ...s, ciphertext: null as unknown as string } : s)),
          now: T0,
        }),
      );
      expect(code).not.toBe('no error');
      expect(await store.getEnvironmentByName('half')).toBeUndefined();
      expect(await store.getSecretCiphertexts(id)).toEqual([]);
    });

    it('updates the spec and the secrets in one step and bumps the revision', async () => {
      const id = newId('environment');
      await store.createEnvironment({
        id,
        spec: spec('web'),
        createdByTokenId: null,
        secrets: [
          { name: 'A', ciphertext: 'a1' },
          { name: 'B', ciphertext: 'b1' },
        ],
        now: T0,
      });
      const updated = await store.updateEnvironment(id, {
        spec: spec('web', { env: { X: 'y' } }),
        setSecrets: [
          { name: 'A', ciphertext: 'a2' },
          { name: 'C', ciphertext: 'c1' },
        ],
        removeSecrets: ['B', 'NEVER_SET'],
        now: T1,
      });
      expect(updated).toMatchObject({
        id,
        revision: 2,
        createdAt: T0,
        updatedAt: T1,
        secretNames: ['A', 'C'],
      });
      expect(updated.spec.env).toEqual({ X: 'y' });
      expect(await store.getSecretCiphertexts(id)).toEqual([
        { name: 'A', ciphertext: 'a2' },
        { name: 'C', ciphertext: 'c1' },
      ]);
    });

    it('refuses a rename, an unknown id and a stale revision, changing nothing', async () => {
      const id = newId('environment');
      await store.createEnvironment({
        id,
        spec: spec('keep'),
        createdByTokenId: null,
        secrets: [{ name: 'A', ciphertext: 'a' }],
        now: T0,
      });
      const change = {
        setSecrets: [{ name: 'B', ciphertext: 'b' }],
        removeSecrets: ['A'],
        now: T1,
      };
      expect(await codeOf(store.updateEnvironment(id, { ...change, spec: spec('renamed') }))).toBe(
        'invalid_input',
      );
      expect(
        await codeOf(store.updateEnvironment('env_missing', { ...change, spec: spec('keep') })),
      ).toBe('not_found');
      expect(
        await codeOf(
          store.updateEnvironment(id, { ...change, spec: spec('keep'), expectedRevision: 7 }),
        ),
      ).toBe('conflict');
      const after = await store.getEnvironmentById(id);
      expect(after).toMatchObject({ revision: 1, updatedAt: T0, secretNames: ['A'] });
      expect(await store.getEnvironmentByName('renamed')).toBeUndefined();
    });

    it('rolls an update back completely when one of its writes fails', async () => {
      const id = newId('environment');
      await store.createEnvironment({
        id,
        spec: spec('atomic'),
        createdByTokenId: null,
        secrets: [{ name: 'A', ciphertext: 'a' }],
        now: T0,
      });
      const code = await codeOf(
        store.updateEnvironment(id, {
          spec: spec('atomic', { env: { CHANGED: '1' } }),
          setSecrets: [{ name: 'B', ciphertext: null as unknown as string }],
          removeSecrets: ['A'],
          now: T1,
        }),
      );
      expect(code).not.toBe('no error');
      const after = await store.getEnvironmentById(id);
      expect(after).toMatchObject({ revision: 1, secretNames: ['A'] });
      expect(after?.spec.env).toEqual({});
    });

    it('deletes an environment with its secrets; the name can be used again', async () => {
      const id = newId('environment');
      await store.createEnvironment({
        id,
        spec: spec('gone'),
        createdByTokenId: null,
        secrets: [{ name: 'A', ciphertext: 'a' }],
        now: T0,
      });
      expect(await store.deleteEnvironment(id)).toBe(true);
      expect(await store.deleteEnvironment(id)).toBe(false);
      expect(await store.getEnvironmentById(id)).toBeUndefined();
      expect(await store.getSecretCiphertexts(id)).toEqual([]);
      await store.createEnvironment({
        id: newId('environment'),
        spec: spec('gone'),
        createdByTokenId: null,
        secrets: [],
        now: T1,
      });
      expect((await store.getEnvironmentByName('gone'))?.createdAt).toBe(T1);
    });

    it('keeps one egress CA per environment: the first write wins, deleted with the environment', async () => {
      const id = newId('environment');
      const other = newId('environment');
      for (const [envId, name] of [
        [id, 'ca-a'],
        [other, 'ca-b'],
      ] as const) {
        await store.createEnvironment({
          id: envId,
          spec: spec(name),
          createdByTokenId: null,
          secrets: [],
          now: T0,
        });
      }
      expect(await store.getEgressCa(id)).toBeUndefined();
      const first = {
        environmentId: id,
        certificatePem: 'cert-1',
        sealedPrivateKey: 'v1:k1',
        createdAt: T0,
      };
      const second = {
        environmentId: id,
        certificatePem: 'cert-2',
        sealedPrivateKey: 'v1:k2',
        createdAt: T1,
      };
      const raced = await Promise.all([
        store.putEgressCaIfAbsent(first),
        store.putEgressCaIfAbsent(second),
      ]);
      expect(raced[0]).toEqual(raced[1]);
      const kept = raced[0];
      expect([first, second]).toContainEqual(kept);
      expect(await store.putEgressCaIfAbsent({ ...second, certificatePem: 'cert-3' })).toEqual(
        kept,
      );
      await store.putEgressCaIfAbsent({ ...first, environmentId: other, certificatePem: 'cert-b' });
      expect((await store.getEgressCa(other))?.certificatePem).toBe('cert-b');

      await store.close();
      store = await factory.reopen();
      expect(await store.getEgressCa(id)).toEqual(kept);

      expect(await store.deleteEnvironment(id)).toBe(true);
      expect(await store.getEgressCa(id)).toBeUndefined();
      expect((await store.getEgressCa(other))?.certificatePem).toBe('cert-b');
    });

    it("keeps the name of a task's submitting token (createdBy), null when none was kept", async () => {
      const env = await store.createEnvironment({
        id: newId('environment'),
        spec: spec('who'),
        createdByTokenId: null,
        secrets: [],
        now: T0,
      });
      const task = (id: string, createdBy?: string | null) => ({
        id,
        environmentId: env.id,
        prompt: 'fix it',
        command: null,
        ref: {},
        repository: null,
        attemptCount: 1,
        ...(createdBy !== undefined ? { createdBy } : {}),
        status: 'queued' as const,
        createdAt: T0,
        updatedAt: T0,
      });
      const named = newId('task');
      const older = newId('task');
      await store.createTask(task(named, 'alice <ünï>'), []);
      await store.createTask(task(older), []);
      await store.close();
      store = await factory.reopen();
      expect((await store.getTask(named))?.createdBy).toBe('alice <ünï>');
      expect((await store.getTask(older))?.createdBy).toBeNull();
      const listed = await store.listTasks({ environmentId: env.id });
      expect(Object.fromEntries(listed.map((t) => [t.id, t.createdBy]))).toEqual({
        [named]: 'alice <ünï>',
        [older]: null,
      });
    });

    it('keeps a cache reset by hand across a restart until an entry of the environment is published', async () => {
      const env = await store.createEnvironment({
        id: newId('environment'),
        spec: spec('reset-mark'),
        createdByTokenId: null,
        secrets: [],
        now: T0,
      });
      const other = await store.createEnvironment({
        id: newId('environment'),
        spec: spec('reset-other'),
        createdByTokenId: null,
        secrets: [],
        now: T0,
      });
      expect(await store.getCacheResetAt(env.id)).toBeUndefined();
      await store.recordCacheReset(env.id, T1);
      await store.close();
      store = await factory.reopen();
      expect(await store.getCacheResetAt(env.id)).toBe(T1);
      expect(await store.getCacheResetAt(other.id)).toBeUndefined();
      // The environment's own row, written by an update, keeps it.
      await store.updateEnvironment(env.id, {
        spec: spec('reset-mark', { env: { A: '1' } }),
        setSecrets: [],
        removeSecrets: [],
        now: T1,
      });
      expect(await store.getCacheResetAt(env.id)).toBe(T1);
      const parts = cacheKeyParts({
        environmentId: env.id,
        baseImageDigest: 'sha256:base',
        repository: { url: 'https://git.example/acme/app.git', defaultBranch: 'main' },
        versions: {},
        env: {},
        secrets: {},
      });
      await store.publishCacheEntry({
        id: newId('cacheEntry'),
        environmentId: env.id,
        key: cacheKey(parts),
        parts,
        image: 'berth-cache:x',
        imageId: 'sha256:x',
        sizeBytes: 1,
        commit: 'abc',
        exportNames: [],
        createdAt: T1,
        expiresAt: T1,
      });
      expect(await store.getCacheResetAt(env.id)).toBeUndefined();
    });

    it("writes an attempt's log for a writer only while it holds the lease and the log ends where it left it", async () => {
      const env = await store.createEnvironment({
        id: newId('environment'),
        spec: spec('lease-log'),
        createdByTokenId: null,
        secrets: [],
        now: T0,
      });
      const taskId = newId('task');
      const attemptId = newId('attempt');
      await store.createTask(
        {
          id: taskId,
          environmentId: env.id,
          prompt: '',
          command: 'true',
          ref: {},
          repository: null,
          attemptCount: 1,
          status: 'queued',
          createdAt: T0,
          updatedAt: T0,
        },
        [
          {
            id: attemptId,
            taskId,
            index: 0,
            phase: 'queued',
            cacheHit: null,
            error: null,
            result: null,
            createdAt: T0,
            startedAt: null,
            finishedAt: null,
          },
        ],
      );
      const log = (seq: number, text: string) => ({
        attemptId,
        seq,
        at: T0,
        type: 'log' as const,
        stream: 'stdout' as const,
        text,
      });
      const old = { leaseOwner: 'orch-old' };
      const fresh = { leaseOwner: 'orch-new' };
      // Queued, nobody's lease: no writer may write.
      expect(await store.appendAttemptEvents([log(1, 'early')], old)).toBe(false);
      await store.claimNextAttempt({ owner: 'orch-old', now: T0, leaseMs: 1000 });
      expect(await store.appendAttemptEvents([log(1, 'a'), log(2, 'b')], old)).toBe(true);
      // Not the lease holder; and the holder itself where the log does not end before its event.
      expect(await store.appendAttemptEvents([log(3, 'other')], fresh)).toBe(false);
      expect(await store.appendAttemptEvents([log(4, 'gap')], old)).toBe(false);
      // Taken over: the old holder's writes are refused in the store, the new holder's kept.
      expect(await store.takeOverExpiredAttempt(attemptId, 'creating', 'orch-new', T1, 1000)).toBe(
        true,
      );
      expect(await store.appendAttemptEvents([log(3, 'late')], old)).toBe(false);
      expect(await store.appendAttemptEvents([log(3, 'new')], fresh)).toBe(true);
      // Ended by the new holder (no lease any more): its own end goes on, the old one's does not.
      expect(
        await store.updateAttempt(attemptId, { phase: 'failed' }, { leaseOwner: 'orch-new' }),
      ).toBe(true);
      expect(await store.appendAttemptEvents([log(4, 'tail')], fresh)).toBe(true);
      expect(await store.appendAttemptEvents([log(3, 'late')], old)).toBe(false);
      const events = await store.listAttemptEvents(attemptId);
      expect(events.map((e) => (e.type === 'log' ? e.text : e.type))).toEqual([
        'a',
        'b',
        'new',
        'tail',
      ]);
    });

    it("keeps an attempt's model conversation, replaced on each store, across a reopen", async () => {
      const env = await store.createEnvironment({
        id: newId('environment'),
        spec: spec('talk'),
        createdByTokenId: null,
        secrets: [],
        now: T0,
      });
      const taskId = newId('task');
      const attemptId = newId('attempt');
      await store.createTask(
        {
          id: taskId,
          environmentId: env.id,
          prompt: 'fix it',
          command: null,
          ref: {},
          repository: null,
          attemptCount: 1,
          status: 'queued',
          createdAt: T0,
          updatedAt: T0,
        },
        [
          {
            id: attemptId,
            taskId,
            index: 0,
            phase: 'queued',
            cacheHit: null,
            error: null,
            result: null,
            createdAt: T0,
            startedAt: null,
            finishedAt: null,
          },
        ],
      );
      expect(await store.getConversation(attemptId)).toBeUndefined();
      const messages = [
        { role: 'system' as const, content: 'You are a coding agent.' },
        { role: 'user' as const, content: 'Fix the tests — ünïcode and "quotes"' },
        {
          role: 'assistant' as const,
          content: null,
          toolCalls: [{ id: 'call_1', name: 'shell', arguments: '{"command":["sh","test.sh"]}' }],
        },
        { role: 'tool' as const, toolCallId: 'call_1', content: `FAIL\n${'x'.repeat(200_000)}` },
        { role: 'assistant' as const, content: 'Fixed it.' },
      ];
      await store.putConversation(attemptId, messages, T0);
      expect(await store.getConversation(attemptId)).toEqual(messages);
      const longer = [...messages, { role: 'user' as const, content: 'And the docs.' }];
      await store.putConversation(attemptId, longer, T1);
      expect(await store.getConversation(attemptId)).toEqual(longer);
      await store.close();
      store = await factory.reopen();
      expect(await store.getConversation(attemptId)).toEqual(longer);
      expect(await store.getConversation('att_unknown')).toBeUndefined();
    });

    it('keeps members by token id: written with the environment, dropped on revocation and delete', async () => {
      const token = (id: string, name: string) =>
        store.createToken({ id, name, hash: `hash-${id}`, admin: false, now: T0 });
      await token('tok_ann', 'ann');
      await token('tok_ben', 'ben');
      await token('tok_cid', 'cid');
      const id = newId('environment');
      const created = await store.createEnvironment({
        id,
        spec: spec('team', { members: ['ben', 'ann'] }),
        createdByTokenId: null,
        memberTokenIds: ['tok_ben', 'tok_ann'],
        secrets: [],
        now: T0,
      });
      expect(created.members).toEqual([
        { tokenId: 'tok_ben', name: 'ben' },
        { tokenId: 'tok_ann', name: 'ann' },
      ]);
      expect(created.spec.members).toEqual(['ben', 'ann']);
      expect((await store.listEnvironments())[0]?.members).toEqual(created.members);

      // An update without members keeps them; with members replaces them.
      const kept = await store.updateEnvironment(id, {
        spec: spec('team', { members: ['ben', 'ann'], env: { A: '1' } }),
        setSecrets: [],
        removeSecrets: [],
        now: T1,
      });
      expect(kept.members).toEqual(created.members);
      const replaced = await store.updateEnvironment(id, {
        spec: spec('team', { members: ['cid', 'ann'] }),
        setSecrets: [],
        removeSecrets: [],
        now: T1,
        memberTokenIds: ['tok_cid', 'tok_ann'],
      });
      expect(replaced.members.map((m) => m.tokenId)).toEqual(['tok_cid', 'tok_ann']);

      // Revoked: not a member, and a new token with the same name is none either.
      await store.revokeToken('tok_ann', T1);
      await token('tok_ann2', 'ann');
      const after = await store.getEnvironmentById(id);
      expect(after?.members).toEqual([{ tokenId: 'tok_cid', name: 'cid' }]);
      expect(after?.spec.members).toEqual(['cid', 'ann']);

      expect(await store.deleteEnvironment(id)).toBe(true);
      const again = await store.createEnvironment({
        id: newId('environment'),
        spec: spec('team'),
        createdByTokenId: null,
        secrets: [],
        now: T1,
      });
      expect(again.members).toEqual([]);
    });

    it('keeps tokens by hash, with a unique live name, revocation and last use', async () => {
      const admin = await store.createToken({
        id: newId('token'),
        name: 'admin',
        hash: 'h-admin',
        admin: true,
        now: T0,
      });
      expect(admin).toEqual({
        id: admin.id,
        name: 'admin',
        admin: true,
        createdAt: T0,
        lastUsedAt: null,
        revokedAt: null,
      });
      const alice = await store.createToken({
        id: newId('token'),
        name: 'alice',
        hash: 'h-alice',
        admin: false,
        now: T1,
      });
      expect(
        await codeOf(
          store.createToken({
            id: newId('token'),
            name: 'alice',
            hash: 'h-other',
            admin: false,
            now: T1,
          }),
        ),
      ).toBe('conflict');

      expect(await store.getTokenByHash('h-alice')).toEqual(alice);
      expect(await store.getTokenByHash('h-nobody')).toBeUndefined();
      expect(await store.getTokenById(admin.id)).toEqual(admin);
      expect(await store.getActiveTokenByName('alice')).toEqual(alice);
      expect(await store.countActiveAdminTokens()).toBe(1);

      await store.touchToken(alice.id, T1);
      expect((await store.getTokenById(alice.id))?.lastUsedAt).toBe(T1);

      const revoked = await store.revokeToken(alice.id, T1);
      expect(revoked?.revokedAt).toBe(T1);
      expect((await store.revokeToken(alice.id, '2030-01-01T00:00:00.000Z'))?.revokedAt).toBe(T1);
      expect(await store.revokeToken('tok_missing', T1)).toBeUndefined();
      expect(await store.getActiveTokenByName('alice')).toBeUndefined();
      // The revoked token still resolves by hash (so the caller can tell "revoked"), and its name is free again.
      expect((await store.getTokenByHash('h-alice'))?.revokedAt).toBe(T1);
      const alice2 = await store.createToken({
        id: newId('token'),
        name: 'alice',
        hash: 'h-alice-2',
        admin: false,
        now: '2026-01-01T02:00:00.000Z',
      });
      expect((await store.getActiveTokenByName('alice'))?.id).toBe(alice2.id);

      expect((await store.listTokens()).map((t) => [t.name, t.revokedAt !== null])).toEqual([
        ['admin', false],
        ['alice', true],
        ['alice', false],
      ]);
      await store.revokeToken(admin.id, T1);
      expect(await store.countActiveAdminTokens()).toBe(0);
    });

    it('lets exactly one of several concurrent creates of one name win; the rest get conflict', async () => {
      const results = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) =>
          store.createEnvironment({
            id: newId('environment'),
            spec: spec('race'),
            createdByTokenId: null,
            secrets: [{ name: 'S', ciphertext: `c${i}` }],
            now: T0,
          }),
        ),
      );
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of results) {
        if (r.status === 'rejected') expect((r.reason as BerthError).code).toBe('conflict');
      }
      const winner = await store.getEnvironmentByName('race');
      expect(await store.getSecretCiphertexts(winner?.id ?? '')).toHaveLength(1);
    });

    it('serialises concurrent writers without losing any', async () => {
      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          store.createEnvironment({
            id: newId('environment'),
            spec: spec(`env-${String(i).padStart(2, '0')}`),
            createdByTokenId: null,
            secrets: [{ name: 'S', ciphertext: `c${i}` }],
            now: T0,
          }),
        ),
      );
      expect(await store.listEnvironments()).toHaveLength(20);
    });
  });
}
