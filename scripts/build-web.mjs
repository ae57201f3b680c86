// The uploader page's script and styles (web/src, Uppy from node_modules) as one minified ES
// module and one stylesheet in dist/web/, served by the server and embedded in the single binary.
import { rm } from 'node:fs/promises';
import { build } from 'esbuild';

const outdir = 'dist/web';
await rm(outdir, { recursive: true, force: true });
await build({
  entryPoints: { app: 'web/src/app.js' },
  outdir,
  bundle: true,
  format: 'esm',
  minify: true,
  sourcemap: true,
  target: ['chrome110', 'firefox115', 'safari16'],
  legalComments: 'linked',
  logLevel: 'warning',
});
