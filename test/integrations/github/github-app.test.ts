import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.js';
import { githubSettingsFromConfig } from '../../../src/integrations/github/github-auth.js';
import {
  issueCommentPayload,
  openGitHubWorld,
  runGit,
  SERVER_TOKEN,
  type GitHubWorld,
} from './github-world.js';

/**
 * Berth as a GitHub App (BERTH_GITHUB_APP_ID + BERTH_GITHUB_APP_PRIVATE_KEY_FILE): a JWT signed
 * with the App's key (checked by the fake with the public key), an installation token made for
 * the one repository, and every call and the pull request made with it; the server token is
 * never used. The same key file is read through the configuration.
 */

const APP_ID = '4242';
const INSTALLATION = 77;
const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const PEM = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();

describe('GitHub App', () => {
  let world: GitHubWorld;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'berth-gh-app-'));
    writeFileSync(join(dir, 'app.pem'), PEM, { mode: 0o600 });
    const settings = githubSettingsFromConfig(
      loadConfig(
        { dataDir: dir },
        {
          HOME: dir,
          BERTH_GITHUB_WEBHOOK_SECRET: 'x',
          BERTH_GITHUB_APP_ID: APP_ID,
          BERTH_GITHUB_APP_PRIVATE_KEY_FILE: join(dir, 'app.pem'),
        },
      ),
    );
    expect(settings?.identity).toEqual({ kind: 'app', appId: APP_ID, privateKey: PEM });
    world = await openGitHubWorld({
      identity: settings!.identity,
      // The fake refuses the server token: only the App's tokens work.
      fakeToken: 'not-used-by-an-app',
      app: {
        id: APP_ID,
        publicKey,
        installations: { 'acme/app': INSTALLATION, 'acme/other': INSTALLATION },
      },
    });
  });
  afterAll(async () => {
    await world.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('signs a JWT, takes an installation token for the repository, and acts with it', async () => {
    await world.deliver(
      'issue_comment',
      issueCommentPayload({ body: '@berth fix the adder', number: 3, installation: INSTALLATION }),
    );
    const made = world.fake.requests.filter(
      (r) => r.path === `/app/installations/${INSTALLATION}/access_tokens`,
    );
    expect(made.length).toBeGreaterThanOrEqual(1);
    for (const request of made) {
      const jwt = /^bearer (.+)$/i.exec(request.headers.authorization ?? '')?.[1] ?? '';
      const claims = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString()) as {
        iss: unknown;
      };
      expect(String(claims.iss)).toBe(APP_ID);
    }
    // The push token was made for acme/app only.
    expect(world.fake.issuedTokens.some((t) => t.repositories.join() === 'acme/app')).toBe(true);
    const issued = new Set(world.fake.issuedTokens.map((t) => t.token));
    const calls = world.fake.requests.filter((r) => r.path.startsWith('/repos/'));
    expect(calls.length).toBeGreaterThan(3);
    for (const call of calls) {
      expect(issued.has((call.headers.authorization ?? '').replace(/^(bearer|token) /i, ''))).toBe(
        true,
      );
      expect(call.headers.authorization).not.toContain(SERVER_TOKEN);
    }
    expect(world.fake.reactions).toHaveLength(1);
    expect(world.fake.pulls).toHaveLength(1);
    expect(world.fake.pulls[0]?.body.startsWith('Fixes #3')).toBe(true);
    expect(runGit(world.bare, 'for-each-ref', 'refs/heads/berth/')).toContain('berth/task_');
    expect(world.fake.comments[0]?.body).toContain('Opened pull request #1');
  });

  it('a JWT signed with another key is refused by GitHub: nothing runs, the log says why', async () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const forged = await openGitHubWorld({
      identity: {
        kind: 'app',
        appId: APP_ID,
        privateKey: other.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
      },
      fakeToken: 'not-used-by-an-app',
      app: { id: APP_ID, publicKey, installations: { 'acme/app': INSTALLATION } },
    });
    try {
      await forged.deliver(
        'issue_comment',
        issueCommentPayload({ body: '@berth fix the adder', installation: INSTALLATION }),
      );
      expect(forged.fake.issuedTokens).toEqual([]);
      expect(await forged.store.listTasks({ limit: 5 })).toEqual([]);
      const refused = forged.logs.find((l) => l.message.startsWith('github comment refused'));
      expect(refused?.message).toContain('GitHub did not say what writer may do on acme/app');
      expect(forged.fake.comments).toEqual([]);
    } finally {
      await forged.close();
    }
  });

  it('an App id without its key file, or a file that is no key, is refused at start-up', () => {
    const load = (env: Record<string, string>) => () =>
      githubSettingsFromConfig(
        loadConfig({ dataDir: dir }, { HOME: dir, BERTH_GITHUB_WEBHOOK_SECRET: 'x', ...env }),
      );
    expect(load({ BERTH_GITHUB_APP_ID: APP_ID })).toThrow(/BERTH_GITHUB_APP_PRIVATE_KEY_FILE/);
    writeFileSync(join(dir, 'not.pem'), 'hello');
    expect(
      load({
        BERTH_GITHUB_APP_ID: APP_ID,
        BERTH_GITHUB_APP_PRIVATE_KEY_FILE: join(dir, 'not.pem'),
      }),
    ).toThrow(/not a PEM private key/);
    expect(load({})).toThrow(/BERTH_GITHUB_TOKEN, or BERTH_GITHUB_APP_ID/);
    expect(
      githubSettingsFromConfig(
        loadConfig({ dataDir: dir }, { HOME: dir, BERTH_GITHUB_TOKEN: 't' }),
      ),
    ).toBeUndefined();
  });
});
