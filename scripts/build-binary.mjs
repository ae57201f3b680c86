// `npm run build:binary`: dist/sluice, a Node single executable application (SEA) that needs no
// Node.js, no node_modules and no network: an esbuild CommonJS bundle of the CLI (which also
// serves), the better-sqlite3 addon and the web page as assets, a V8 code cache for start-up,
// injected with postject into a stripped copy of this machine's node binary.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { build } from 'esbuild';
import { NODE_BUNDLE } from './esbuild-node.mjs';

const require = createRequire(import.meta.url);
const out = 'dist/sea';
await fs.mkdir(out, { recursive: true });

await build({
  entryPoints: ['src/bin/sluice.ts'],
  outfile: `${out}/sluice.cjs`,
  ...NODE_BUNDLE,
  format: 'cjs',
});
// The hashing thread's own bundle, an asset the binary starts as an eval Worker (a SEA has no
// file to point a Worker at).
await build({
  entryPoints: ['src/service/hashing/hash-thread.ts'],
  outfile: `${out}/hash-thread.cjs`,
  ...NODE_BUNDLE,
  format: 'cjs',
});

const seaConfig = {
  main: `${out}/sluice.cjs`,
  output: `${out}/sluice.blob`,
  disableExperimentalSEAWarning: true,
  useCodeCache: true,
  assets: {
    'better_sqlite3.node': path.join(path.dirname(require.resolve('better-sqlite3/package.json')), 'build/Release/better_sqlite3.node'),
    'index.html': 'web/index.html',
    'favicon.svg': 'web/favicon.svg',
    'app.js': 'dist/web/app.js',
    'app.css': 'dist/web/app.css',
    'package.json': 'package.json',
    'docs.html': 'web/docs.html',
    'docs.js': 'web/docs.js',
    'docs.css': 'web/docs.css',
    'swagger-ui.css': path.join(path.dirname(require.resolve('swagger-ui-dist/package.json')), 'swagger-ui.css'),
    'swagger-ui-bundle.js': path.join(path.dirname(require.resolve('swagger-ui-dist/package.json')), 'swagger-ui-bundle.js'),
    'hash-thread.cjs': `${out}/hash-thread.cjs`,
  },
};
await fs.writeFile(`${out}/sea-config.json`, JSON.stringify(seaConfig, null, 2));
execFileSync(process.execPath, ['--experimental-sea-config', `${out}/sea-config.json`], { stdio: 'inherit' });

const binary = 'dist/sluice';
await fs.rm(binary, { force: true });
await fs.copyFile(process.execPath, binary);
await fs.chmod(binary, 0o755);
try {
  execFileSync('strip', [binary]);
} catch {
  console.warn('build-binary: strip is not available; the binary keeps its symbols');
}
const { inject } = require('postject');
await inject(binary, 'NODE_SEA_BLOB', await fs.readFile(`${out}/sluice.blob`), {
  sentinelFuse: 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2',
});
const { size } = await fs.stat(binary);
console.log(`built ${binary} (${(size / 1024 / 1024).toFixed(1)} MiB)`);
