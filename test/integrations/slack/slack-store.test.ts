import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Store } from '../../../src/ports/store.js';
import { describeEachStore } from '../../store/each-store.js';

/**
 * The Slack tables (migrations 0015_slack, 0015_slack_turns) on SQLite and PostgreSQL: an event id
 * is claimed once however often it comes (concurrent claims too), Slack user links (a revoked
 * token's link acts for nobody), threads, and turns left open.
 */

const T0 = '2026-01-01T00:00:00.000Z';

describeEachStore('the Slack tables', (adapter, open) => {
  describe(`the Slack tables: ${adapter}`, () => {
    let store: Store;
    let cleanup: () => void;
    beforeEach(async () => {
      ({ store, cleanup } = await open());
      await store.migrate();
    });
    afterEach(async () => {
      await store.close();
      cleanup();
    });

    it('claims an event id once, also when claims race', async () => {
      const claims = await Promise.all(
        Array.from({ length: 8 }, () => store.claimSlackEvent('Ev01', T0)),
      );
      expect(claims.filter(Boolean)).toHaveLength(1);
      expect(await store.claimSlackEvent('Ev01', T0)).toBe(false);
      expect(await store.claimSlackEvent('Ev02', T0)).toBe(true);
      expect(await store.pruneSlackEvents('2026-01-02T00:00:00.000Z')).toBe(2);
      expect(await store.claimSlackEvent('Ev01', T0)).toBe(true);
    });

    it("links a Slack user to a token; relinking replaces; a revoked token's link acts for nobody", async () => {
      for (const [id, name] of [
        ['tok_a', 'alice'],
        ['tok_b', 'bob'],
        ['tok_admin', 'admin'],
      ] as const)
        await store.createToken({ id, name, hash: `h-${id}`, admin: id === 'tok_admin', now: T0 });
      await store.linkSlackUser('U0A', 'tok_a', T0);
      expect((await store.getSlackUserToken('U0A'))?.name).toBe('alice');
      await store.linkSlackUser('U0A', 'tok_b', T0);
      expect((await store.getSlackUserToken('U0A'))?.name).toBe('bob');
      await store.revokeToken('tok_b', T0);
      expect(await store.getSlackUserToken('U0A')).toBeUndefined();
      expect(await store.getSlackUserToken('U0NOBODY')).toBeUndefined();
    });

    it('keeps threads and the turns left open', async () => {
      await store.createEnvironment({
        id: 'env_1',
        spec: { name: 'svc', members: [] } as never,
        createdByTokenId: null,
        secrets: [],
        now: T0,
      });
      await store.createTask(
        {
          id: 'task_1',
          environmentId: 'env_1',
          prompt: 'fix it',
          command: null,
          ref: {},
          repository: null,
          attemptCount: 1,
          status: 'queued',
          createdAt: T0,
          updatedAt: T0,
        },
        [],
      );
      const thread = {
        channel: 'C01',
        threadTs: '1.0',
        taskId: 'task_1',
        replyTs: '1.1',
        slackUserId: 'U0A',
        createdAt: T0,
      };
      await store.putSlackThread(thread);
      expect(await store.getSlackThread('C01', '1.0')).toEqual(thread);
      expect(await store.getSlackThread('C01', '2.0')).toBeUndefined();
      const turn = { ...thread, id: 'slt_1', attemptIds: null };
      await store.putSlackTurn(turn);
      await store.putSlackTurn({
        ...turn,
        id: 'slt_2',
        attemptIds: ['att_2'],
        createdAt: '2026-01-01T00:00:01.000Z',
      });
      expect((await store.listOpenSlackTurns()).map((t) => [t.id, t.attemptIds])).toEqual([
        ['slt_1', null],
        ['slt_2', ['att_2']],
      ]);
      await store.finishSlackTurn('slt_1', T0);
      expect((await store.listOpenSlackTurns()).map((t) => t.id)).toEqual(['slt_2']);
    });
  });
});
