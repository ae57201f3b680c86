import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './server.js';

const run = promisify(execFile);

export interface Postgres {
  /** A new, empty database on the cluster; its connection URL. */
  database(): Promise<string>;
  stop(): Promise<void>;
}

/** Debian's PostgreSQL binaries (scripts/install-postgres.sh installs them), or undefined. */
async function binaries(): Promise<string | undefined> {
  const root = '/usr/lib/postgresql';
  const versions = await fs.readdir(root).catch(() => [] as string[]);
  for (const v of versions.sort().reverse()) {
    const bin = path.join(root, v, 'bin');
    if (
      await fs.stat(path.join(bin, 'initdb')).then(
        () => true,
        () => false,
      )
    )
      return bin;
  }
  return undefined;
}

/**
 * Starts a real PostgreSQL cluster in a temporary directory on 127.0.0.1 (as the unprivileged
 * `postgres` user when run as root: PostgreSQL refuses to run as root), stopped at teardown.
 * Durability settings are off unless `durable`: the tests check the ledger's logic, not the disk.
 * Returns undefined (and the caller skips) where the machine has no PostgreSQL.
 */
export async function startPostgres(t: { teardown(fn: () => unknown): void }, opts: { durable?: boolean } = {}): Promise<Postgres | undefined> {
  const bin = await binaries();
  if (!bin) return undefined;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sluice-pg-'));
  const asRoot = process.getuid?.() === 0;
  const as = async (cmd: string, args: string[]) => (asRoot ? run('runuser', ['-u', 'postgres', '--', cmd, ...args]) : run(cmd, args));
  if (asRoot) await run('chown', ['postgres:postgres', dir]);
  const data = path.join(dir, 'data');
  await as(path.join(bin, 'initdb'), ['-D', data, '-U', 'sluice', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  const port = await freePort();
  // `durable`: PostgreSQL's defaults (a commit waits for its WAL flush), for measurements.
  const speed = opts.durable ? '' : ' -c fsync=off -c synchronous_commit=off -c full_page_writes=off';
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=200${speed}`;
  await as(path.join(bin, 'pg_ctl'), ['-D', data, '-o', options, '-l', path.join(dir, 'log'), '-w', 'start']);
  const stop = async () => {
    await as(path.join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {});
    await fs.rm(dir, { recursive: true, force: true });
  };
  t.teardown(stop);
  const base = `postgres://sluice@127.0.0.1:${port}`;
  return {
    async database() {
      const name = `t_${randomUUID().replace(/-/g, '')}`;
      const client = new pg.Client({ connectionString: `${base}/postgres` });
      await client.connect();
      await client.query(`CREATE DATABASE ${name}`);
      await client.end();
      return `${base}/${name}`;
    },
    stop,
  };
}
