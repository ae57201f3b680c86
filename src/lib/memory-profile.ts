import v8 from 'node:v8';
import type { MemoryProfile } from '../config.js';

/**
 * V8 flags per MEMORY_PROFILE, set at two moments: before the server's modules load, and once it
 * is serving. sluice's per-byte work is native (llhttp parses, OpenSSL hashes, the kernel
 * writes); what V8 adds is heap headroom and the code its optimising compiler produces while a
 * few thousand functions run once at start-up - a third of an idle server's memory.
 *
 * `small` sizes heaps and collections for footprint (`--optimize-for-size`) and keeps TurboFan
 * off during start-up, then turns it back on: from then on only the request path gets hot enough
 * to be optimised. Measured on the bench machine (BENCHMARKS.md), against `fast` (Node's
 * defaults): idle RSS 94 -> 74-79 MiB, the peak of a 1 GiB upload 109-118 -> 82-93 MiB, large
 * bodies as fast, 64 KiB chunks ~15 % fewer per second. TurboFan off for good saved 3 MiB more
 * idle but cost a third more CPU per request.
 *
 * Once serving, `small` also lets V8 drop the bytecode (and baseline code) of functions that have
 * not run since the last major collection, instead of after five: start-up code runs once, and an
 * idle server then settles 2-3 MiB lower (62.4 -> 59.8 MiB after a request, 15 s idle). Code that
 * handles requests keeps running and keeps its bytecode; after a long quiet spell the first
 * request recompiles what it needs (lazily, from the source V8 keeps anyway).
 *
 * Not `--lite-mode`: in Node 20 it implies `--jitless`, and a process that then compiles
 * WebAssembly aborts - undici's HTTP parser (fetch, used for JWT_JWKS_URL) is WebAssembly.
 */
const FLAGS: Record<MemoryProfile, { startup: string[]; serving: string[] }> = {
  small: {
    startup: ['--optimize-for-size', '--no-turbofan', '--no-maglev'],
    serving: ['--turbofan', '--bytecode-old-age=1', '--flush-baseline-code'],
  },
  fast: { startup: [], serving: [] },
};

/**
 * Sets the profile's start-up flags; returns what to call once the server is listening. Call it
 * before the server's modules load: flags apply to code compiled after them.
 */
export function applyMemoryProfile(profile: MemoryProfile): () => void {
  const set = (flags: string[]) => {
    for (const flag of flags) v8.setFlagsFromString(flag);
  };
  set(FLAGS[profile].startup);
  return () => set(FLAGS[profile].serving);
}
