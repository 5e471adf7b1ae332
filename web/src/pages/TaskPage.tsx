import { useState, type FormEvent } from 'react';
import { useParams } from 'react-router';
import { useMutation } from '@tanstack/react-query';
import { ApiError, api, unwrap } from '../api/client';
import { useAttemptEvents } from '../api/attempt-events';
import { useInvalidate, useTask } from '../api/hooks';
import type { Attempt, AttemptEvent, Task } from '../api/types';
import { AgentTurns } from '../components/AgentTurns';
import { DiffView } from '../components/DiffView';
import { LogRowView, LogView, logLines, type LogJump } from '../components/LogView';
import { PhaseTimeline } from '../components/PhaseTimeline';
import { SafeLink } from '../components/SafeLink';
import { Status } from '../components/Status';
import { age, duration } from '../format';
import { revealControls } from '../untrusted-text';
import { NotFoundPage } from './NotFoundPage';

const live = (status: string) => status === 'queued' || status === 'running';

/** A failed attempt, failure first: the phase, the failing command and exit code, the log tail. */
function Failure({
  attempt,
  events,
  onJump,
}: {
  attempt: Attempt;
  events: readonly AttemptEvent[];
  onJump: (seq: number) => void;
}) {
  if (attempt.status !== 'failed') return null;
  const phases = events.filter((e) => e.type === 'phase').map((e) => String(e.phase));
  const failedIn = phases.filter((p) => p !== 'failed').pop() ?? attempt.phase;
  const failedCommand = [...events]
    .reverse()
    .find((e) => e.type === 'command' && typeof e.exitCode === 'number' && e.exitCode !== 0);
  const all = logLines(events);
  const tail = all.slice(-15);
  // The failure is Berth's structured record (the error event, else the failing command's),
  // never a line of sandbox text that looks like one.
  const failure =
    [...events].reverse().find((e) => e.type === 'error') ?? failedCommand ?? undefined;
  return (
    <div className="failure" role="alert" id="failure">
      <h3>Failed in {failedIn}</h3>
      <p>
        {attempt.errorCode ? `${attempt.errorCode}: ` : ''}
        {attempt.error ?? 'no error message'}
      </p>
      {failedCommand && (
        <p>
          Command <code>{String(failedCommand.command)}</code> exited with{' '}
          {String(failedCommand.exitCode)}
        </p>
      )}
      {tail.length > 0 && (
        <pre className="tail">
          {tail.map((row, i) => (
            <div key={i} className={row.berth ? 'berth' : undefined}>
              <LogRowView row={row} />
            </div>
          ))}
        </pre>
      )}
      {failure !== undefined && (
        <button type="button" onClick={() => onJump(failure.seq)}>
          Jump to the failure
        </button>
      )}
    </div>
  );
}

/** While an attempt runs: the command (or the agent's tool call) it is on now. */
function CurrentCommand({
  attempt,
  events,
}: {
  attempt: Attempt;
  events: readonly AttemptEvent[];
}) {
  if (!live(attempt.status)) return null;
  const last = events.findLast(
    (e) =>
      e.type === 'tool_call' ||
      e.type === 'command_start' ||
      e.type === 'command' ||
      e.type === 'phase',
  );
  if (!last || last.type === 'phase') return null;
  const text =
    last.type === 'tool_call'
      ? `${String(last.tool)} ${String(last.arguments)}`
      : last.type === 'command_start'
        ? String(last.command)
        : `last command: ${String(last.command)} (exit ${String(last.exitCode)})`;
  return (
    <p className="current" role="status" aria-label="Current command">
      Now: <code>{revealControls(text)}</code>
    </p>
  );
}

interface LiveFile {
  path: string;
  added: number | null;
  removed: number | null;
  binary: boolean;
}

