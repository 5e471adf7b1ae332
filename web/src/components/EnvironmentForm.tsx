import { useState, type ReactNode } from 'react';
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
      <label htmlFor={id}>{label}</label>
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
}: {
  yaml: string;
  onChange: (yaml: string) => void;
  issues: readonly FieldIssue[];
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
  }));
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
      <p className="sub">Services, resources, variables and the rest: in the YAML view.</p>
    </div>
  );
}
