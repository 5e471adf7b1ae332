import { useEffect, useMemo, useState, type FormEvent } from 'react';
import { useNavigate, useParams } from 'react-router';
import { useMutation } from '@tanstack/react-query';
import YAML from 'yaml';
import { ApiError, api, unwrap } from '../api/client';
import { useCache, useEnvironment, useInvalidate } from '../api/hooks';
import type { CacheEntry, Environment } from '../api/types';
import { age, bytes } from '../format';
import { NotFoundPage } from './NotFoundPage';
import { EnvironmentForm } from '../components/EnvironmentForm';

/**
 * /environments/new and /environments/NAME: the environment file as YAML, checked by the
 * server's validate route as you type (the server's one schema: the same checks as saving);
 * saving is refused while it has errors, and each error says where. Secrets are write-only;
 * the cache panel resets the cache after a confirmation.
 */

const VALIDATE_DELAY_MS = 400;

const STARTER = `name: my-environment
repository: https://git.example.test/team/project.git
image: minimal
setup: |
  echo set up
internet:
  access: allowlist
  domains:
    - api.example.test
`;

interface Issue {
  path: string;
  message: string;
  line?: number;
  column?: number;
}

function issuesOf(error: unknown): Issue[] {
  if (!(error instanceof ApiError)) return [{ path: '', message: String(error) }];
  const issues = error.details.issues;
  if (Array.isArray(issues) && issues.length > 0) return issues as Issue[];
  return [{ path: '', message: error.message }];
}

const yamlRequest = (text: string) => ({
  body: text as never,
  bodySerializer: (body: unknown) => body as string,
  headers: { 'content-type': 'application/yaml' },
});

