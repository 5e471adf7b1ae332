import { useEffect, useMemo, useRef, useState } from 'react';
import { revealControls } from '../untrusted-text';
import Anser from 'anser';
import { useVirtualizer } from '@tanstack/react-virtual';
import type { AttemptEvent } from '../api/types';

/**
 * An attempt's log with ANSI colours (anser turns escapes into coloured spans of text; nothing
 * is ever rendered as HTML), carriage-return progress bars collapsed to their last state, a
 * virtualised list (only the visible rows are in the DOM), follow/pause and a line filter.
 */

const ROW_PX = 18;

/**
 * One row of the log: sandbox text, or one of Berth's own records (a phase, a command and its
 * exit code, an error) from a structured event. Berth's rows carry `berth` and the event's `seq`
 * and are drawn with a marker outside the text, so nothing a sandbox prints can pass for one.
 */
export interface LogRow {
  text: string;
  berth?: 'phase' | 'command' | 'error';
  seq?: number;
}

/** The log's rows: log text split at newlines (on a line, what follows a \r replaces it). */
export function logLines(events: readonly AttemptEvent[]): LogRow[] {
  const rows: LogRow[] = [];
  let partial = '';
  const flush = (all: boolean) => {
    const lines = partial.split('\n');
    partial = all ? '' : (lines.pop() ?? '');
    if (all && lines[lines.length - 1] === '') lines.pop();
    for (const line of lines) {
      const parts = line.split('\r').filter((part) => part !== '');
      // Bidi and invisible control characters are shown as <U+XXXX> tokens.
      rows.push({ text: revealControls(parts[parts.length - 1] ?? '') });
    }
  };
  const record = (row: LogRow) => {
    flush(true);
    rows.push({ ...row, text: revealControls(row.text) });
  };
  for (const event of events) {
    if (event.type === 'log' && typeof event.text === 'string') partial += event.text;
    else if (event.type === 'command' && typeof event.command === 'string')
      record({
        berth: 'command',
        seq: event.seq,
        text: `${event.command}  (exit ${String(event.exitCode)})`,
      });
    else if (event.type === 'error' && typeof event.message === 'string')
      record({ berth: 'error', seq: event.seq, text: event.message });
    else if (event.type === 'phase' && typeof event.phase === 'string')
      record({ berth: 'phase', seq: event.seq, text: event.phase });
  }
  flush(true);
  return rows;
}

/** The marker of Berth's own rows: an element beside the text, never part of it. */
export function BerthMark({ kind }: { kind: NonNullable<LogRow['berth']> }) {
  const label = { phase: 'Berth: phase', command: 'Berth: command', error: 'Berth: error' }[kind];
  return (
    <span className={`berth-mark berth-${kind}`} role="img" aria-label={label} title={label}>
      {kind === 'error' ? '✖' : kind === 'command' ? '$' : '▸'}
    </span>
  );
}

export function LogRowView({ row }: { row: LogRow }) {
  return (
    <>
      {row.berth && <BerthMark kind={row.berth} />}
      <LogLine line={row.text} />
    </>
  );
}

/** A log line longer than this shows its start and a "Show more" button (each adds as much). */
export const LINE_CAP = 4000;

function LogLine({ line }: { line: string }) {
  const [shown, setShown] = useState(LINE_CAP);
  // Only the shown part is parsed for colours: a line of megabytes costs no more than LINE_CAP.
  const part = line.length > shown ? line.slice(0, shown) : line;
  const chunks = useMemo(() => Anser.ansiToJson(part, { json: true, remove_empty: true }), [part]);
  return (
    <>
      {chunks.map((chunk, i) => (
        <span
          key={i}
          style={{
            color: chunk.fg ? `rgb(${chunk.fg})` : undefined,
            backgroundColor: chunk.bg ? `rgb(${chunk.bg})` : undefined,
            fontWeight: chunk.decorations.includes('bold') ? 'bold' : undefined,
          }}
        >
          {chunk.content}
        </span>
      ))}
      {line.length > shown && (
        <button type="button" className="show-more" onClick={() => setShown(shown + LINE_CAP)}>
          Show more ({line.length - shown} more characters)
        </button>
      )}
    </>
  );
}

/** A request to show Berth's record of the event `seq`, asked for the `nonce`th time. */
export interface LogJump {
  seq: number;
  nonce: number;
}

export function LogView({
  events,
  live,
  jump,
}: {
  events: readonly AttemptEvent[];
  live: boolean;
  jump?: LogJump | undefined;
}) {
  const all = useMemo(() => logLines(events), [events]);
  const [filter, setFilter] = useState('');
  const [follow, setFollow] = useState(true);
  const lines = useMemo(() => {
    const needle = filter.trim().toLowerCase();
    return needle === ''
      ? all
      : all.filter((row) => Anser.ansiToText(row.text).toLowerCase().includes(needle));
  }, [all, filter]);
  const parent = useRef<HTMLDivElement>(null);
  const rows = useVirtualizer({
    count: lines.length,
    getScrollElement: () => parent.current,
    estimateSize: () => ROW_PX,
    overscan: 20,
  });
  useEffect(() => {
    if (follow && lines.length > 0) rows.scrollToIndex(lines.length - 1, { align: 'end' });
  }, [follow, lines.length, rows]);
  const [marked, setMarked] = useState<number | undefined>();
  useEffect(() => {
    if (!jump) return;
    const index = all.findIndex((row) => row.seq === jump.seq);
    if (index < 0) return;
    setFilter('');
    setFollow(false);
    setMarked(index);
    rows.scrollToIndex(index, { align: 'center' });
    parent.current?.scrollIntoView({ block: 'center' });
    parent.current?.focus();
    // Only a new jump moves the log, not new lines (`all` and `rows` are left out on purpose).
  }, [jump]);
  return (
    <div className="log">
      <div className="log-tools">
        <button type="button" onClick={() => setFollow(!follow)} aria-pressed={follow}>
          {follow ? 'Pause' : 'Follow'}
        </button>
        <label>
          Search log{' '}
          <input type="search" value={filter} onChange={(e) => setFilter(e.target.value)} />
        </label>
        <span className="sub">
          {lines.length} lines{live ? ' · live' : ''}
        </span>
      </div>
      <div
        className="log-lines"
        ref={parent}
        role="log"
        aria-label="Log"
        tabIndex={0}
        onWheel={(e) => {
          if (e.deltaY < 0) setFollow(false);
        }}
      >
        <div style={{ height: rows.getTotalSize(), position: 'relative' }}>
          {rows.getVirtualItems().map((row) => (
            <div
              key={row.key}
              className={`log-line${row.index === marked && filter === '' ? ' marked' : ''}${lines[row.index]?.berth ? ' berth' : ''}`}
              style={{ position: 'absolute', top: 0, transform: `translateY(${row.start}px)` }}
            >
              <LogRowView row={lines[row.index] ?? { text: '' }} />
            </div>
          ))}
        </div>
      </div>
    </div>
  );
}
