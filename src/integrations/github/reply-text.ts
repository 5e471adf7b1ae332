/**
 * What Berth writes on GitHub: replies, pull request bodies, review bodies. Hostile text (the
 * agent's final message, file names, verify output) goes through src/git/inert-markdown.ts (its
 * threat model is there): in a code block it cannot close, or as Markdown made inert.
 */
import { codeBlock, inlineCode } from '../../git/inert-markdown.js';

export {
  codeBlock,
  HOSTILE_TEXT_MAX,
  inertMarkdown,
  inlineCode,
  visibleText,
} from '../../git/inert-markdown.js';

export interface TaskReport {
  taskId: string;
  /** Where a person sees the task (the web UI), when the server knows its public address. */
  taskUrl?: string | undefined;
  status: string;
  /** The picked attempt's final message (hostile). */
  summary?: string | undefined;
  /** The verify command's outcome: passed / failed (exit N) / not run. */
  verify?: string | undefined;
  /** What was done with the diff, in Berth's words (already safe). */
  outcome: string;
}

/** The reply to a comment once its task ended. */
export function renderTaskReply(report: TaskReport): string {
  const task = report.taskUrl
    ? `[${inlineCode(report.taskId)}](${report.taskUrl})`
    : inlineCode(report.taskId);
  const lines = [
    `Berth task ${task} ${report.status}.`,
    '',
    report.outcome,
    '',
    `Verify: ${report.verify ?? 'not configured'}.`,
  ];
  if (report.summary !== undefined && report.summary.trim() !== '')
    lines.push('', "The agent's summary:", '', codeBlock(report.summary));
  return lines.join('\n');
}

/** The body of a pull request Berth opens for an issue: closes it when merged. */
export function renderIssuePullBody(issue: number, taskId: string, summary: string): string {
  return [
    `Fixes #${issue}`,
    '',
    `Made by Berth: task ${inlineCode(taskId)}. The agent's summary:`,
    '',
    codeBlock(summary),
  ].join('\n');
}
