import { readFileSync } from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';

/**
 * OVERLOAD_MAX_RSS: new work is refused while the process holds more memory than this - measured
 * as what the process could give back, not its whole RSS. RSS also counts file-backed pages (the
 * node binary, mapped files, which the kernel reclaims on its own): a server that was busy kept
 * 48 MiB of them and, judged by RSS, refused every request for over a minute with no load at all.
 *
 * - measured: anonymous resident memory (`RssAnon` of /proc/self/status), RSS where there is none;
 * - when over the limit, a full garbage collection first (dead request buffers are the usual
 *   excess), and shedding only if still over after it;
 * - hysteresis: once shedding, requests are let in again below 90 % of the limit, so that it
 *   neither flaps around the limit nor stays on after the load has gone (checked every second).
 */
export class MemoryPressure {
  private over = false;
  private timer: NodeJS.Timeout | null = null;
  /** The last measurement, for /healthz and logs. */
  bytes = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly measure: () => number = anonymousRss,
    private readonly collect: () => void = fullGc(),
  ) {}

  /** True while new work should be refused. */
  get shedding(): boolean {
    return this.over;
  }

  /** Takes one measurement (and collects when over the limit); the monitor calls it every second. */
  check(): void {
    if (this.maxBytes <= 0) return;
    this.bytes = this.measure();
    if (!this.over && this.bytes > this.maxBytes) {
      this.collect();
      this.bytes = this.measure();
      this.over = this.bytes > this.maxBytes;
    } else if (this.over) {
      if (this.bytes > this.maxBytes * 0.9) {
        this.collect();
        this.bytes = this.measure();
      }
      this.over = this.bytes > this.maxBytes * 0.9;
    }
  }

  start(everyMs = 1000): void {
    if (this.maxBytes <= 0 || this.timer) return;
    this.check();
    this.timer = setInterval(() => this.check(), everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

/** Anonymous resident memory: heaps, buffers, thread stacks - what freeing memory gives back. */
export function anonymousRss(): number {
  try {
    const m = /^RssAnon:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux: RSS is all there is
  }
  return process.memoryUsage.rss();
}

/** A full collection, without starting the process with --expose-gc. */
function fullGc(): () => void {
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as (() => void) | undefined;
    return gc ?? (() => {});
  } catch {
    return () => {};
  }
}