/** While an attempt runs: the files it has changed so far (the server lists them now and then). */
function ChangedSoFar({ attempt, events }: { attempt: Attempt; events: readonly AttemptEvent[] }) {
  if (!live(attempt.status)) return null;
  const last = events.findLast((e) => e.type === 'files');
  if (!last || !Array.isArray(last.files)) return null;
  const files = last.files as LiveFile[];
  const total = typeof last.total === 'number' ? last.total : files.length;
  return (
    <section className="panel" aria-label="Changed so far">
      <h3>
        Changed so far: {total} file{total === 1 ? '' : 's'}
      </h3>
      {files.length > 0 && (
        <ul className="files-so-far">
          {files.map((file) => (
            <li key={file.path}>
              <code>{revealControls(String(file.path))}</code>{' '}
              {file.binary ? '(binary)' : `+${file.added ?? 0} −${file.removed ?? 0}`}
            </li>
          ))}
          {total > files.length && <li>… and {total - files.length} more</li>}
        </ul>
      )}
    </section>
  );
}

/** The attempt's warnings (its `warning` events) and the hosts the egress proxy denied. */
function ResultNotes({ attempt, events }: { attempt: Attempt; events: readonly AttemptEvent[] }) {
  const warnings = events.filter((e) => e.type === 'warning');
  const denied = attempt.deniedHosts ?? [];
  if (warnings.length === 0 && denied.length === 0) return null;
  return (
    <>
      {warnings.length > 0 && (
        <>
          <h3>Warnings</h3>
          <ul className="warnings" aria-label="Warnings">
            {warnings.map((w) => (
              <li key={w.seq}>{revealControls(String(w.message))}</li>
            ))}
          </ul>
        </>
      )}
      {denied.length > 0 && (
        <>
          <h3>Denied hosts</h3>
          <p className="sub">
            Suggested changes to the environment file, for a person to review (Berth never applies
            them):
          </p>
          <ul className="denied" aria-label="Denied hosts">
            {denied.map((d, i) => (
              <li key={i}>
                <code>
                  {revealControls(d.method)} {revealControls(d.host)}
                </code>
                : {revealControls(d.reason)}
                <pre className="suggestion">{revealControls(d.suggestion)}</pre>
              </li>
            ))}
          </ul>
        </>
      )}
    </>
  );
}

function AttemptCard({
  task,
  attempt,
  selected,
  onSelect,
}: {
  task: Task;
  attempt: Attempt;
  selected: boolean;
  onSelect: () => void;
}) {
  const invalidate = useInvalidate();
  const pick = useMutation({
    mutationFn: () =>
      unwrap(
        api.POST('/v1/tasks/{id}/pick', {
          params: { path: { id: task.id } },
          body: { attempt: attempt.id },
        }),
      ),
    onSuccess: () => invalidate(['task', task.id]),
  });
  const picked = task.picked === attempt.id;
  const verify = attempt.verification ? (attempt.verification.passed ? 'passed' : 'failed') : '–';
  return (
    <article
      className={`attempt${selected ? ' selected' : ''}`}
      aria-label={`Attempt ${attempt.index + 1}`}
    >
      <h3>
        Attempt {attempt.index + 1} {picked && <span className="picked">picked</span>}
      </h3>
      <dl>
        <dt>Status</dt>
        <dd>
          <Status value={attempt.status} />
        </dd>
        <dt>Verify</dt>
        <dd>{verify}</dd>
        <dt>Files</dt>
        <dd>
          {attempt.filesChanged} (+{attempt.linesAdded} −{attempt.linesRemoved})
        </dd>
        <dt>Time</dt>
        <dd>{duration(attempt.durationMs)}</dd>
        <dt>Tokens</dt>
        <dd>{attempt.tokens ?? '–'}</dd>
      </dl>
      <div className="actions">
        <button type="button" onClick={onSelect} aria-pressed={selected}>
          Show
        </button>
        {task.attempts.length > 1 && (
          <button
            type="button"
            onClick={() => pick.mutate()}
            disabled={picked || live(attempt.status) || pick.isPending}
          >
            Pick
          </button>
        )}
      </div>
      {pick.error && <p className="error">{pick.error.message}</p>}
    </article>
  );
}

