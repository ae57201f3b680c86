import type { DirectStore } from '../../storage/direct-store.js';
import type { FastifyBaseLogger as Logger } from 'fastify';
import type { Config } from '../../config.js';
import { SluiceError } from '../../errors.js';
import type { Ledger, Upload } from '../../ledger/ledger.js';
import type { StatFs } from '../../storage/disk-space.js';
import type { FileStore } from '../../storage/file-store.js';
import type { StagingArea } from '../../storage/staging-area.js';
import type { StoreDigests } from '../hashing/store-digests.js';
import type { RunningDigests } from '../hashing/running-digest.js';
import type { Intake } from '../intake/intake.js';
import type { Publisher } from '../publisher.js';
import type { EventSink } from '../upload-types.js';
import type { Hooks } from '../hooks.js';

/** What every use case works with; built once by the UploadService facade. */
export interface Context {
  config: Config;
  ledger: Ledger;
  staging: StagingArea;
  store: FileStore;
  log: Logger;
  now: () => number;
  statfs: StatFs;
  emit: EventSink;
  intake: Intake;
  digests: RunningDigests;
  publisher: Publisher;
  /** Where direct uploads go (the S3 backend); undefined with local storage. */
  direct: DirectStore | undefined;
  /** Direct uploads being finished (a second finish joins the first). */
  directJobs: Map<string, Promise<Upload>>;
  /** Whole-file digests of uploads staged in the store, while their bytes arrive in order. */
  storeDigests: StoreDigests;
  /** The application's blocking hooks (none unless HOOK_* are set). */
  hooks: Hooks;
}

/** A node not seen for this long is gone: its uploads may be expired by the others. */
export const NODE_GONE_AFTER_MS = 10 * 60_000;

/**
 * Whether this node holds the upload's bytes (several nodes on one ledger): an upload staged on a
 * node's local disk (no multipart upload in the store) is that node's. With one node, always.
 */
export function isHere(c: Context, upload: Upload): boolean {
  const me = c.config.node?.id;
  return me === undefined || upload.node === null || upload.node === me || upload.multipart !== null;
}

/**
 * Refuses to work on an upload whose bytes are on another node's disk: the client is sent there
 * (307 to that node's NODE_URL), or told to retry when that node has no known address.
 */
export async function requireHere(c: Context, upload: Upload): Promise<void> {
  if (isHere(c, upload)) return;
  const node = upload.node as string;
  const info = await c.ledger.nodeInfo(node);
  if (!info?.url) {
    throw new SluiceError(
      'node_unavailable',
      `upload ${upload.id} is staged on node ${node}, whose address is not known`,
      { node },
      { headers: { 'retry-after': '10' } },
    );
  }
  throw new SluiceError('elsewhere', `upload ${upload.id} is staged on node ${node}`, { node, node_url: info.url });
}

/** The lease key of a stream upload's end: one request appends at a time. */
export const STREAM_END = 'end';

/** The upload as its owner sees it; another owner's upload is indistinguishable from none. */
export async function owned(c: Context, owner: string, id: string): Promise<Upload> {
  const upload = await c.ledger.get(id);
  if (!upload || upload.owner !== owner) throw new SluiceError('not_found', `no upload ${id}`);
  return upload;
}

export function notWritable(upload: Upload): SluiceError {
  if (upload.status === 'expired') return new SluiceError('upload_expired', `upload ${upload.id} expired`);
  return new SluiceError('upload_not_writable', `upload ${upload.id} is ${upload.status}`, { upload_status: upload.status });
}

export function quotaExceeded(c: Context, reserved: number, what = 'the upload'): SluiceError {
  return new SluiceError('quota_exceeded', `${what} does not fit: ${reserved} bytes are already reserved by unfinished uploads`, {
    user_quota: c.config.userQuota,
    reserved,
  });
}

/** True when every byte of the upload (or of all its parts) has been received. */
export async function hasAllBytes(c: Context, upload: Upload): Promise<boolean> {
  if (upload.parts) {
    for (const partId of upload.parts) {
      const part = await c.ledger.get(partId);
      if (!part || part.status !== 'uploading' || part.lengthDeferred || part.bytesReceived !== part.size) return false;
    }
    return true;
  }
  return !upload.lengthDeferred && upload.bytesReceived === upload.size;
}

// C0 and C1 controls, DEL, line/paragraph separators, bidi embeddings, overrides and isolates,
// zero-width characters and the BOM, and path separators.
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
const UNSAFE_NAME_CHARS = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff/\\]/;

/** A lone UTF-16 surrogate: text that is not Unicode, which storing as UTF-8 would silently replace. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Refuses text that is not valid Unicode instead of storing a repaired copy of it. */
export function checkText(what: string, value: string): void {
  if (LONE_SURROGATE.test(value)) throw new SluiceError('invalid_request', `${what} is not valid Unicode (it has a lone surrogate)`);
}

/** The client's metadata: every key and value valid Unicode. */
export function checkMetadata(metadata: Record<string, string> | undefined): void {
  for (const [key, value] of Object.entries(metadata ?? {})) {
    checkText('a metadata key', key);
    checkText(`metadata ${JSON.stringify(key)}`, value);
  }
}

/** A name that is safe to echo in headers, listings and downloads (see checkNew). */
export function plainName(fileName: string): boolean {
  return !(Buffer.byteLength(fileName, 'utf8') > 255 || fileName.length === 0 || UNSAFE_NAME_CHARS.test(fileName) || fileName === '.' || fileName === '..');
}

/** Rules every new upload follows, whatever its layout. */
export function checkNew(c: Context, fileName: string, size: number | undefined): void {
  checkText('file_name', fileName);
  // file_name is metadata only (paths come from the id), but it is echoed in headers, listings
  // and downloads, so it must be a plain name: 1-255 bytes of UTF-8, no control or bidi
  // characters (which can disguise "gpj.exe" as "exe.jpg"), no path separators, not . or ..
  if (!plainName(fileName)) {
    throw new SluiceError('invalid_request', 'file_name must be a plain file name: 1 to 255 bytes of UTF-8, no control characters, no / or \\');
  }
  if (size !== undefined && size > c.config.maxUploadSize) {
    throw new SluiceError('upload_too_large', `size ${size} exceeds the maximum of ${c.config.maxUploadSize} bytes`, {
      max_upload_size: c.config.maxUploadSize,
    });
  }
}
