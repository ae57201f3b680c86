/**
 * The messages between the main thread and the hashing thread, in one place. The protocol's
 * rules (checked by test/unit/hash-protocol.test.ts):
 * - a job is `open`ed, told how far its bytes are written (`read`), cut at checkpoints (`cut`) and
 *   ended once (`end`); requests with `req` are answered by a {@link FromHashThread} with that `req`;
 * - a job that continues the whole-file digest of `key` leaves a copy of it at each cut and at its
 *   end; the copy is used by a later `extend` only after the main thread has said that the bytes
 *   up to there are recorded (`confirm`, posted before that `extend`); `settle` drops whatever the
 *   job left unconfirmed, and is posted once, after the job's end, whatever happened;
 * - a thread that restarted knows no job and no digest: `cut`/`end` of an unknown job answer an
 *   error (the body is not recorded) and `extend` answers `lost` (the digest starts again at 0).
 */
export type ToHashThread =
  /**
   * Start hashing a body being written into `path` from byte `at`, with the `algorithms` a client
   * asked for, its own SHA-256 when `own`, and - with `key` - a continuation of the whole-file
   * digest kept under `key` when that digest ends at `at` (or `at` is 0).
   */
  | { t: 'open'; job: number; path: string; at: number; algorithms: string[]; own: boolean; key?: string }
  /** The body's bytes up to file offset `to` are written: hash them. */
  | { t: 'read'; job: number; to: number }
  /** Hash up to `to` and keep a copy of the whole-file digest there; answer the own SHA-256 since the last cut. */
  | { t: 'cut'; job: number; to: number; req: number }
  /** Hash up to `to`, answer the own SHA-256 of the last segment and every other digest, close the job. */
  | { t: 'end'; job: number; to: number; req: number }
  /**
   * Continue the whole-file SHA-256 kept under `key` (which covers [0, from)) with [from, to) of
   * `path`, or further, up to `recorded`, where a confirmed copy of a job reaches (answered in `upTo`).
   */
  | { t: 'extend'; key: string; path: string; from: number; to: number; recorded: number; req: number }
  /** The job's bytes up to `end` were recorded: its copy of the whole-file digest there may be used. */
  | { t: 'confirm'; job: number; end: number }
  /** Nothing more of the job will be recorded: drop what it left unconfirmed. */
  | { t: 'settle'; job: number }
  /** The whole-file SHA-256 kept under `key`, and how many bytes it covers. */
  | { t: 'digest'; key: string; req: number }
  | { t: 'forget'; key: string };

export type HashRequest = Extract<ToHashThread, { req: number }>;

export interface FromHashThread {
  req: number;
  error?: string;
  /** The job's own SHA-256 (hex) of the segment that ends here, when it was opened with `own`. */
  sha256?: string;
  /** Digests of the other algorithms, by name. */
  checks?: Record<string, Uint8Array>;
  /** Bytes the whole-file digest covers. */
  upTo?: number;
  /** The thread holds no digest that continues at `from` (it was restarted): start again at 0. */
  lost?: boolean;
}
