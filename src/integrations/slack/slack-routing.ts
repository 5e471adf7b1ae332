import type { Store, StoredEnvironment } from '../../ports/store.js';
import type { Caller } from '../../services/caller.js';
import { EnvironmentService } from '../../services/environment-service.js';

/**
 * Which environment a Slack message is for, and who it acts as.
 *
 * Threat model. Untrusted: the channel id, the user id and `env=` come from Slack events, which
 * are checked to come from Slack (signature or Socket Mode) but say whatever any member of the
 * workspace typed. Guarantees: a task runs only in an environment that names the channel
 * (`triggers.slack.channels`), or that `env=` names and the user may use; the user acts as the
 * token linked to them (its memberships, nothing more), or, only where the environment says
 * `triggers.slack.anyone: true` and only in its own channels, as a caller limited to that one
 * environment. Anyone else is refused before any environment name is shown to them.
 */

export type Route =
  /** No environment names the channel. */
  | { kind: 'unmapped' }
  /** The user may start nothing here (an ephemeral refusal). */
  | { kind: 'refused' }
  /** `env=` names nothing the user may use, or several environments serve the channel. */
  | { kind: 'choose'; usable: string[]; asked?: string }
  | { kind: 'ok'; environment: StoredEnvironment; caller: Caller };

function channelsOf(environment: StoredEnvironment): readonly string[] {
  return environment.spec.triggers?.slack?.channels ?? [];
}

/** A caller for a Slack user with no linked token, limited to one environment (`anyone: true`). */
export function anyoneCaller(slackUserId: string, environmentId: string): Caller {
  return {
    tokenId: `slack:${slackUserId}`,
    tokenName: `slack:${slackUserId}`,
    admin: false,
    environmentIds: [environmentId],
  };
}

export class SlackRouting {
  constructor(private readonly store: Store) {}

  private async linkedCaller(slackUserId: string): Promise<Caller | undefined> {
    const token = await this.store.getSlackUserToken(slackUserId);
    return token ? { tokenId: token.id, tokenName: token.name, admin: token.admin } : undefined;
  }

  /** Who `slackUserId` acts as on `environment` when writing in `channel`; undefined: nobody. */
  async callerFor(
    environment: StoredEnvironment,
    channel: string,
    slackUserId: string,
  ): Promise<Caller | undefined> {
    const linked = await this.linkedCaller(slackUserId);
    if (linked && EnvironmentService.canSee(linked, environment)) return linked;
    if (
      environment.spec.triggers?.slack?.anyone === true &&
      channelsOf(environment).includes(channel)
    )
      return anyoneCaller(slackUserId, environment.id);
    return undefined;
  }

  async route(input: {
    channel: string;
    slackUserId: string;
    env?: string | undefined;
  }): Promise<Route> {
    const all = await this.store.listEnvironments();
    const mapped = all.filter((e) => channelsOf(e).includes(input.channel));
    if (mapped.length === 0) return { kind: 'unmapped' };
    const linked = await this.linkedCaller(input.slackUserId);
    const usable = all.filter(
      (e) =>
        (linked !== undefined && EnvironmentService.canSee(linked, e)) ||
        (mapped.includes(e) && e.spec.triggers?.slack?.anyone === true),
    );
    if (usable.length === 0) return { kind: 'refused' };
    const names = usable.map((e) => e.spec.name).sort();
    let target: StoredEnvironment | undefined;
    if (input.env !== undefined) {
      target = usable.find((e) => e.spec.name === input.env);
      if (!target) return { kind: 'choose', usable: names, asked: input.env };
    } else {
      const here = mapped.filter((e) => usable.includes(e));
      if (here.length !== 1)
        return {
          kind: 'choose',
          usable: here.length > 1 ? here.map((e) => e.spec.name).sort() : names,
        };
      target = here[0];
    }
    if (!target) return { kind: 'refused' };
    const caller = await this.callerFor(target, input.channel, input.slackUserId);
    return caller ? { kind: 'ok', environment: target, caller } : { kind: 'refused' };
  }
}
