import { attemptStatus, type Attempt } from '../../domain/task/attempt.js';
import type { Task } from '../../domain/task/task.js';
import { cut, link, untrusted } from './slack-text.js';

/**
 * What Berth says in a Slack thread, as Block Kit: the progress reply (one message, edited as
 * phases pass), the final message (status, the agent's final message cut with a link to the
 * rest, files and lines changed, the verify result, one line per attempt, buttons), and the
 * short replies. Every piece of text from a sandbox or a person goes through `untrusted`, and
 * every text object is `verbatim` (slack-text.ts has the threat model).
 */

export type Block = Record<string, unknown>;

export interface SlackMessage {
  /** The notification text (also what clients without blocks show). */
  text: string;
  blocks?: Block[];
}

/** Action ids of the final message's buttons. */
export const ACTION_CREATE_PR = 'berth_create_pr';
export const ACTION_VIEW_DIFF = 'berth_view_diff';
export const ACTION_PICK = 'berth_pick';

/** How much of the agent's final message the final message shows (Slack's section limit is 3,000). */
export const FINAL_MESSAGE_CHARS = 1200;
const FILES_SHOWN = 10;
const PICK_BUTTONS = 8;

function section(text: string): Block {
  return { type: 'section', text: { type: 'mrkdwn', text, verbatim: true } };
}

function context(text: string): Block {
  return { type: 'context', elements: [{ type: 'mrkdwn', text, verbatim: true }] };
}

export function taskUrl(publicUrl: string, taskId: string): string {
  return `${publicUrl.replace(/\/+$/, '')}/tasks/${encodeURIComponent(taskId)}`;
}

function phaseLine(attempt: Attempt, count: number): string {
  const which = count > 1 ? `attempt ${attempt.index + 1}: ` : '';
  return `${which}${attempt.phase}`;
}

/** The progress reply: the task id, its link, and where each attempt is. */
export function progressMessage(
  task: Task,
  attempts: readonly Attempt[],
  publicUrl: string,
  turn?: { attemptIds: readonly string[] },
): SlackMessage {
  const shown = turn ? attempts.filter((a) => turn.attemptIds.includes(a.id)) : attempts;
  const phases =
    shown.length > 0 ? shown.map((a) => phaseLine(a, shown.length)).join(' · ') : 'queued';
  const what = turn ? 'Follow-up on task' : 'Task';
  const text = `${what} \`${task.id}\` (${link(taskUrl(publicUrl, task.id), 'open in Berth')}): ${untrusted(phases)}`;
  return { text, blocks: [section(text)] };
}

function filesLine(attempt: Attempt): string {
  const files = attempt.result?.files ?? [];
  if (files.length === 0) return 'No files changed.';
  const added = files.reduce((n, f) => n + (f.added ?? 0), 0);
  const removed = files.reduce((n, f) => n + (f.removed ?? 0), 0);
  const names = files
    .slice(0, FILES_SHOWN)
    .map((f) => untrusted(f.path))
    .join(', ');
  const more = files.length > FILES_SHOWN ? ` and ${files.length - FILES_SHOWN} more` : '';
  return `${files.length} file${files.length === 1 ? '' : 's'} changed, +${added} −${removed}: ${names}${more}`;
}

function verifyLine(attempt: Attempt): string | undefined {
  const v = attempt.result?.verification;
  if (!v) return undefined;
  const how = v.passed ? 'passed' : v.timedOut ? 'timed out' : `failed (exit code ${v.exitCode})`;
  return `Verify \`${untrusted(v.command.split('\n')[0] ?? '')}\`: ${how}`;
}

