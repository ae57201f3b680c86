import { ApiError } from './api.js';

/** Exit codes of the sluice CLI, by what went wrong (documented in `sluice --help`). */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  unauthorized: 3,
  notFound: 4,
  conflict: 5,
  verification: 6,
  limits: 7,
  unavailable: 8,
} as const;

export const EXIT_HELP = `Exit codes:
  0  success
  1  unexpected failure
  2  bad usage
  3  not authorized (401, 403: token or signed URL)
  4  no such upload, or it expired (404, 410)
  5  the upload is not in a state for this (409: finished, aborted, chunks missing)
  6  verification failed (422, 460: a checksum or the whole-file SHA-256 did not match)
  7  refused by a limit (413, 415, 429, 507: size, quota, type, rate, disk space)
  8  server unreachable or unavailable (network errors, 5xx)`;

export function exitCodeFor(err: unknown): number {
  if (!(err instanceof ApiError)) return EXIT.failure;
  if (err.status === 401 || err.status === 403) return EXIT.unauthorized;
  if (err.status === 404 || err.status === 410) return EXIT.notFound;
  if (err.status === 409) return EXIT.conflict;
  if (err.status === 422 || err.status === 460) return EXIT.verification;
  if ([413, 415, 429, 507].includes(err.status)) return EXIT.limits;
  if (err.status === 0 || err.status >= 500) return EXIT.unavailable;
  return EXIT.failure;
}
