import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { ENVIRONMENT, environmentHelp } from '../../src/config-help.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Every variable name loadConfig reads: read('NAME', ...) and env.NAME. */
async function variablesRead(): Promise<string[]> {
  const source = (await Promise.all(['src/config.ts', 'src/config-events.ts'].map((f) => fs.readFile(path.join(ROOT, f), 'utf8')))).join('\n');
  const names = new Set<string>();
  for (const m of source.matchAll(/\bread(?:<[^(]*>)?\(\s*'([A-Z0-9_]+)'/g)) names.add(m[1] as string);
  for (const m of source.matchAll(/\benv\.([A-Z0-9_]+)/g)) names.add(m[1] as string);
  return [...names].sort();
}

t.test('every variable the config reads is in `sluice serve --help` and in the README', async (t) => {
  const read = await variablesRead();
  t.ok(read.length >= 40, `found ${read.length} variables in src/config.ts`);
  const listed = ENVIRONMENT.map(([name]) => name);
  t.same(
    listed.filter((n) => !read.includes(n)),
    [],
    'the help lists nothing the config does not read',
  );
  t.same(
    read.filter((n) => !listed.includes(n)),
    [],
    'the help lists everything the config reads',
  );
  const readme = await fs.readFile(path.join(ROOT, 'README.md'), 'utf8');
  t.same(
    read.filter((n) => !readme.includes(`\`${n}\``)),
    [],
    'the README documents everything the config reads',
  );
  const help = environmentHelp();
  for (const [name, fallback] of ENVIRONMENT) t.match(help, new RegExp(`\\n  ${name} +.*\\[${fallback.replace(/[()*.[\]]/g, '\\$&')}\\]`), name);
});
