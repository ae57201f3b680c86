import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** The built `npm start` entry point (npm test builds it first). */
export const MAIN = path.join(ROOT, 'dist/server/main.js');

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts the real server as a child process on a free port (PORT=0) and waits until it logs the
 * address it listens on.
 */
export async function spawnServer(
  env: Record<string, string>,
  t?: { teardown(fn: () => unknown): void },
  opts: { nofile?: number } = {},
): Promise<ServerProcess> {
  // `nofile`: the process's descriptor limit (ulimit -n), set by the shell that then becomes node.
  const [cmd, args] =
    opts.nofile === undefined ? [process.execPath, [MAIN]] : ['sh', ['-c', `ulimit -n ${opts.nofile} && exec "$0" "$1"`, process.execPath, MAIN]];
  const child = spawn(cmd, args, {
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  t?.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const url = await new Promise<string>((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 20_000);
    const check = () => {
      const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) {
        clearTimeout(deadline);
        resolve(m[1] as string);
      }
    };
    child.stdout?.on('data', check);
    void exited.then(() => {
      clearTimeout(deadline);
      reject(new Error(`server exited before listening:\n${out}`));
    });
  });
  return { child, url, output: () => out, exited };
}
