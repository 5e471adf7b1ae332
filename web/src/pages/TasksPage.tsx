import { useMemo, useState, type FormEvent } from 'react';
import { Link, useNavigate } from 'react-router';
import { useMutation } from '@tanstack/react-query';
import { api, unwrap } from '../api/client';
import { useEnvironments, useInvalidate, useTasks } from '../api/hooks';
import type { TaskSummary } from '../api/types';
import { Status } from '../components/Status';
import { revealControls } from '../untrusted-text';
import { age, duration } from '../format';

const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;

function taskDuration(task: TaskSummary): number | null {
  const values = task.attempts.map((a) => a.durationMs).filter((v): v is number => v !== null);
  return values.length > 0 ? Math.max(...values) : null;
}

function NewTaskForm({ onDone }: { onDone: () => void }) {
  const environments = useEnvironments();
  const navigate = useNavigate();
  const invalidate = useInvalidate();
  const [environment, setEnvironment] = useState('');
  const [ref, setRef] = useState('');
  const [attempts, setAttempts] = useState(1);
  const [kind, setKind] = useState<'prompt' | 'command'>('prompt');
  const [text, setText] = useState('');
  const submit = useMutation({
    mutationFn: () => {
      const isSha = /^[0-9a-f]{7,40}$/i.test(ref.trim());
      return unwrap(
        api.POST('/v1/tasks', {
          body: {
            environment,
            attempts,
            ...(kind === 'prompt' ? { prompt: text } : { command: text }),
            ...(ref.trim() === '' ? {} : isSha ? { sha: ref.trim() } : { branch: ref.trim() }),
          },
        }),
      );
    },
    onSuccess: async (task) => {
      await invalidate(['tasks']);
      onDone();
      void navigate(`/tasks/${encodeURIComponent(task.id)}`);
    },
  });
  const names = environments.data?.environments.map((e) => e.name) ?? [];
  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    submit.mutate();
  };
  return (
    <form className="panel new-task" onSubmit={onSubmit} aria-label="New task">
      <label htmlFor="nt-env">Environment</label>
      <select
        id="nt-env"
        value={environment}
        onChange={(e) => setEnvironment(e.target.value)}
        required
      >
        <option value="">Choose…</option>
        {names.map((name) => (
          <option key={name} value={name}>
            {name}
          </option>
        ))}
      </select>
      <label htmlFor="nt-ref">Branch or SHA</label>
      <input
        id="nt-ref"
        value={ref}
        onChange={(e) => setRef(e.target.value)}
        placeholder="the default branch"
      />
      <label htmlFor="nt-attempts">Attempts</label>
      <input
        id="nt-attempts"
        type="number"
        min={1}
        value={attempts}
        onChange={(e) => setAttempts(Math.max(1, Number(e.target.value) || 1))}
      />
      <fieldset>
        <legend>Run</legend>
        <label>
          <input
            type="radio"
            name="nt-kind"
            checked={kind === 'prompt'}
            onChange={() => setKind('prompt')}
          />{' '}
          a prompt (the agent)
        </label>
        <label>
          <input
            type="radio"
            name="nt-kind"
            checked={kind === 'command'}
            onChange={() => setKind('command')}
          />{' '}
          a command
        </label>
      </fieldset>
      <label htmlFor="nt-text">{kind === 'prompt' ? 'Prompt' : 'Command'}</label>
      <textarea id="nt-text" value={text} onChange={(e) => setText(e.target.value)} required />
      <div className="actions">
        <button type="submit" disabled={submit.isPending}>
          Start task
        </button>
        <button type="button" onClick={onDone}>
          Close
        </button>
      </div>
      {submit.error && (
        <p className="error" role="alert">
          {submit.error.message}
        </p>
      )}
    </form>
  );
}

export function TasksPage() {
  const [environment, setEnvironment] = useState('');
  const [status, setStatus] = useState('');
  const [text, setText] = useState('');
  const [creating, setCreating] = useState(false);
  const tasks = useTasks(environment || undefined);
  const environments = useEnvironments();
  const shown = useMemo(() => {
    const needle = text.trim().toLowerCase();
    return (tasks.data?.tasks ?? [])
      .filter((t) => status === '' || t.status === status)
      .filter(
        (t) =>
          needle === '' ||
          [t.id, t.prompt, t.command ?? '', t.branch ?? '', t.environment, t.createdBy ?? ''].some(
            (v) => v.toLowerCase().includes(needle),
          ),
      )
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }, [tasks.data, status, text]);
  return (
    <section>
      <div className="heading">
        <h1>Tasks</h1>
        <button type="button" onClick={() => setCreating(true)}>
          New task
        </button>
      </div>
      {creating && <NewTaskForm onDone={() => setCreating(false)} />}
      <div className="filters">
        <label>
          Environment{' '}
          <select value={environment} onChange={(e) => setEnvironment(e.target.value)}>
            <option value="">all</option>
            {(environments.data?.environments ?? []).map((e) => (
              <option key={e.name} value={e.name}>
                {e.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Status{' '}
          <select value={status} onChange={(e) => setStatus(e.target.value)}>
            <option value="">all</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Search <input type="search" value={text} onChange={(e) => setText(e.target.value)} />
        </label>
      </div>
      {tasks.isPending && <p>Loading…</p>}
      {tasks.error && <p className="error">{tasks.error.message}</p>}
      {tasks.data && shown.length === 0 && <p>No tasks.</p>}
      {shown.length > 0 && (
        <div className="table-wrap">
          <table className="tasks">
            <thead>
              <tr>
                <th scope="col">Task</th>
                <th scope="col">Status</th>
                <th scope="col">Environment</th>
                <th scope="col">Branch</th>
                <th scope="col">Who</th>
                <th scope="col">Age</th>
                <th scope="col">Attempts</th>
                <th scope="col">Duration</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((task) => (
                <tr key={task.id}>
                  <td>
                    <Link to={`/tasks/${encodeURIComponent(task.id)}`}>{task.id}</Link>
                    <div className="sub">{(task.prompt || task.command || '').slice(0, 120)}</div>
                  </td>
                  <td>
                    <Status value={task.status} />
                  </td>
                  <td>{task.environment}</td>
                  <td>{revealControls(task.branch ?? task.sha ?? 'default')}</td>
                  <td>{task.createdBy ?? 'unknown'}</td>
                  <td>{age(task.createdAt)}</td>
                  <td>{task.attempts.length}</td>
                  <td>{duration(taskDuration(task))}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
