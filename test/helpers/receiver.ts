import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep, tmpDir, type TestContext } from './server.js';

const FIXTURE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/webhook-receiver.mjs');

/** A Standard Webhooks secret for tests ("whsec_" + 32 bytes in base64). */
export const WEBHOOK_SECRET = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
export const PROCESSOR_TOKEN = 'processor-token-0123456789';

export interface Receiver {
  url: string;
  /** Every request it received so far, in order (JSON lines of its record file). */
  records(): Promise<any[]>;
  /** Waits until `check` holds for the records (or fails after `ms`). */
  until(check: (records: any[]) => boolean, ms?: number): Promise<any[]>;
  control(mode: 'down' | 'up'): Promise<void>;
}

/** Starts test/fixtures/webhook-receiver.mjs, a real process, on 127.0.0.1; killed at teardown. */
export async function startReceiver(t: TestContext, opts: { failPlan?: string[] } = {}): Promise<Receiver> {
  const dir = await tmpDir(t, 'sluice-receiver-');
  const recordFile = path.join(dir, 'records.jsonl');
  await fs.writeFile(recordFile, '');
  const child = spawn(process.execPath, [FIXTURE], {
    env: { PATH: process.env.PATH ?? '', WEBHOOK_SECRET, PROCESSOR_TOKEN, RECORD_FILE: recordFile, FAIL_PLAN: (opts.failPlan ?? []).join(',') },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d) => {
      out += d;
      const m = /listening (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', () => reject(new Error(`receiver exited: ${out}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  const records = async () =>
    (await fs.readFile(recordFile, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line));
  return {
    url,
    records,
    async until(check, ms = 20_000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const now = await records();
        if (check(now)) return now;
        if (Date.now() > deadline) throw new Error(`the receiver did not get what was expected in ${ms} ms:\n${JSON.stringify(now, null, 1).slice(0, 4000)}`);
        await sleep(50);
      }
    },
    async control(mode) {
      await fetch(`${url}/control`, { method: 'POST', body: JSON.stringify({ mode }) });
    },
  };
}
