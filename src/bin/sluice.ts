#!/usr/bin/env node
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { Api, ApiError, isGrid } from '../cli/api.js';
import { EXIT, EXIT_HELP, exitCodeFor } from '../cli/exit-codes.js';
import { Progress, type OutputMode } from '../cli/progress.js';
import { uploadFile } from '../cli/upload.js';
import { formatBytes, parseBytes } from '../lib/units.js';
import { environmentHelp } from '../config-help.js';

/**
 * `sluice`: the command line. `sluice serve` (or plain `sluice`) runs the server; the other
 * commands are a client of a server's native API.
 */
// `sluice ls | head -1`: the reader went away; that is the end of the output, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

function serverUrl(value: string): string {
  try {
    const u = new URL(value);
    if (u.protocol === 'http:' || u.protocol === 'https:') return value;
  } catch {
    // not a URL at all
  }
  throw new InvalidArgumentError('expected an http(s) URL such as http://127.0.0.1:8080');
}

const program = new Command('sluice')
  .description('Resumable, verified uploads: a server and its command-line client')
  .addOption(new Option('--server <url>', 'server to talk to').env('SLUICE_SERVER').default('http://127.0.0.1:8080').argParser(serverUrl))
  .addOption(new Option('--token <token>', 'bearer token').env('SLUICE_TOKEN'))
  .option('--json', 'machine-readable output (JSON lines)', false)
  .addHelpText('after', `\n${EXIT_HELP}\n\nThe server is configured with environment variables: sluice serve --help lists them.`)
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : EXIT.usage));

interface Globals {
  server: string;
  token?: string;
  json: boolean;
}
const globals = () => program.opts<Globals>();
const api = () => new Api(globals().server.replace(/\/+$/, ''), globals().token);
const mode = (): OutputMode => (globals().json ? 'json' : process.stderr.isTTY ? 'tty' : 'plain');
const out = (plain: string, json: unknown) => process.stdout.write(globals().json ? `${JSON.stringify(json)}\n` : `${plain}\n`);

function bytesOption(value: string): number {
  const n = parseBytes(value);
  if (n === undefined || n <= 0) throw new InvalidArgumentError('expected a size such as 8MiB');
  return n;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new InvalidArgumentError('expected a whole number from 1 to 64');
  return n;
}

program
  .command('serve', { isDefault: true })
  .description('run the server (configured by environment variables)')
  .addHelpText('after', `\n${environmentHelp()}`)
  .action(async () => {
    await import('../main.js');
  });

program
  .command('upload')
  .description('upload files, resuming where an earlier run stopped')
  .argument('<file...>')
  .option('--chunk-size <size>', "chunk size (default: the server's)", bytesOption)
  .option('--parallel <n>', 'chunks in flight', positiveInt, 4)
  .option('--direct', "send the parts straight to the server's store (S3) instead of through the server")
  .action(async (files: string[], opts: { chunkSize?: number; parallel: number; direct?: boolean }) => {
    for (const file of files) {
      const r = await uploadFile(api(), file, { chunkSize: opts.chunkSize, parallel: opts.parallel, mode: mode(), direct: opts.direct === true });
      out(`${file}: uploaded ${formatBytes(r.size)} as ${r.id}\n  sha256 ${r.sha256}\n  location ${JSON.stringify(r.location)}`, { event: 'done', ...r });
    }
  });

program
  .command('status')
  .description("show an upload's state")
  .argument('<id>')
  .action(async (id: string) => {
    const s = await api().status(id);
    const missing = s.missing_chunks ?? [];
    // A stream upload (tus, IETF) is an offset of a length, which it may not know yet; no grid.
    const length = s.size === undefined ? 'a length not known yet' : formatBytes(s.size);
    const shape = isGrid(s)
      ? `${s.chunks_received} of ${s.total_chunks} chunks`
      : `appended, ${s.protocol}${s.part_uploads ? `, composed of ${s.part_uploads.length} parts` : ''}`;
    out(
      `${s.id} ${s.status}: ${s.file_name}, ${formatBytes(s.bytes_received)} of ${length} (${shape})` +
        (missing.length ? `\n  missing chunks: ${missing.slice(0, 20).join(', ')}${missing.length > 20 ? ', ...' : ''}` : '') +
        (s.sha256 ? `\n  sha256 ${s.sha256}` : ''),
      s,
    );
  });

program
  .command('abort')
  .description('abort an upload and remove its bytes')
  .argument('<id>')
  .action(async (id: string) => {
    await api().abort(id);
    out(`${id} aborted`, { event: 'aborted', id });
  });

program
  .command('ls')
  .description('list your uploads, newest first')
  .action(async () => {
    const all = await api().list();
    if (globals().json) for (const u of all) out('', u);
    else
      for (const u of all) {
        const size = u.size === undefined ? '?' : formatBytes(u.size);
        const parts = u.part_uploads ? `  (${u.part_uploads.length} parts)` : '';
        out(`${u.id}  ${u.status.padEnd(9)}  ${size.padStart(10)}  ${u.created_at}  ${u.file_name}${parts}`, u);
      }
  });

