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

/** The log's lines: log text split at newlines; on a line, what follows a \r replaces it. */
export function logLines(events: readonly AttemptEvent[]): string[] {
  let text = '';
  for (const event of events) {
    if (event.type === 'log' && typeof event.text === 'string') text += event.text;
    else if (event.type === 'command' && typeof event.command === 'string') {
      if (text !== '' && !text.endsWith('\n')) text += '\n';
      text += `$ ${event.command}  (exit ${String(event.exitCode)})\n`;
    } else if (event.type === 'error' && typeof event.message === 'string') {
      if (text !== '' && !text.endsWith('\n')) text += '\n';
      text += `error: ${event.message}\n`;
    }
  }
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines.map((line) => {
    const parts = line.split('\r').filter((part) => part !== '');
    // Bidi and invisible control characters are shown as <U+XXXX> tokens.
    return revealControls(parts[parts.length - 1] ?? '');
  });
}

function LogLine({ line }: { line: string }) {
  const chunks = useMemo(() => Anser.ansiToJson(line, { json: true, remove_empty: true }), [line]);
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
    </>
  );
}

/** A request to show a line: the last line equal to `line`, asked for the `nonce`th time. */
export interface LogJump {
  line: string;
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
      : all.filter((line) => Anser.ansiToText(line).toLowerCase().includes(needle));
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
    const index = all.lastIndexOf(jump.line);
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
              className={row.index === marked && filter === '' ? 'log-line marked' : 'log-line'}
              style={{ position: 'absolute', top: 0, transform: `translateY(${row.start}px)` }}
            >
              <LogLine line={lines[row.index] ?? ''} />
            </div>
          ))}
        </div>
      </div>
    </div>
  );
}
