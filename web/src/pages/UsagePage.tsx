import { useState } from 'react';
import { USAGE_GROUPINGS, useUsage, type UsageGrouping } from '../api/usage';
import { bytes, duration } from '../format';

/**
 * What the finished attempts used (GET /v1/usage): model tokens in and out, the sandboxes' CPU
 * time and peak memory, wall time, by environment, token or UTC day, over the last days. An
 * admin sees every environment's, another token the environments it may see (the server
 * decides).
 */

const PERIODS = [1, 7, 30, 90] as const;

interface Figures {
  attempts: number;
  inputTokens: number;
  outputTokens: number;
  cpuSeconds: number;
  peakMemoryBytes: number;
  wallSeconds: number;
}

function FigureCells({ figures }: { figures: Figures }) {
  return (
    <>
      <td className="number">{figures.attempts}</td>
      <td className="number">{figures.inputTokens.toLocaleString('en')}</td>
      <td className="number">{figures.outputTokens.toLocaleString('en')}</td>
      <td className="number">{figures.cpuSeconds.toFixed(1)}</td>
      <td className="number">
        {figures.peakMemoryBytes > 0 ? bytes(figures.peakMemoryBytes) : '–'}
      </td>
      <td className="number">{duration(figures.wallSeconds * 1000)}</td>
    </>
  );
}

export function UsagePage() {
  const [by, setBy] = useState<UsageGrouping>('environment');
  const [days, setDays] = useState<number>(7);
  const usage = useUsage(by, days);
  const report = usage.data;
  const heading = by === 'environment' ? 'Environment' : by === 'token' ? 'Token' : 'Day (UTC)';
  return (
    <section>
      <h1>Usage</h1>
      <div className="panel">
        <label htmlFor="usage-by">Group by</label>{' '}
        <select id="usage-by" value={by} onChange={(e) => setBy(e.target.value as UsageGrouping)}>
          {USAGE_GROUPINGS.map((g) => (
            <option key={g} value={g}>
              {g}
            </option>
          ))}
        </select>{' '}
        <label htmlFor="usage-days">Period</label>{' '}
        <select id="usage-days" value={days} onChange={(e) => setDays(Number(e.target.value))}>
          {PERIODS.map((d) => (
            <option key={d} value={d}>
              last {d === 1 ? '24 hours' : `${d} days`}
            </option>
          ))}
        </select>
      </div>
      {usage.error && <p className="error">{usage.error.message}</p>}
      {report && report.groups.length === 0 && <p>No attempt finished in this period.</p>}
      {report && report.groups.length > 0 && (
        <div className="table-wrap">
          <table aria-label="Usage">
            <thead>
              <tr>
                <th scope="col">{heading}</th>
                <th scope="col">Attempts</th>
                <th scope="col">Tokens in</th>
                <th scope="col">Tokens out</th>
                <th scope="col">CPU s</th>
                <th scope="col">Peak memory</th>
                <th scope="col">Wall time</th>
              </tr>
            </thead>
            <tbody>
              {report.groups.map((group) => (
                <tr key={group.key}>
                  <th scope="row">{group.name ?? group.key}</th>
                  <FigureCells figures={group} />
                </tr>
              ))}
            </tbody>
            <tfoot>
              <tr>
                <th scope="row">Total</th>
                <FigureCells figures={report.total} />
              </tr>
            </tfoot>
          </table>
        </div>
      )}
    </section>
  );
}
