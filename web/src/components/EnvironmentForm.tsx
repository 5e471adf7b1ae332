import { useEffect, useState, type ReactNode } from 'react';
import YAML from 'yaml';

/**
 * The environment file as a form. The YAML text stays the one source: each field reads its value
 * from it when the form opens and writes its change back into it (yaml's Document keeps the rest
 * of the file, comments included), so the server's validation of the YAML checks the form too;
 * an issue shows under the field whose path it names.
 */

export interface FieldIssue {
  path: string;
  message: string;
}

type Path = (string | number)[];

function read(text: string): { doc: YAML.Document; js: Record<string, unknown> } | undefined {
  const doc = YAML.parseDocument(text);
  if (doc.errors.length > 0) return undefined;
  const js: unknown = doc.toJS();
  return { doc, js: js && typeof js === 'object' ? (js as Record<string, unknown>) : {} };
}

function write(text: string, path: Path, value: unknown): string {
  const doc = YAML.parseDocument(text);
  const empty = value === undefined || value === '' || (Array.isArray(value) && value.length === 0);
  if (empty) doc.deleteIn(path);
  else doc.setIn(path, value);
  return doc.toString();
}

const lines = (value: string) =>
  value
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
const words = (value: string) =>
  value
    .split(/[\s,]+/)
    .map((word) => word.trim())
    .filter((word) => word !== '');

/** `NAME=value` lines as the `env` object, and the lines that are not of that shape. */
function variables(value: string): { env: Record<string, string>; bad: number[] } {
  const env: Record<string, string> = {};
  const bad: number[] = [];
  value.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const at = line.indexOf('=');
    if (at <= 0) bad.push(i + 1);
    else env[line.slice(0, at).trim()] = line.slice(at + 1);
  });
  return { env, bad };
}

const RESOURCES = [
  { key: 'cpus', label: 'CPUs', integer: false },
  { key: 'memoryMb', label: 'Memory (MB)', integer: true },
  { key: 'diskMb', label: 'Disk (MB)', integer: true },
  { key: 'pids', label: 'Processes', integer: true },
  { key: 'timeoutMs', label: 'Time limit (ms)', integer: true },
] as const;

/** A resource field's number, undefined when empty (the default), or the local reason it is not one. */
function resourceValue(text: string, integer: boolean): number | undefined | string {
  if (text.trim() === '') return undefined;
  const n = Number(text);
  if (!Number.isFinite(n)) return 'not a number';
  if (integer && !Number.isInteger(n)) return 'a whole number';
  if (n <= 0) return 'must be above 0';
  return n;
}

interface ServiceDraft {
  name: string;
  command: string;
  /** `port`: ready when the port listens; `command`: when the command exits 0; `none`. */
  readyKind: 'none' | 'port' | 'command';
  ready: string;
}

function serviceDrafts(value: unknown): ServiceDraft[] {
  if (!Array.isArray(value)) return [];
  return value.map((raw: unknown) => {
    const service = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
    const ready = (
      service.ready && typeof service.ready === 'object' ? service.ready : {}
    ) as Record<string, unknown>;
    return {
      name: typeof service.name === 'string' ? service.name : '',
      command: typeof service.command === 'string' ? service.command : '',
      readyKind:
        typeof ready.port === 'number'
          ? 'port'
          : typeof ready.command === 'string'
            ? 'command'
            : 'none',
      ready:
        typeof ready.port === 'number'
          ? String(ready.port)
          : typeof ready.command === 'string'
            ? ready.command
            : '',
    };
  });
}

/** The services as the file writes them (the YAML's other service fields, e.g. timeoutMs, kept). */
function servicesYaml(drafts: readonly ServiceDraft[], before: unknown): unknown[] {
  const old = Array.isArray(before) ? before : [];
  return drafts.map((d, i) => {
    const kept = (old[i] && typeof old[i] === 'object' ? old[i] : {}) as Record<string, unknown>;
    const { ready: _ready, ...rest } = kept;
    void _ready;
    const out: Record<string, unknown> = { ...rest, name: d.name, command: d.command };
    if (d.readyKind === 'port')
      out.ready = { port: d.ready.trim() === '' ? d.ready : Number(d.ready) };
    if (d.readyKind === 'command') out.ready = { command: d.ready };
    return out;
  });
}

