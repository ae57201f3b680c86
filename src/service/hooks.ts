import type { Readable } from 'node:stream';
import type { NewUpload, Upload } from '../ledger/ledger.js';

/** What a pre-create hook may change in an upload before it exists. */
export interface CreateChanges {
  fileName?: string | undefined;
  metadata?: Record<string, string> | undefined;
}

/** The verified bytes of an upload about to be published, for a pre-publish hook to read. */
export interface StagedBytes {
  sha256: string;
  size: number;
  /** A fresh stream over the bytes each time (bounded memory). */
  open(): Promise<Readable>;
}

/**
 * The application's say in an upload's life (HOOK_PRE_CREATE_URL, HOOK_PRE_PUBLISH_URL). Both
 * throw `rejected_by_hook` with the hook's message when it says no, and `hook_unavailable`
 * (retryable) when it cannot be asked, unless HOOK_FAIL_OPEN lets the upload through.
 */
export interface Hooks {
  /** A pre-publish hook is configured (the publisher then computes the digest before anything else). */
  readonly asksBeforePublish: boolean;
  /** Before a new upload is recorded, whatever its protocol: may refuse it or change its name and metadata. */
  preCreate(upload: NewUpload): Promise<CreateChanges>;
  /** After its bytes are verified, before they become visible at their destination. */
  prePublish(upload: Upload, staged: StagedBytes): Promise<void>;
}

export const NO_HOOKS: Hooks = {
  asksBeforePublish: false,
  preCreate: async () => ({}),
  prePublish: async () => {},
};
