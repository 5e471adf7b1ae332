import type { z } from 'zod';

/**
 * Internet settings that would do nothing under the chosen `access` are refused, so a file never
 * looks stricter (or more open) than what runs: `presets` and `domains` only allow hosts with
 * `access: allowlist` (with `on` every host passes already, with `off` nothing does), and
 * `methods` and `tunnelOnly` do nothing with `access: off` (the default).
 */
export function refuseInertInternetSettings(
  internet: {
    access: 'off' | 'allowlist' | 'on';
    presets: readonly string[];
    domains: readonly string[];
    methods?: readonly string[] | undefined;
    tunnelOnly: readonly string[];
  },
  ctx: z.RefinementCtx,
): void {
  const refuse = (field: string, message: string) =>
    ctx.addIssue({ code: 'custom', path: ['internet', field], message });
  for (const field of ['presets', 'domains'] as const) {
    if (internet[field].length === 0 || internet.access === 'allowlist') continue;
    refuse(
      field,
      internet.access === 'off'
        ? `does nothing while internet.access is off (the default): add "access: allowlist" under internet to allow only these hosts, or remove ${field}`
        : `does nothing with access: on (every host is allowed already): use "access: allowlist" to allow only these hosts, or remove ${field}`,
    );
  }
  if (internet.access !== 'off') return;
  for (const field of ['methods', 'tunnelOnly'] as const) {
    if ((internet[field]?.length ?? 0) === 0) continue;
    refuse(
      field,
      `does nothing while internet.access is off (the default: nothing leaves the sandbox): add "access: allowlist" (or on) under internet, or remove ${field}`,
    );
  }
}