function SecretsPanel({ environment, yaml }: { environment: Environment; yaml: string }) {
  const invalidate = useInvalidate();
  const [name, setName] = useState('');
  const [value, setValue] = useState('');
  const save = useMutation({
    mutationFn: (change: { secrets?: Record<string, string>; removeSecrets?: string[] }) =>
      unwrap(
        api.PUT('/v1/environments/{name}', {
          params: { path: { name: environment.name } },
          body: { spec: YAML.parse(yaml) as never, ...change },
        }),
      ),
    onSuccess: async () => {
      setValue('');
      await invalidate(['environment', environment.name], ['environments']);
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    save.mutate({ secrets: { [name]: value } });
  };
  return (
    <section className="panel" aria-label="Secrets">
      <h2>Secrets</h2>
      <p className="sub">Values are write-only: they are never shown or sent back.</p>
      <ul>
        {environment.secrets.map((secret) => (
          <li key={secret}>
            <span className="mono">{secret}</span> (set){' '}
            <button type="button" onClick={() => save.mutate({ removeSecrets: [secret] })}>
              Remove {secret}
            </button>
          </li>
        ))}
      </ul>
      <form onSubmit={submit}>
        <label htmlFor="secret-name">Secret name</label>
        <input
          id="secret-name"
          value={name}
          onChange={(e) => setName(e.target.value)}
          required
          list="declared-secrets"
        />
        <datalist id="declared-secrets">
          {(Array.isArray(environment.spec.secrets) ? environment.spec.secrets : []).map((s) => (
            <option key={String(s)} value={String(s)} />
          ))}
        </datalist>
        <label htmlFor="secret-value">Value</label>
        <input
          id="secret-value"
          type="password"
          autoComplete="off"
          value={value}
          onChange={(e) => setValue(e.target.value)}
          required
        />
        <button type="submit" disabled={save.isPending}>
          Set secret
        </button>
      </form>
      {save.error && <p className="error">{save.error.message}</p>}
    </section>
  );
}

/**
 * "Test environment": as `berth env test`, the lifecycle up to lockdown, then a command, as a
 * one-attempt task without the environment's verify; its page streams the output.
 */
function TestPanel({ name }: { name: string }) {
  const navigate = useNavigate();
  const [command, setCommand] = useState('echo "environment ready in $(pwd)"');
  const [branch, setBranch] = useState('');
  const run = useMutation({
    mutationFn: () =>
      unwrap(
        api.POST('/v1/tasks', {
          body: {
            environment: name,
            command,
            attempts: 1,
            verify: false,
            ...(branch.trim() ? { branch: branch.trim() } : {}),
          },
        }),
      ),
    onSuccess: (task) => void navigate(`/tasks/${encodeURIComponent(task.id)}`),
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    run.mutate();
  };
  return (
    <form className="panel" onSubmit={submit} aria-label="Test environment">
      <h2>Test</h2>
      <p className="sub">
        Runs setup (or the cache), services and lockdown, then this command; the environment&apos;s
        verify is not run.
      </p>
      <label htmlFor="test-command">Test command</label>
      <input id="test-command" value={command} onChange={(e) => setCommand(e.target.value)} />
      <label htmlFor="test-branch">Test branch</label>
      <input
        id="test-branch"
        value={branch}
        placeholder="the default branch"
        onChange={(e) => setBranch(e.target.value)}
      />
      <button type="submit" disabled={run.isPending}>
        Test environment
      </button>
      {run.error && <p className="error">{run.error.message}</p>}
    </form>
  );
}

const listed = (record: Record<string, string>) =>
  Object.keys(record).length === 0
    ? 'none'
    : Object.entries(record)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ');

const script = (part: CacheEntry['parts']['setup']) =>
  part === null
    ? 'none'
    : `${part.script.split('\n').filter((l) => l.trim() !== '').length} lines${part.strict ? ', strict' : ''}`;

/**
 * The newest entry's key parts (what its build was made of) and which of them the environment
 * has changed since (the server compares them with the environment now: `staleBecause`).
 */
function KeyParts({ entry }: { entry: CacheEntry }) {
  const changed = new Set(entry.staleBecause);
  const row = (part: string, label: string, value: string) => (
    <>
      <dt>{label}</dt>
      <dd>
        {value}
        {changed.has(part) && <strong className="changed"> (changed since the last build)</strong>}
      </dd>
    </>
  );
  return (
    <section aria-label="Key parts of the last build">
      <h3>Key parts of the last build</h3>
      <p role="status">
        {entry.staleBecause.length === 0
          ? 'No key part changed since the last build.'
          : `Changed since the last build: ${entry.staleBecause.join(', ')}. The next task runs setup again.`}
      </p>
      <dl className="facts">
        {row('baseImage', 'Base image', entry.parts.baseImage)}
        {row(
          'repository',
          'Repository',
          `${entry.parts.repository.url} (${entry.parts.repository.defaultBranch})`,
        )}
        {row('versions', 'Versions', listed(entry.parts.versions))}
        {row('setup', 'Setup', script(entry.parts.setup))}
        {row('maintenance', 'Maintenance', script(entry.parts.maintenance))}
        {row('env', 'Variables', listed(entry.parts.env))}
        {row(
          'secrets',
          'Secrets',
          entry.parts.secrets.length === 0 ? 'none' : entry.parts.secrets.join(', '),
        )}
      </dl>
    </section>
  );
}

function CachePanel({ name }: { name: string }) {
  const cache = useCache(name);
  const invalidate = useInvalidate();
  const [confirming, setConfirming] = useState(false);
  const reset = useMutation({
    mutationFn: () =>
      unwrap(api.DELETE('/v1/environments/{name}/cache', { params: { path: { name } } })),
    onSuccess: async () => {
      setConfirming(false);
      await invalidate(['cache', name]);
    },
  });
  const entries = cache.data?.entries ?? [];
  return (
    <section className="panel" aria-label="Cache">
      <h2>Cache</h2>
      {entries.length === 0 ? (
        <p>No cache entry.</p>
      ) : (
        <>
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Key</th>
                  <th scope="col">State</th>
                  <th scope="col">Age</th>
                  <th scope="col">Size</th>
                  <th scope="col">Expires</th>
                  <th scope="col">Changed since this build</th>
                </tr>
              </thead>
              <tbody>
                {entries.map((entry) => (
                  <tr key={entry.id}>
                    <td className="mono">{entry.key.slice(0, 16)}</td>
                    <td>{entry.state}</td>
                    <td>{age(entry.createdAt)}</td>
                    <td>{bytes(entry.sizeBytes)}</td>
                    <td>{new Date(entry.expiresAt).toLocaleString()}</td>
                    <td>
                      {entry.staleBecause.length === 0 ? 'nothing' : entry.staleBecause.join(', ')}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {entries[0] && <KeyParts entry={entries[0]} />}
        </>
      )}
      {confirming ? (
        <div role="group" aria-label="Confirm cache reset">
          <p>Remove every cache entry of {name}? The next task runs setup again.</p>
          <button type="button" onClick={() => reset.mutate()} disabled={reset.isPending}>
            Yes, reset the cache
          </button>{' '}
          <button type="button" onClick={() => setConfirming(false)}>
            Keep it
          </button>
        </div>
      ) : (
        <button type="button" onClick={() => setConfirming(true)}>
          Reset cache
        </button>
      )}
      {reset.data && <p role="status">Cache reset.</p>}
      {reset.error && <p className="error">{reset.error.message}</p>}
    </section>
  );
}

export function EnvironmentPage() {
  const { name } = useParams();
  const environment = useEnvironment(name);
  const navigate = useNavigate();
  const invalidate = useInvalidate();
  const savedYaml = useMemo(
    () => (environment.data ? YAML.stringify(environment.data.spec) : undefined),
    [environment.data],
  );
  const [text, setText] = useState<string | undefined>(name === undefined ? STARTER : undefined);
  const yaml = text ?? savedYaml ?? '';
  const [issues, setIssues] = useState<Issue[] | undefined>();
  const [formIssues, setFormIssues] = useState(0);
  const [checking, setChecking] = useState(false);
  const [view, setView] = useState<'yaml' | 'form'>('yaml');

  useEffect(() => {
    if (yaml === '') return;
    let current = true;
    setChecking(true);
    const timer = setTimeout(() => {
      api
        .POST('/v1/environments/validate', yamlRequest(yaml))
        .then((outcome) => unwrap(Promise.resolve(outcome)))
        .then(
          () => current && setIssues([]),
          (error: unknown) => current && setIssues(issuesOf(error)),
        )
        .finally(() => current && setChecking(false));
    }, VALIDATE_DELAY_MS);
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [yaml]);

  const save = useMutation({
    mutationFn: () =>
      name === undefined
        ? unwrap(api.POST('/v1/environments', yamlRequest(yaml)))
        : unwrap(
            api.PUT('/v1/environments/{name}', {
              params: { path: { name } },
              ...yamlRequest(yaml),
            }),
          ),
    onSuccess: async (saved) => {
      setText(undefined);
      await invalidate(['environments'], ['environment', saved.name]);
      if (name === undefined) void navigate(`/environments/${encodeURIComponent(saved.name)}`);
    },
    onError: (error) => setIssues(issuesOf(error)),
  });

  if (environment.error instanceof ApiError && environment.error.status === 404)
    return <NotFoundPage />;
  if (name !== undefined && environment.isPending) return <p>Loading…</p>;

  // The form's own checks (a variable line that is not NAME=value, a resource that is not a
  // number) block saving too: what they flag is not in the file yet.
  const blocked =
    checking || issues === undefined || issues.length > 0 || (view === 'form' && formIssues > 0);
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!blocked) save.mutate();
  };
  return (
    <section>
      <h1>{name === undefined ? 'New environment' : `Environment ${name}`}</h1>
      <form onSubmit={submit} aria-label="Environment file">
        <div className="actions" role="group" aria-label="View">
          <button type="button" aria-pressed={view === 'yaml'} onClick={() => setView('yaml')}>
            YAML
          </button>
          <button type="button" aria-pressed={view === 'form'} onClick={() => setView('form')}>
            Form
          </button>
        </div>
        {view === 'form' ? (
          <EnvironmentForm
            yaml={yaml}
            onChange={setText}
            issues={issues ?? []}
            onLocalIssues={setFormIssues}
          />
        ) : (
          <>
            <label htmlFor="env-yaml">Environment file (YAML)</label>
            <textarea
              id="env-yaml"
              className="yaml"
              spellCheck={false}
              value={yaml}
              onChange={(e) => setText(e.target.value)}
              aria-describedby="env-issues"
              aria-invalid={issues !== undefined && issues.length > 0}
            />
          </>
        )}
        <div id="env-issues" aria-live="polite">
          {checking && <p className="sub">Checking…</p>}
          {!checking && issues !== undefined && issues.length === 0 && <p className="ok">Valid.</p>}
          {!checking && issues !== undefined && issues.length > 0 && (
            <ul className="issues" aria-label="Errors">
              {issues.map((issue, i) => (
                <li key={i} className="error">
                  {issue.line !== undefined
                    ? `line ${issue.line}, column ${issue.column ?? 1}: `
                    : ''}
                  {issue.path ? <span className="mono">{issue.path}</span> : null}
                  {issue.path ? ': ' : ''}
                  {issue.message}
                </li>
              ))}
            </ul>
          )}
        </div>
        <button type="submit" disabled={blocked || save.isPending}>
          Save
        </button>
        {save.isSuccess && <span role="status"> Saved.</span>}
      </form>
      {environment.data && savedYaml && (
        <SecretsPanel environment={environment.data} yaml={savedYaml} />
      )}
      {name !== undefined && environment.data && <TestPanel name={name} />}
      {name !== undefined && <CachePanel name={name} />}
    </section>
  );
}
