import cliProgress from 'cli-progress';
import { formatBytes } from '../lib/units.js';

export type OutputMode = 'tty' | 'plain' | 'json';

/**
 * Progress of one transfer: a bar (bytes, percentage, rate, ETA) on a terminal, a line every few
 * seconds otherwise, or JSON lines with --json. Messages go to stderr, results to stdout.
 */
export class Progress {
  private bar: cliProgress.SingleBar | undefined;
  private done = 0;
  private lastLine = 0;
  private readonly started = Date.now();

  private printed = -1;

  /** `already`: bytes the server has before this run sends any (a resumed upload starts there). */
  constructor(
    private readonly mode: OutputMode,
    private readonly label: string,
    private readonly total: number,
    already = 0,
  ) {
    this.done = already;
    if (mode === 'tty') {
      this.bar = new cliProgress.SingleBar(
        {
          format: `${label} [{bar}] {percentage}% | {doneH} of {totalH} | {rateH}/s | ETA {eta_formatted}`,
          hideCursor: true,
          etaBuffer: 50,
          stream: process.stderr,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(total, already, this.payload());
    }
  }

  private payload() {
    const seconds = Math.max((Date.now() - this.started) / 1000, 0.001);
    return { doneH: formatBytes(this.done), totalH: formatBytes(this.total), rateH: formatBytes(Math.round(this.done / seconds)) };
  }

  /** Tells something worth a line of its own (e.g. that the upload resumes). */
  note(message: string, extra: Record<string, unknown> = {}): void {
    if (this.mode === 'json') process.stdout.write(`${JSON.stringify({ event: 'note', file: this.label, message, ...extra })}\n`);
    else process.stderr.write(`${this.label}: ${message}\n`);
  }

  /** Bytes the server has acknowledged (only those: progress never runs ahead of the server). */
  add(bytes: number): void {
    this.done += bytes;
    if (this.bar) {
      this.bar.update(this.done, this.payload());
      return;
    }
    const now = Date.now();
    if (now - this.lastLine < 1000 && this.done < this.total) return;
    this.lastLine = now;
    this.line();
  }

  /** What the server has acknowledged so far. */
  get acknowledged(): number {
    return this.done;
  }

  private line(): void {
    this.printed = this.done;
    const { doneH, totalH, rateH } = this.payload();
    const pct = this.total === 0 ? 100 : Math.floor((this.done / this.total) * 100);
    if (this.mode === 'json') process.stdout.write(`${JSON.stringify({ event: 'progress', file: this.label, bytes: this.done, total: this.total })}\n`);
    else process.stderr.write(`${this.label}: ${pct}% (${doneH} of ${totalH}, ${rateH}/s)\n`);
  }

  /** Ends the display; without a terminal, a last line when the last one is out of date. */
  stop(): void {
    this.bar?.stop();
    if (!this.bar && this.printed !== this.done) this.line();
  }
}
