// What both bundles share (scripts/build-server.mjs, scripts/build-binary.mjs): Node 20 code,
// minified (V8 then holds less source text; BENCHMARKS.md item 10), no license comments, quiet.
export const NODE_BUNDLE = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  minify: true,
  legalComments: 'none',
  logLevel: 'error',
};