/** Why an attempt failed; a failed setup names its failing line and exit code. */
function failureLine(attempt: Attempt): string | undefined {
  const error = attempt.error;
  if (!error) return undefined;
  const d = error.details;
  if ((d.reason === 'setup' || d.reason === 'maintenance') && typeof d.exitCode === 'number') {
    const where =
      typeof d.line === 'number'
        ? ` at line ${d.line}${typeof d.lineText === 'string' ? ` (\`${untrusted(d.lineText.trim().slice(0, 200))}\`)` : ''}`
        : '';
    return `The ${d.reason} script failed${where} with exit code ${d.exitCode}.`;
  }
  return `Failed: ${untrusted(cut(error.message, 500).text)}`;
}

function attemptLine(attempt: Attempt, picked: boolean): string {
  const status = attemptStatus(attempt.phase);
  const parts = [`${attempt.index + 1}. ${status}${picked ? ' (picked)' : ''}`];
  if (attempt.result) parts.push(filesLine(attempt).split(':')[0] ?? '');
  const v = attempt.result?.verification;
  if (v) parts.push(`verify ${v.passed ? 'passed' : 'failed'}`);
  if (attempt.error) parts.push(untrusted(cut(attempt.error.message, 120).text));
  return parts.join(' · ');
}

/**
 * The final message of a task (or of a follow-up turn, `turn`): about the picked attempt, else the
 * first that succeeded, else the first.
 */
export function finalMessage(
  task: Task,
  attempts: readonly Attempt[],
  publicUrl: string,
  turn?: { attemptIds: readonly string[] },
): SlackMessage {
  const shown = turn ? attempts.filter((a) => turn.attemptIds.includes(a.id)) : attempts;
  const picked = task.pickedAttemptId ?? (shown.length === 1 ? shown[0]?.id : undefined);
  const main =
    shown.find((a) => a.id === picked) ??
    shown.find((a) => attemptStatus(a.phase) === 'succeeded') ??
    shown[0];
  const url = taskUrl(publicUrl, task.id);
  const statuses = shown.map((a) => attemptStatus(a.phase));
  const status = statuses.includes('succeeded')
    ? 'succeeded'
    : statuses.every((s) => s === 'cancelled')
      ? 'cancelled'
      : 'failed';
  const head = `*${status === 'succeeded' ? 'Succeeded' : status === 'cancelled' ? 'Cancelled' : 'Failed'}*${turn ? ' (follow-up)' : ''} · task \`${task.id}\` · ${link(url, 'open in Berth')}`;
  const blocks: Block[] = [section(head)];
  if (main?.result) {
    const message = cut(main.result.message.trim() || '(no final message)', FINAL_MESSAGE_CHARS);
    blocks.push(
      section(
        `${untrusted(message.text)}${message.cut ? `\n${link(url, 'Read the rest in Berth')}` : ''}`,
      ),
    );
    blocks.push(context(filesLine(main)));
  }
  const verify = main ? verifyLine(main) : undefined;
  if (verify) blocks.push(context(verify));
  const failure = main && !main.result ? failureLine(main) : undefined;
  if (failure) blocks.push(section(failure));
  if (shown.length > 1)
    blocks.push(section(shown.map((a) => attemptLine(a, a.id === picked)).join('\n')));

  const elements: Block[] = [];
  if (main?.result && main.result.files.length > 0 && main.id === picked)
    elements.push({
      type: 'button',
      action_id: ACTION_CREATE_PR,
      text: { type: 'plain_text', text: 'Create pull request' },
      style: 'primary',
      value: task.id,
    });
  if (main?.result)
    elements.push({
      type: 'button',
      action_id: ACTION_VIEW_DIFF,
      text: { type: 'plain_text', text: 'View diff' },
      url,
    });
  if (shown.length > 1)
    for (const a of shown.slice(0, PICK_BUTTONS))
      if (a.result && a.id !== picked)
        elements.push({
          type: 'button',
          action_id: `${ACTION_PICK}_${a.index + 1}`,
          text: { type: 'plain_text', text: `Pick attempt ${a.index + 1}` },
          value: `${task.id} ${a.id}`,
        });
  if (elements.length > 0) blocks.push({ type: 'actions', elements });
  return { text: `Task ${task.id} ${status}`, blocks };
}

/** A short threaded reply of Berth's own words (with the given untrusted parts escaped by the caller). */
export function replyMessage(text: string): SlackMessage {
  return { text, blocks: [section(text)] };
}

export const EXAMPLE_MENTION =
  '@berth fix the failing integration tests in the payments service env=payments attempts=2';