program
  .command('files')
  .description('list your stored files, newest first (filters as GET /v1/files)')
  .option('--type <type>', 'content type, e.g. image/png or image/*')
  .option('--meta <key=value...>', 'metadata that must match (repeatable)')
  .option('--after <time>', 'created after this ISO 8601 time')
  .option('--before <time>', 'created before this ISO 8601 time')
  .option(
    '--limit <n>',
    'at most this many',
    (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 100_000) throw new InvalidArgumentError('expected a whole number from 1 to 100000');
      return n;
    },
    1000,
  )
  .action(async (opts: { type?: string; meta?: string[]; after?: string; before?: string; limit: number }) => {
    const filters: Record<string, string> = {};
    if (opts.type) filters.content_type = opts.type;
    if (opts.after) filters.created_after = opts.after;
    if (opts.before) filters.created_before = opts.before;
    for (const pair of opts.meta ?? []) {
      const [key, value] = splitPair(pair);
      filters[`metadata.${key}`] = value;
    }
    for (const f of await api().files(filters, opts.limit)) {
      const meta = Object.entries(f.metadata)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ');
      out(`${f.id}  ${formatBytes(f.size).padStart(10)}  ${f.created_at}  ${f.content_type.padEnd(24)}  ${f.file_name}${meta ? `  ${meta}` : ''}`, f);
    }
  });

program
  .command('rm')
  .description('delete stored files (their bytes are removed; an unfinished upload is aborted)')
  .argument('<id...>')
  .action(async (ids: string[]) => {
    for (const id of ids) {
      await api().deleteFile(id);
      out(`${id} removed`, { event: 'removed', id });
    }
  });

program
  .command('meta')
  .description("set (key=value) or remove (key=) a stored file's metadata; with no pairs, show it")
  .argument('<id>')
  .argument('[pairs...]')
  .action(async (id: string, pairs: string[]) => {
    const client = api();
    const file = await client.file(id);
    const metadata = { ...file.metadata };
    for (const pair of pairs) {
      const [key, value] = splitPair(pair);
      if (value === '') delete metadata[key];
      else metadata[key] = value;
    }
    const shown = pairs.length > 0 ? await client.updateFile(id, { metadata }) : file;
    const text = Object.entries(shown.metadata)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n');
    out(text || '(no metadata)', { id, metadata: shown.metadata });
  });

program
  .command('download')
  .description('download a completed upload and check its SHA-256')
  .argument('<id>')
  .option('-o, --output <file>', 'where to write it (default: its file name, in this directory)')
  .option('-f, --force', 'overwrite the file if it exists')
  .action(async (id: string, opts: { output?: string; force?: boolean }) => {
    const client = api();
    const info = await client.status(id);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it replaces
    const target = path.resolve(opts.output ?? (path.basename(info.file_name).replace(/[\u0000-\u001f]/g, '_') || id));
    if (
      !opts.force &&
      (await fs.stat(target).then(
        () => true,
        () => false,
      ))
    ) {
      usage(`${target} exists; pass --force to overwrite it, or -o to write somewhere else`);
    }
    const { body, size } = await client.download(id);
    const progress = new Progress(mode(), path.basename(target), size || (info.size ?? 0));
    const hash = createHash('sha256');
    const tmp = `${target}.sluice-part`;
    try {
      await pipeline(
        Readable.fromWeb(body as import('node:stream/web').ReadableStream<Uint8Array>),
        async function* (source: AsyncIterable<Buffer>) {
          for await (const buf of source) {
            hash.update(buf);
            progress.add(buf.length);
            yield buf;
          }
        },
        createWriteStream(tmp),
      );
    } finally {
      progress.stop();
    }
    const digest = hash.digest('hex');
    if (info.sha256 && digest !== info.sha256) {
      await fs.rm(tmp, { force: true });
      process.stderr.write(`sluice: verification_failed: downloaded ${digest}, the server recorded ${info.sha256}\n`);
      process.exit(EXIT.verification);
    }
    await fs.rename(tmp, target);
    out(`${id}: ${formatBytes(size || (info.size ?? 0))} written to ${target}\n  sha256 ${digest} (verified)`, {
      event: 'downloaded',
      id,
      file: target,
      sha256: digest,
    });
  });

/** `key=value` from the command line; a missing `=` is a usage error. */
function splitPair(pair: string): [string, string] {
  const at = pair.indexOf('=');
  if (at <= 0) usage(`expected key=value, not ${JSON.stringify(pair)}`);
  return [pair.slice(0, at), pair.slice(at + 1)];
}

function usage(message: string): never {
  process.stderr.write(`sluice: ${message}\n`);
  process.exit(EXIT.usage);
}

/**
 * The first word that is not an option (nor a global option's value) must be a command: without
 * this, an unknown one would be taken for arguments of the default command (serve).
 */
function unknownCommand(argv: string[]): string | undefined {
  const known = new Set([...program.commands.map((c) => c.name()), 'help']);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--server' || arg === '--token') i++;
    else if (!arg.startsWith('-')) return known.has(arg) ? undefined : arg;
  }
  return undefined;
}

/** What went wrong, in the user's words: a usage error exits 2, never with a stack or a doubled code. */
function report(err: unknown): never {
  const e = err as NodeJS.ErrnoException & { extra?: unknown };
  if (e.syscall !== undefined && e.path !== undefined) {
    const why =
      e.code === 'ENOENT' ? 'no such file or directory' : e.code === 'EISDIR' ? 'is a directory' : e.code === 'EACCES' ? 'permission denied' : e.message;
    usage(`${e.path}: ${why}`);
  }
  if (err instanceof ApiError && err.code === 'chunk_size_out_of_range') {
    const { min, max } = err.limits ?? {};
    usage(`--chunk-size must be between ${min === undefined ? '?' : formatBytes(min)} and ${max === undefined ? '?' : formatBytes(max)} on this server`);
  }
  const code = e.code;
  process.stderr.write(`sluice: ${code && !code.startsWith('ERR_') ? `${code}: ` : ''}${e.message}\n`);
  process.exit(exitCodeFor(err));
}

const stray = unknownCommand(process.argv.slice(2));
if (stray !== undefined) usage(`unknown command '${stray}' (sluice --help lists the commands)`);
program.parseAsync(process.argv).catch(report);
