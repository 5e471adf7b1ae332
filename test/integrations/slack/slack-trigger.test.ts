import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseEnvironmentSpec } from '../../../src/domain/environment/environment-file.js';
import { SLACK_EVENTS_PATH } from '../../../src/integrations/slack/slack-http-events.js';

/** `triggers.slack` in environment files, and docs/slack.md's examples against the code. */

const docs = readFileSync(new URL('../../../docs/slack.md', import.meta.url), 'utf8');
const yamlBlocks = [...docs.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');

describe('triggers.slack', () => {
  it("docs/slack.md's environment example is a valid environment file", () => {
    const example = yamlBlocks.find((b) => b.includes('triggers:'));
    const spec = parseEnvironmentSpec(parse(example ?? ''));
    expect(spec.triggers?.slack).toEqual({ channels: ['C0123ABCD'], anyone: false });
  });

  it('defaults, and refuses channel names and unknown fields', () => {
    const base = { name: 'svc', repository: 'https://git.example/acme/svc.git' };
    expect(
      parseEnvironmentSpec({ ...base, triggers: { slack: { channels: ['C01'] } } }).triggers,
    ).toEqual({ slack: { channels: ['C01'], anyone: false } });
    expect(() =>
      parseEnvironmentSpec({ ...base, triggers: { slack: { channels: ['#payments'] } } }),
    ).toThrow(/triggers\.slack\.channels\[0\].*Slack channel id looks like C0123ABCD/);
    expect(() =>
      parseEnvironmentSpec({ ...base, triggers: { slack: { channel: ['C01'] } } }),
    ).toThrow(/triggers\.slack/);
  });

  it("the manifests subscribe to app_mention, with interactivity, at Berth's route", () => {
    const manifests = yamlBlocks.map((b) => parse(b) as Record<string, unknown>);
    const full = manifests.find((m) => 'oauth_config' in m) as {
      oauth_config: { scopes: { bot: string[] } };
      settings: { socket_mode_enabled: boolean; event_subscriptions: { bot_events: string[] } };
    };
    expect(full.oauth_config.scopes.bot.sort()).toEqual(['app_mentions:read', 'chat:write']);
    expect(full.settings.socket_mode_enabled).toBe(true);
    expect(full.settings.event_subscriptions.bot_events).toEqual(['app_mention']);
    const http = manifests.find(
      (m) =>
        (m.settings as { socket_mode_enabled?: boolean } | undefined)?.socket_mode_enabled ===
        false,
    ) as {
      settings: {
        event_subscriptions: { request_url: string };
        interactivity: { request_url: string };
      };
    };
    expect(new URL(http.settings.event_subscriptions.request_url).pathname).toBe(SLACK_EVENTS_PATH);
    expect(new URL(http.settings.interactivity.request_url).pathname).toBe(SLACK_EVENTS_PATH);
  });
});
