import type { Upload } from './ledger.js';

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
