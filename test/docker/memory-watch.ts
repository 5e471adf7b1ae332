/**
 * Watches this test process's memory (RSS, sampled every 10 ms) while a step runs against a
 * hostile sandbox. `signal` aborts once the growth passes `abortAboveBytes`, so code that would
 * take gigabytes (the bug under test) is stopped before it hurts the machine and the test fails on
 * the growth instead. `stop()` ends the watch and gives the peak growth in bytes.
 */
export interface MemoryWatch {
  signal: AbortSignal;
  stop(): number;
}

export function watchMemory(abortAboveBytes: number): MemoryWatch {
  const start = process.memoryUsage().rss;
  let peak = start;
  const guard = new AbortController();
  const sample = (): void => {
    const rss = process.memoryUsage().rss;
    peak = Math.max(peak, rss);
    if (rss - start > abortAboveBytes && !guard.signal.aborted) {
      guard.abort(new Error(`memory guard: the process grew by ${rss - start} bytes`));
    }
  };
  const timer = setInterval(sample, 10);
  return {
    signal: guard.signal,
    stop() {
      clearInterval(timer);
      sample();
      return peak - start;
    },
  };
}

export const MB = 1024 * 1024;