function PullRequestBox({ task }: { task: Task }) {
  const [title, setTitle] = useState('');
  const [draft, setDraft] = useState(false);
  const create = useMutation({
    mutationFn: () =>
      unwrap(
        api.POST('/v1/tasks/{id}/pr', {
          params: { path: { id: task.id } },
          body: { ...(title.trim() ? { title: title.trim() } : {}), draft },
        }),
      ),
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    create.mutate();
  };
  return (
    <form className="panel" onSubmit={submit} aria-label="Pull request">
      <label htmlFor="pr-title">Pull request title</label>
      <input id="pr-title" value={title} onChange={(e) => setTitle(e.target.value)} />
      <label>
        <input type="checkbox" checked={draft} onChange={(e) => setDraft(e.target.checked)} /> Draft
      </label>
      <button type="submit" disabled={create.isPending || task.picked === null}>
        Create pull request
      </button>
      {create.data && (
        <p>
          Pushed {revealControls(create.data.branch)}
          {create.data.pullRequest ? (
            <>
              : <SafeLink href={create.data.pullRequest.url} />
            </>
          ) : (
            ' (not a GitHub remote: no pull request)'
          )}
        </p>
      )}
      {create.error && <p className="error">{create.error.message}</p>}
    </form>
  );
}

function FollowUpBox({ task }: { task: Task }) {
  const [kind, setKind] = useState<'prompt' | 'command'>('prompt');
  const [text, setText] = useState('');
  const invalidate = useInvalidate();
  const send = useMutation({
    mutationFn: () =>
      unwrap(
        api.POST('/v1/tasks/{id}/followup', {
          params: { path: { id: task.id } },
          body: kind === 'prompt' ? { prompt: text } : { command: text },
        }),
      ),
    onSuccess: async () => {
      setText('');
      await invalidate(['task', task.id]);
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    send.mutate();
  };
  return (
    <form className="panel" onSubmit={submit} aria-label="Follow-up">
      <fieldset>
        <legend>Follow-up</legend>
        <label>
          <input type="radio" checked={kind === 'prompt'} onChange={() => setKind('prompt')} />{' '}
          prompt
        </label>
        <label>
          <input type="radio" checked={kind === 'command'} onChange={() => setKind('command')} />{' '}
          command
        </label>
      </fieldset>
      <label htmlFor="followup-text">Follow-up {kind}</label>
      <textarea
        id="followup-text"
        value={text}
        onChange={(e) => setText(e.target.value)}
        required
      />
      <button type="submit" disabled={send.isPending || task.picked === null}>
        Send follow-up
      </button>
      {send.error && <p className="error">{send.error.message}</p>}
    </form>
  );
}

function NetworkDecisions({ events }: { events: readonly AttemptEvent[] }) {
  const decisions = events.filter((e) => e.type === 'egress');
  if (decisions.length === 0) return <p className="sub">No network requests recorded.</p>;
  return (
    <div className="table-wrap">
      <table>
        <thead>
          <tr>
            <th scope="col">Host</th>
            <th scope="col">Method</th>
            <th scope="col">Decision</th>
            <th scope="col">Rule</th>
          </tr>
        </thead>
        <tbody>
          {decisions.map((e) => (
            <tr key={e.seq}>
              <td>{String(e.host)}</td>
              <td>{String(e.method)}</td>
              <td>{e.allowed ? 'allowed' : 'denied'}</td>
              <td>{String(e.rule)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function AttemptDetail({ task, attempt }: { task: Task; attempt: Attempt }) {
  const { events, ended } = useAttemptEvents(task.id, attempt.id);
  const [jump, setJump] = useState<LogJump | undefined>();
  return (
    <section className="attempt-detail" aria-label={`Attempt ${attempt.index + 1} details`}>
      <Failure
        attempt={attempt}
        events={events}
        onJump={(seq) => setJump({ seq, nonce: (jump?.nonce ?? 0) + 1 })}
      />
      <h2>Attempt {attempt.index + 1}</h2>
      {attempt.request && (
        <p>
          Follow-up of {attempt.followUpOf}: <q>{attempt.request}</q>
        </p>
      )}
      <PhaseTimeline events={events} attempt={attempt} />
      <CurrentCommand attempt={attempt} events={events} />
      <ChangedSoFar attempt={attempt} events={events} />
      <h3 id="log">Log</h3>
      <LogView events={events} live={!ended} jump={jump} />
      <h3>Agent</h3>
      <AgentTurns events={events} />
      {attempt.commands.length > 0 && (
        <>
          <h3>Commands</h3>
          <ol className="commands" aria-label="Commands">
            {attempt.commands.map((command, i) => (
              <li key={i}>
                <details open={command.exitCode !== 0}>
                  <summary>
                    <code>{command.command}</code> · {command.phase} · exit {command.exitCode}
                    {command.timedOut ? ' (timed out)' : ''} · {duration(command.durationMs)}
                  </summary>
                  <pre className="output">{command.output}</pre>
                </details>
              </li>
            ))}
          </ol>
        </>
      )}
      {attempt.message && (
        <>
          <h3>Answer</h3>
          <pre className="message">{attempt.message}</pre>
        </>
      )}
      <h3>Diff</h3>
      {attempt.secretFiles.length > 0 && (
        <p className="error">
          Files whose change held a secret value: {attempt.secretFiles.join(', ')}
        </p>
      )}
      <DiffView diff={attempt.diff} label={`Diff of attempt ${attempt.index + 1}`} />
      {attempt.turnDiff !== null && (
        <>
          <h3>This turn&apos;s diff</h3>
          <DiffView diff={attempt.turnDiff} label="Diff of this turn" />
        </>
      )}
      <ResultNotes attempt={attempt} events={events} />
      <h3>Network</h3>
      <NetworkDecisions events={events} />
    </section>
  );
}

export function TaskPage() {
  const { id = '' } = useParams();
  const task = useTask(id);
  const invalidate = useInvalidate();
  const [selected, setSelected] = useState<string | undefined>();
  const [copied, setCopied] = useState(false);
  const cancel = useMutation({
    mutationFn: () => unwrap(api.POST('/v1/tasks/{id}/cancel', { params: { path: { id } } })),
    onSuccess: () => invalidate(['task', id], ['tasks']),
  });
  if (task.error instanceof ApiError && (task.error.status === 404 || task.error.status === 400))
    return <NotFoundPage />;
  if (task.isPending) return <p>Loading…</p>;
  if (!task.data) return <p className="error">{task.error?.message}</p>;
  const t = task.data;
  const shownId = selected ?? t.picked ?? t.attempts[0]?.id;
  const shown = t.attempts.find((a) => a.id === shownId);
  const applyCommand = `npx berth task apply ${t.id}${shown ? ` --attempt ${shown.id}` : ''}`;
  const copy = () => {
    void navigator.clipboard?.writeText(applyCommand).then(() => setCopied(true));
  };
  return (
    <section>
      <div className="heading">
        <h1>
          Task <span className="mono">{t.id}</span>
        </h1>
        <Status value={t.status} />
      </div>
      <dl className="facts">
        <dt>Environment</dt>
        <dd>{t.environment}</dd>
        <dt>Branch</dt>
        <dd>{revealControls(t.branch ?? t.sha ?? 'default')}</dd>
        <dt>Created</dt>
        <dd>
          {age(t.createdAt)} by {t.createdBy ?? 'unknown'}
        </dd>
        <dt>{t.command ? 'Command' : 'Prompt'}</dt>
        <dd>
          <pre className="prompt">{t.command ?? t.prompt}</pre>
        </dd>
      </dl>
      <div className="actions">
        {live(t.status) && (
          <button type="button" onClick={() => cancel.mutate()} disabled={cancel.isPending}>
            Cancel
          </button>
        )}
        <button type="button" onClick={copy}>
          Copy apply command
        </button>
        <code className="apply-command">{applyCommand}</code>
        {copied && <span className="sub">copied</span>}
      </div>
      {cancel.error && <p className="error">{cancel.error.message}</p>}
      <h2>Attempts</h2>
      <div className="attempts">
        {t.attempts.map((a) => (
          <AttemptCard
            key={a.id}
            task={t}
            attempt={a}
            selected={a.id === shownId}
            onSelect={() => setSelected(a.id)}
          />
        ))}
      </div>
      {shown && <AttemptDetail key={shown.id} task={t} attempt={shown} />}
      {!live(t.status) && (
        <div className="side-by-side">
          <FollowUpBox task={t} />
          <PullRequestBox task={t} />
        </div>
      )}
    </section>
  );
}
