import type { EnvironmentSpec } from '../domain/environment/environment-spec.js';

/** What `berth env show` prints: every field the environment stores, one line each. */
export interface DescribedEnvironment {
  id: string;
  name: string;
  spec: EnvironmentSpec;
  secrets: string[];
  revision: number;
}

/** The lines of a script as a person counts them: a final line end starts no new line. */
export function scriptLineCount(script: string): number {
  if (script === '') return 0;
  return script.replace(/\r?\n$/, '').split('\n').length;
}

const minutes = (ms: number) =>
  ms % 60_000 === 0 ? `${ms / 60_000} min` : `${Math.round(ms / 1000)} s`;

function describeScript(script: EnvironmentSpec['setup']): string {
  if (script === undefined) return 'none';
  const lines = scriptLineCount(script.script);
  return `${lines} line${lines === 1 ? '' : 's'}, time limit ${minutes(script.timeoutMs)}${script.strict ? '' : ', not strict (set -e off)'}`;
}

/** One line of free text (a description or a command) shortened for a summary. */
function oneLine(text: string, max = 100): string {
  const flat = text.replace(/\s*\n\s*/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

export function describeEnvironment(view: DescribedEnvironment): string {
  const s = view.spec;
  const credentials = s.repository.credentials;
  const internet = s.internet;
  const internetParts: string[] = [internet.access];
  if (internet.access === 'allowlist')
    internetParts[0] += ` (${[...internet.presets.map((p) => `preset ${p}`), ...internet.domains].join(', ') || 'nothing'})`;
  if (internet.methods) internetParts.push(`methods ${internet.methods.join(' ')}`);
  if (internet.tunnelOnly.length > 0)
    internetParts.push(`never intercepted ${internet.tunnelOnly.join(', ')}`);
  for (const c of internet.credentials ?? [])
    internetParts.push(`${c.header} for ${c.host} set by the proxy from secret ${c.secret}`);
  for (const rule of internet.rules ?? [])
    internetParts.push(`rule ${rule.host} ${rule.methods.join(' ')} ${rule.paths.join(' ')}`);
  if (internet.budget !== undefined)
    internetParts.push(
      `budget per attempt ${Object.entries(internet.budget)
        .map(([k, v]) => `${k} ${String(v)}`)
        .join(', ')}`,
    );
  const r = s.resources;
  const lines = [
    `name:        ${view.name} (${view.id}, revision ${view.revision})`,
    ...(s.description !== undefined ? [`description: ${oneLine(s.description)}`] : []),
    // Issue 16: the template it extends (env show --resolved prints the merge), the repository file.
    ...(s.extends !== undefined
      ? [`extends:     template ${s.extends} (berth env show ${view.name} --resolved)`]
      : []),
    ...(s.repository.config !== undefined
      ? [
          `repository file: ${s.repository.config} (its fields come from the repository; berth env diff ${view.name})`,
        ]
      : []),
    `repository:  ${s.repository.url} (default branch ${s.repository.defaultBranch})${
      credentials
        ? `, credentials: secret ${credentials.secret}${credentials.username !== undefined ? ` as ${credentials.username}` : ''}${credentials.knownHosts !== undefined ? `, ${scriptLineCount(credentials.knownHosts)} known host line(s)` : ''}`
        : ''
    }`,
    `image:       ${s.image}${
      Object.keys(s.versions).length
        ? ` with ${Object.entries(s.versions)
            .map(([k, v]) => `${k} ${v}`)
            .join(', ')}`
        : ''
    }`,
    `setup:       ${describeScript(s.setup)}`,
    `maintenance: ${describeScript(s.maintenance)}`,
    `variables:   ${Object.keys(s.env).join(', ') || 'none'}`,
    `secrets:     ${view.secrets.join(', ') || 'none'}${
      s.secrets.some((n) => !view.secrets.includes(n))
        ? ` (expected without a value: ${s.secrets.filter((n) => !view.secrets.includes(n)).join(', ')})`
        : ''
    }`,
    `internet:    ${internetParts.join(', ')}`,
    `services:    ${
      s.services
        .map(
          (x) =>
            `${x.name} (${oneLine(x.command, 40)}${x.ready ? `; ready: ${'port' in x.ready ? `port ${x.ready.port}` : oneLine(x.ready.command, 40)}` : ''})`,
        )
        .join(', ') || 'none'
    }`,
    `resources:   ${r.cpus} cpu, ${r.memoryMb} MB memory, ${r.diskMb} MB disk, ${r.pids} processes, ${minutes(r.timeoutMs)}`,
    `verify:      ${
      s.verify === undefined
        ? 'none'
        : `${oneLine(s.verify)}${s.verifyRequired === true ? ' (required: exec --wait and run exit 3 when it fails)' : ''}`
    }`,
    ...(s.model !== undefined ? [`model:       ${s.model}`] : []),
    `members:     ${s.members.join(', ') || 'none (admins and the token that created it)'}`,
  ];
  return lines.join('\n');
}