function Field({
  id,
  label,
  issues,
  prefix,
  children,
}: {
  id: string;
  label: string;
  issues: readonly FieldIssue[];
  prefix: string;
  children: ReactNode;
}) {
  const mine = issues.filter(
    (i) => i.path === prefix || i.path.startsWith(prefix + '.') || i.path.startsWith(prefix + '['),
  );
  return (
    <div className="field">
      {label !== '' && <label htmlFor={id}>{label}</label>}
      {children}
      {mine.map((issue, i) => (
        <p key={i} className="error field-error" id={`${id}-error`}>
          {issue.path}: {issue.message}
        </p>
      ))}
    </div>
  );
}

export function EnvironmentForm({
  yaml,
  onChange,
  issues,
  onLocalIssues,
}: {
  yaml: string;
  onChange: (yaml: string) => void;
  issues: readonly FieldIssue[];
  /** How many problems the form found itself (they block saving). */
  onLocalIssues?: (count: number) => void;
}) {
  const parsed = read(yaml);
  const js = parsed?.js ?? {};
  const internet = (js.internet && typeof js.internet === 'object' ? js.internet : {}) as Record<
    string,
    unknown
  >;
  const repositoryPath: Path =
    typeof js.repository === 'object' && js.repository !== null
      ? ['repository', 'url']
      : ['repository'];
  const setupPath: Path =
    typeof js.setup === 'object' && js.setup !== null ? ['setup', 'script'] : ['setup'];
  const str = (value: unknown) => (typeof value === 'string' ? value : '');
  const list = (value: unknown) => (Array.isArray(value) ? value.map(String) : []);
  const [draft, setDraft] = useState(() => ({
    name: str(js.name),
    repository: str(
      repositoryPath.length === 2 ? (js.repository as { url?: unknown }).url : js.repository,
    ),
    image: str(js.image),
    setup: str(setupPath.length === 2 ? (js.setup as { script?: unknown }).script : js.setup),
    access: str(internet.access) || 'off',
    presets: list(internet.presets),
    domains: list(internet.domains).join('\n'),
    methods: list(internet.methods).join(', '),
    members: list(js.members).join(', '),
    env: Object.entries(
      js.env && typeof js.env === 'object' ? (js.env as Record<string, unknown>) : {},
    )
      .map(([name, value]) => `${name}=${String(value)}`)
      .join('\n'),
    resources: Object.fromEntries(
      RESOURCES.map(({ key }) => {
        const value = (
          js.resources && typeof js.resources === 'object'
            ? (js.resources as Record<string, unknown>)
            : {}
        )[key];
        return [key, typeof value === 'number' ? String(value) : ''];
      }),
    ) as Record<(typeof RESOURCES)[number]['key'], string>,
    services: serviceDrafts(js.services),
  }));
  // Checked here as each key is typed (what the YAML cannot even hold); the server's validation
  // of the file then flags the rest under the same fields.
  const localIssues: FieldIssue[] = [
    ...variables(draft.env).bad.map((line) => ({
      path: 'env',
      message: `line ${line} is not NAME=value`,
    })),
    ...RESOURCES.flatMap(({ key, integer }) => {
      const value = resourceValue(draft.resources[key], integer);
      return typeof value === 'string' ? [{ path: `resources.${key}`, message: value }] : [];
    }),
  ];
  const localCount = localIssues.length;
  useEffect(() => onLocalIssues?.(localCount), [localCount, onLocalIssues]);
  if (!parsed)
    return <p className="error">The YAML does not parse: fix it in the YAML view first.</p>;
  const change = <K extends keyof typeof draft>(
    key: K,
    value: (typeof draft)[K],
    path: Path,
    yamlValue: unknown,
  ) => {
    setDraft({ ...draft, [key]: value });
    onChange(write(yaml, path, yamlValue));
  };
  return (
    <div className="env-form">
      <Field id="f-name" label="Name" issues={issues} prefix="name">
        <input
          id="f-name"
          value={draft.name}
          onChange={(e) => change('name', e.target.value, ['name'], e.target.value)}
        />
      </Field>
      <Field id="f-repository" label="Repository URL" issues={issues} prefix="repository">
        <input
          id="f-repository"
          value={draft.repository}
          onChange={(e) => change('repository', e.target.value, repositoryPath, e.target.value)}
        />
      </Field>
      <Field id="f-image" label="Image" issues={issues} prefix="image">
        <input
          id="f-image"
          value={draft.image}
          onChange={(e) => change('image', e.target.value, ['image'], e.target.value)}
        />
      </Field>
      <Field id="f-setup" label="Setup script" issues={issues} prefix="setup">
        <textarea
          id="f-setup"
          value={draft.setup}
          onChange={(e) => change('setup', e.target.value, setupPath, e.target.value)}
        />
      </Field>
      <fieldset>
        <legend>Internet</legend>
        <Field id="f-access" label="Access" issues={issues} prefix="internet.access">
          <select
            id="f-access"
            value={draft.access}
            onChange={(e) =>
              change('access', e.target.value, ['internet', 'access'], e.target.value)
            }
          >
            <option value="off">off</option>
            <option value="allowlist">allowlist</option>
            <option value="on">on</option>
          </select>
        </Field>
        <Field id="f-presets" label="Presets" issues={issues} prefix="internet.presets">
          <label>
            <input
              id="f-presets"
              type="checkbox"
              checked={draft.presets.includes('common-dependencies')}
              onChange={(e) => {
                const presets = e.target.checked ? ['common-dependencies'] : [];
                change('presets', presets, ['internet', 'presets'], presets);
              }}
            />{' '}
            common-dependencies (public package registries)
          </label>
        </Field>
        <Field
          id="f-domains"
          label="Domains (one a line)"
          issues={issues}
          prefix="internet.domains"
        >
          <textarea
            id="f-domains"
            value={draft.domains}
            onChange={(e) =>
              change('domains', e.target.value, ['internet', 'domains'], lines(e.target.value))
            }
          />
        </Field>
        <Field id="f-methods" label="Methods" issues={issues} prefix="internet.methods">
          <input
            id="f-methods"
            value={draft.methods}
            placeholder="every method"
            onChange={(e) =>
              change('methods', e.target.value, ['internet', 'methods'], words(e.target.value))
            }
          />
        </Field>
      </fieldset>
      <Field id="f-members" label="Members (token names)" issues={issues} prefix="members">
        <input
          id="f-members"
          value={draft.members}
          onChange={(e) => change('members', e.target.value, ['members'], words(e.target.value))}
        />
      </Field>
      <Field
        id="f-env"
        label="Variables (NAME=value, one a line)"
        issues={[...issues, ...localIssues]}
        prefix="env"
      >
        <textarea
          id="f-env"
          value={draft.env}
          aria-invalid={localIssues.some((i) => i.path === 'env') || undefined}
          onChange={(e) => {
            const { env, bad } = variables(e.target.value);
            // A line that is not NAME=value stays in the field (flagged), not in the file.
            setDraft({ ...draft, env: e.target.value });
            if (bad.length === 0)
              onChange(write(yaml, ['env'], Object.keys(env).length > 0 ? env : undefined));
          }}
        />
      </Field>
      <fieldset>
        <legend>Resources (empty: the default)</legend>
        {RESOURCES.map(({ key, label, integer }) => (
          <Field
            key={key}
            id={`f-res-${key}`}
            label={label}
            issues={[...issues, ...localIssues]}
            prefix={`resources.${key}`}
          >
            <input
              id={`f-res-${key}`}
              inputMode={integer ? 'numeric' : 'decimal'}
              value={draft.resources[key]}
              aria-invalid={localIssues.some((i) => i.path === `resources.${key}`) || undefined}
              onChange={(e) => {
                const text = e.target.value;
                const value = resourceValue(text, integer);
                setDraft({ ...draft, resources: { ...draft.resources, [key]: text } });
                if (typeof value !== 'string') onChange(write(yaml, ['resources', key], value));
              }}
            />
          </Field>
        ))}
      </fieldset>
      <fieldset>
        <legend>Services</legend>
        {draft.services.map((service, i) => {
          const update = (next: ServiceDraft) => {
            const services = draft.services.map((s, j) => (j === i ? next : s));
            setDraft({ ...draft, services });
            onChange(write(yaml, ['services'], servicesYaml(services, js.services)));
          };
          return (
            <div className="service" key={i} role="group" aria-label={`Service ${i + 1}`}>
              <Field
                id={`f-svc-${i}-name`}
                label={`Service ${i + 1} name`}
                issues={issues}
                prefix={`services[${i}].name`}
              >
                <input
                  id={`f-svc-${i}-name`}
                  value={service.name}
                  onChange={(e) => update({ ...service, name: e.target.value })}
                />
              </Field>
              <Field
                id={`f-svc-${i}-command`}
                label={`Service ${i + 1} command`}
                issues={issues}
                prefix={`services[${i}].command`}
              >
                <input
                  id={`f-svc-${i}-command`}
                  value={service.command}
                  onChange={(e) => update({ ...service, command: e.target.value })}
                />
              </Field>
              <Field
                id={`f-svc-${i}-ready-kind`}
                label={`Service ${i + 1} ready when`}
                issues={issues}
                prefix={`services[${i}].ready`}
              >
                <select
                  id={`f-svc-${i}-ready-kind`}
                  value={service.readyKind}
                  onChange={(e) =>
                    update({ ...service, readyKind: e.target.value as ServiceDraft['readyKind'] })
                  }
                >
                  <option value="none">started</option>
                  <option value="port">a port listens</option>
                  <option value="command">a command succeeds</option>
                </select>
              </Field>
              {service.readyKind !== 'none' && (
                <Field
                  id={`f-svc-${i}-ready`}
                  label={
                    service.readyKind === 'port'
                      ? `Service ${i + 1} port`
                      : `Service ${i + 1} ready command`
                  }
                  issues={[]}
                  prefix={`services[${i}].ready`}
                >
                  <input
                    id={`f-svc-${i}-ready`}
                    value={service.ready}
                    inputMode={service.readyKind === 'port' ? 'numeric' : undefined}
                    onChange={(e) => update({ ...service, ready: e.target.value })}
                  />
                </Field>
              )}
              <button
                type="button"
                onClick={() => {
                  const services = draft.services.filter((_, j) => j !== i);
                  setDraft({ ...draft, services });
                  onChange(
                    write(
                      yaml,
                      ['services'],
                      servicesYaml(
                        services,
                        (js.services as unknown[] | undefined)?.filter((_, j) => j !== i),
                      ),
                    ),
                  );
                }}
              >
                Remove service {i + 1}
              </button>
            </div>
          );
        })}
        {issues
          .filter((i) => i.path === 'services')
          .map((issue, k) => (
            <p key={k} className="error field-error">
              {issue.path}: {issue.message}
            </p>
          ))}
        <button
          type="button"
          onClick={() =>
            setDraft({
              ...draft,
              services: [
                ...draft.services,
                { name: '', command: '', readyKind: 'none', ready: '' },
              ],
            })
          }
        >
          Add service
        </button>
      </fieldset>
      <p className="sub">
        Secrets below; verify, maintenance, ports and the rest: in the YAML view.
      </p>
    </div>
  );
}
