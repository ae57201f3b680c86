import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger as Logger } from 'fastify';
import { SluiceError } from '../errors.js';
import type { NewUpload, Upload } from '../ledger/ledger.js';
import type { CreateChanges, Hooks, StagedBytes } from '../service/hooks.js';
import { eventData } from '../ledger/event-data.js';
import { describeFailure, type PostAnswer, type SignedPoster } from './signed-post.js';

/**
 * Staged bytes a pre-publish hook may read while it is being asked: its signed URL
 * (GET /v1/uploads/:id/staged) opens them here, and only until the hook has answered.
 */
export class StagedReads {
  private readonly open = new Map<string, StagedBytes>();

  get(id: string): StagedBytes | undefined {
    return this.open.get(id);
  }

  async during<T>(id: string, staged: StagedBytes, fn: () => Promise<T>): Promise<T> {
    this.open.set(id, staged);
    try {
      return await fn();
    } finally {
      this.open.delete(id);
    }
  }
}

export interface HookClientOptions {
  preCreateUrl: string | undefined;
  prePublishUrl: string | undefined;
  timeoutMs: number;
  failOpen: boolean;
  poster: SignedPoster;
  log: Logger;
  staged: StagedReads;
  /** A signed URL for reading an upload's staged bytes, and when it expires. */
  stagedUrl: (id: string) => { url: string; expiresAt: number };
}

/** A hook's answer: `{"reject": true, "message": "..."}` refuses; other fields depend on the hook. */
type Answer = Record<string, unknown>;

/**
 * Blocking HTTP hooks: a signed JSON POST (the webhooks' Standard Webhooks signature) whose answer
 * decides. 2xx accepts, unless its JSON says `"reject": true`; a 4xx (but 408 and 429) refuses,
 * with its `message` (JSON) or its text; anything else - 5xx, 408, 429, a timeout, no connection,
 * an answer that is not JSON - means the hook could not be asked: a retryable 503, or (with
 * HOOK_FAIL_OPEN) the upload goes on.
 */
export class HookClient implements Hooks {
  readonly asksBeforePublish: boolean;

  constructor(private readonly o: HookClientOptions) {
    this.asksBeforePublish = o.prePublishUrl !== undefined;
  }

  async preCreate(u: NewUpload): Promise<CreateChanges> {
    if (!this.o.preCreateUrl) return {};
    const data = {
      owner: u.owner,
      file_name: u.fileName,
      size: u.lengthDeferred ? null : u.size,
      content_type: u.contentType,
      metadata: u.metadata,
      protocol: u.protocol,
      transfer: u.transfer ?? 'server',
      ...(u.isPart && { part: true }),
    };
    const answer = await this.ask('pre-create', this.o.preCreateUrl, data);
    if (answer === undefined) return {};
    const changes: CreateChanges = {};
    if (answer.file_name !== undefined) {
      if (typeof answer.file_name !== 'string') throw this.misunderstood('pre-create', 'file_name is not a string');
      changes.fileName = answer.file_name;
    }
    if (answer.metadata !== undefined) {
      const m = answer.metadata;
      if (typeof m !== 'object' || m === null || Array.isArray(m) || Object.values(m).some((v) => typeof v !== 'string')) {
        throw this.misunderstood('pre-create', 'metadata is not an object of strings');
      }
      changes.metadata = m as Record<string, string>;
    }
    return changes;
  }

  async prePublish(upload: Upload, staged: StagedBytes): Promise<void> {
    const url = this.o.prePublishUrl;
    if (!url) return;
    const link = this.o.stagedUrl(upload.id);
    await this.o.staged.during(upload.id, staged, () =>
      this.ask('pre-publish', url, {
        ...eventData(upload),
        // (The hook is asked in the middle of finishing, whatever the caller's copy says.)
        status: 'finishing',
        sha256: staged.sha256,
        size: staged.size,
        staged_url: link.url,
        staged_url_expires_at: new Date(link.expiresAt).toISOString(),
      }),
    );
  }

  /** The hook's answer when it accepts (undefined: failed open); throws when it refuses or fails. */
  private async ask(type: string, url: string, data: Record<string, unknown>): Promise<Answer | undefined> {
    let answer: PostAnswer;
    try {
      answer = await this.o.poster.post(url, `hook_${randomUUID()}`, { type, timestamp: new Date().toISOString(), data }, this.o.timeoutMs);
    } catch (err) {
      return this.unavailable(type, describeFailure(err));
    }
    const { status } = answer;
    if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
      throw rejection(type, messageOf(answer.body) ?? (answer.body.trim().slice(0, 500) || `the ${type} hook answered ${status}`));
    }
    if (status < 200 || status >= 300) return this.unavailable(type, `HTTP ${status}`);
    let body: unknown = {};
    if (answer.body.trim() !== '') {
      try {
        body = JSON.parse(answer.body);
      } catch {
        return this.unavailable(type, 'its answer is not JSON');
      }
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return this.unavailable(type, 'its answer is not a JSON object');
    const fields = body as Answer;
    if (fields.reject === true) throw rejection(type, typeof fields.message === 'string' ? fields.message : `the ${type} hook refused the upload`);
    return fields;
  }

  private unavailable(type: string, why: string): undefined {
    this.o.log.warn({ hook: type, why, failOpen: this.o.failOpen, event: 'hook_unavailable' }, `the ${type} hook could not be asked`);
    if (this.o.failOpen) return undefined;
    throw hookUnavailable(`the ${type} hook could not be asked (${why}); try again later`);
  }

  private misunderstood(type: string, why: string): SluiceError {
    this.o.log.warn({ hook: type, why, event: 'hook_unavailable' }, `the ${type} hook's answer is not understood`);
    return hookUnavailable(`the ${type} hook's answer is not understood (${why})`);
  }
}

function hookUnavailable(detail: string): SluiceError {
  return new SluiceError('hook_unavailable', detail, {}, { headers: { 'retry-after': '5' } });
}

function rejection(type: string, message: string): SluiceError {
  return new SluiceError('rejected_by_hook', message, { hook: type });
}

function messageOf(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as { message?: unknown };
    return typeof parsed.message === 'string' ? parsed.message : undefined;
  } catch {
    return undefined;
  }
}
