import type { Chunk, DirectPart, ProcessingResult, StoredLocation, Upload, UploadStatus } from './ledger.js';

/** Ledger rows (the same in SQLite and PostgreSQL) and their conversion to the ledger's types. */

export interface UploadRow {
  id: string;
  owner: string;
  layout: Upload['layout'];
  protocol: Upload['protocol'];
  file_name: string;
  content_type: string;
  metadata: string;
  size: number;
  chunk_size: number;
  total_chunks: number;
  expected_sha256: string | null;
  status: UploadStatus;
  chunks_received: number;
  bytes_received: number;
  sha256: string | null;
  location: string | null;
  failure: string | null;
  created_at: number;
  updated_at: number;
  expires_at: number;
  completed_at: number | null;
  length_deferred: number;
  echo: string | null;
  is_part: number;
  parts: string | null;
  transfer: Upload['transfer'];
  multipart: string | null;
  tail: string | null;
  processing: string | null;
  node: string | null;
}

export interface ChunkRow {
  idx: number;
  offset: number;
  length: number;
  sha256: string;
  received_at: number;
}

export function toUpload(row: UploadRow): Upload {
  return {
    id: row.id,
    owner: row.owner,
    layout: row.layout,
    protocol: row.protocol,
    fileName: row.file_name,
    contentType: row.content_type,
    metadata: JSON.parse(row.metadata) as Record<string, string>,
    size: row.size,
    chunkSize: row.chunk_size,
    totalChunks: row.total_chunks,
    expectedSha256: row.expected_sha256,
    status: row.status,
    chunksReceived: row.chunks_received,
    bytesReceived: row.bytes_received,
    sha256: row.sha256,
    location: row.location === null ? null : (JSON.parse(row.location) as StoredLocation),
    failure: row.failure,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    expiresAt: row.expires_at,
    completedAt: row.completed_at,
    lengthDeferred: row.length_deferred === 1,
    echo: row.echo === null ? null : (JSON.parse(row.echo) as Record<string, string>),
    isPart: row.is_part === 1,
    parts: row.parts === null ? null : (JSON.parse(row.parts) as string[]),
    transfer: row.transfer,
    multipart: row.multipart,
    tail: row.tail,
    processing: row.processing === null ? null : (JSON.parse(row.processing) as ProcessingResult),
    node: row.node ?? null,
  };
}

/** The upload as bumpCounters leaves it (one more range of `length` bytes), without reading it again. */
export function bumped(upload: Upload, length: number, now: number): Upload {
  return { ...upload, chunksReceived: upload.chunksReceived + 1, bytesReceived: upload.bytesReceived + length, updatedAt: now };
}

export function toChunk(row: ChunkRow): Chunk {
  return { index: row.idx, offset: row.offset, length: row.length, sha256: row.sha256, receivedAt: row.received_at };
}

export interface PartRow {
  idx: number;
  length: number;
  declared_sha256: string | null;
  etag: string | null;
  sha256: string | null;
  reported_at: number | null;
}

export function toPart(row: PartRow): DirectPart {
  return {
    index: row.idx,
    length: row.length,
    declaredSha256: row.declared_sha256,
    etag: row.etag,
    sha256: row.sha256,
    reportedAt: row.reported_at,
  };
}
