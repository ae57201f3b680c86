import type { EventType, LedgerEvent } from './ledger-events.js';
import type { Upload, UploadStatus } from './ledger.js';

/** What an event says of its upload: the fields an application acts on, as the native API names them. */
export function eventData(u: Upload): Record<string, unknown> {
  return {
    id: u.id,
    status: u.status,
    protocol: u.protocol,
    file_name: u.fileName,
    content_type: u.contentType,
    metadata: u.metadata,
    size: u.lengthDeferred ? null : u.size,
    bytes_received: u.bytesReceived,
    ...(u.sha256 !== null && { sha256: u.sha256 }),
    ...(u.location !== null && { location: u.location }),
    ...(u.failure !== null && (u.status === 'failed' || u.status === 'expired') && { reason: u.failure }),
    ...(u.processing?.outputs !== undefined && { outputs: u.processing.outputs }),
    ...(u.processing?.message !== undefined && { message: u.processing.message }),
    ...(u.isPart && { part: true }),
    created_at: new Date(u.createdAt).toISOString(),
    ...(u.completedAt !== null && { completed_at: new Date(u.completedAt).toISOString() }),
  };
}

/** An event as both ledgers store it. */
export interface EventRow {
  id: number;
  type: EventType;
  owner: string;
  upload_id: string;
  data: string;
  created_at: number;
}

export function toEvent(row: EventRow): LedgerEvent {
  return { id: row.id, type: row.type, owner: row.owner, uploadId: row.upload_id, data: JSON.parse(row.data), createdAt: row.created_at };
}

/** The event a move into each state writes (other states are steps on the way, not news). */
export const ENTERED: Partial<Record<UploadStatus, EventType>> = {
  processing: 'upload.processing',
  completed: 'upload.completed',
  failed: 'upload.failed',
  aborted: 'upload.aborted',
  expired: 'upload.expired',
};
