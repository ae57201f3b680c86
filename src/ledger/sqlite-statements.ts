/** The SQLite ledger's statements (sqlite-ledger.ts), prepared once when it opens. */

/** `u` is not a part that some composed upload of its owner names. */
const NOT_COMPOSED_PART = `NOT (u.is_part = 1 AND EXISTS (
  SELECT 1 FROM uploads f WHERE f.owner = u.owner AND f.parts IS NOT NULL AND instr(f.parts, '"' || u.id || '"') > 0))`;

export const SQL = {
  insertUpload: `
    INSERT INTO uploads (id, owner, layout, protocol, file_name, content_type, metadata, size, chunk_size, total_chunks,
                         expected_sha256, status, created_at, updated_at, expires_at, length_deferred, echo, is_part, parts,
                         transfer, multipart, node)
    VALUES (@id, @owner, @layout, @protocol, @fileName, @contentType, @metadata, @size, @chunkSize, @totalChunks,
            @expectedSha256, 'uploading', @createdAt, @createdAt, @expiresAt, @lengthDeferred, @echo, @isPart, @parts,
            @transfer, @multipart, @node)`,
  getUpload: 'SELECT * FROM uploads WHERE id = ?',
  indexMetadata: 'INSERT OR IGNORE INTO metadata_index (owner, key, value, upload_id) VALUES (?, ?, ?, ?)',
  unindexMetadata: 'DELETE FROM metadata_index WHERE upload_id = ?',
  // A part written again after a takeover replaces the one a fenced writer may have left.
  insertStagedPart: `
    INSERT INTO direct_parts (upload_id, idx, length, etag, sha256, reported_at) VALUES (@id, @index, @length, @etag, @sha256, @now)
    ON CONFLICT (upload_id, idx) DO UPDATE SET length = excluded.length, etag = excluded.etag, sha256 = excluded.sha256,
                                               reported_at = excluded.reported_at`,
  advanceStaged: `
    UPDATE uploads SET bytes_received = bytes_received + @length, chunks_received = chunks_received + @parts, tail = @tail, updated_at = @now
    WHERE id = @id AND status = 'uploading'`,
  getChunk: 'SELECT idx, offset, length, sha256, received_at FROM chunks WHERE upload_id = ? AND idx = ?',
  chunkPage: 'SELECT idx, offset, length, sha256, received_at FROM chunks WHERE upload_id = ? AND idx >= ? ORDER BY idx LIMIT ?',
  dropChunk: 'DELETE FROM chunks WHERE upload_id = ? AND idx = ? RETURNING length',
  unbump: `UPDATE uploads SET chunks_received = chunks_received - 1, bytes_received = bytes_received - @length WHERE id = @id`,
  extentOf: 'SELECT layout, status, size, chunk_size, total_chunks, bytes_received FROM uploads WHERE id = ?',
  hasChunk: 'SELECT 1 AS one FROM chunks WHERE upload_id = ? AND idx = ?',
  chunkIndexes: 'SELECT idx FROM chunks WHERE upload_id = ? AND idx >= ? ORDER BY idx',
  insertChunk: `
    INSERT INTO chunks (upload_id, idx, offset, length, sha256, received_at)
    VALUES (@uploadId, @index, @offset, @length, @sha256, @receivedAt)`,
  // A stream's extents are numbered in order; their bytes are covered by the whole-file digest.
  insertExtent: `
    INSERT INTO chunks (upload_id, idx, offset, length, sha256, received_at)
    SELECT id, chunks_received, bytes_received, @length, NULL, @now FROM uploads WHERE id = @id`,
  bumpCounters: `
    UPDATE uploads SET chunks_received = chunks_received + 1, bytes_received = bytes_received + @length, updated_at = @now
    WHERE id = @id AND status = 'uploading'`,
  transition: `
    UPDATE uploads SET status = @to, updated_at = @now, failure = COALESCE(@failure, failure)
    WHERE id = @id AND status = @from`,
  complete: `
    UPDATE uploads SET status = @status, sha256 = @sha256, location = @location, updated_at = @now,
                       completed_at = @now, failure = NULL
    WHERE id = @id AND status = 'finishing'`,
  processed: `
    UPDATE uploads SET status = @status, processing = @result, failure = @failure, updated_at = @now
    WHERE id = @id AND status = 'processing'`,
  updateFile: `
    UPDATE uploads SET file_name = COALESCE(@fileName, file_name), content_type = COALESCE(@contentType, content_type),
                       metadata = COALESCE(@metadata, metadata), updated_at = @now
    WHERE id = @id AND status IN ('completed', 'processing') AND is_part = 0`,
  consumePart: `
    UPDATE uploads SET status = 'completed', location = @location, updated_at = @now, completed_at = @now
    WHERE id = @id AND status = 'uploading' AND is_part = 1`,
  deleteChunks: 'DELETE FROM chunks WHERE upload_id = ?',
  deleteParts: 'DELETE FROM direct_parts WHERE upload_id = ?',
  // A part of a composed upload is listed under it (its parts), not beside it.
  listFirst: `SELECT * FROM uploads u WHERE owner = ? AND ${NOT_COMPOSED_PART} ORDER BY created_at DESC, id DESC LIMIT ?`,
  listPage: `
    SELECT * FROM uploads u WHERE owner = ? AND ${NOT_COMPOSED_PART} AND (created_at < ? OR (created_at = ? AND id < ?))
    ORDER BY created_at DESC, id DESC LIMIT ?`,
  // With a node: its own uploads, those staged in the store, and those of nodes gone silent.
  dueForExpiry: `
    SELECT id FROM uploads WHERE status = 'uploading' AND expires_at <= @now
      AND (@node IS NULL OR node IS NULL OR node = @node OR multipart IS NOT NULL
           OR node IN (SELECT id FROM nodes WHERE seen_at < @deadBefore))
    ORDER BY expires_at LIMIT @limit`,
  byStatus: 'SELECT id FROM uploads WHERE status = @status AND (@node IS NULL OR node IS NULL OR node = @node)',
  heartbeat: 'INSERT INTO nodes (id, url, seen_at) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET url = excluded.url, seen_at = excluded.seen_at',
  nodeInfo: 'SELECT url, seen_at FROM nodes WHERE id = ?',
  abandonedFinishing: `
    SELECT id FROM uploads WHERE status = 'finishing' AND multipart IS NOT NULL AND node IN (SELECT id FROM nodes WHERE seen_at < ?)`,
  setLength: `
    UPDATE uploads SET size = @size, length_deferred = 0, chunk_size = MAX(@size, 1), updated_at = @now
    WHERE id = @id AND length_deferred = 1 AND bytes_received <= @size AND status = 'uploading'`,
  composedOf: `SELECT id FROM uploads WHERE parts IS NOT NULL AND status IN ('uploading', 'finishing') AND instr(parts, '"' || ? || '"') > 0`,
  awaitingPublish: `
    SELECT id FROM uploads WHERE layout = 'stream' AND status = 'uploading' AND length_deferred = 0
      AND ((parts IS NULL AND is_part = 0 AND bytes_received = size) OR parts IS NOT NULL)
      AND (@node IS NULL OR node IS NULL OR node = @node OR multipart IS NOT NULL)`,
  terminateCompleted: `UPDATE uploads SET status = 'aborted', updated_at = @now WHERE id = @id AND status IN ('completed', 'processing')`,
  // A composed upload's bytes are its parts': count them once. An upload whose length is not
  // known yet holds the bytes it has received.
  usage: `
    SELECT COUNT(*) AS active,
           COALESCE(SUM(CASE WHEN parts IS NOT NULL THEN 0 WHEN length_deferred = 1 THEN bytes_received ELSE size END), 0) AS reserved
    FROM uploads WHERE owner = ? AND status IN ('uploading', 'finishing')`,
  // Bytes promised to unfinished uploads but not yet written: staging files are sparse, so statfs
  // does not count them yet. Composed uploads hold no bytes of their own.
  outstanding: `
    SELECT COALESCE(SUM(size - bytes_received), 0) AS outstanding FROM uploads
    WHERE status IN ('uploading', 'finishing') AND length_deferred = 0 AND (parts IS NULL OR @copies = 1) AND multipart IS NULL`,
  activeStats: `
    SELECT COUNT(*) AS active, COALESCE(SUM(CASE WHEN multipart IS NULL THEN bytes_received ELSE 0 END), 0) AS stagedBytes FROM uploads
    WHERE status IN ('uploading', 'finishing')`,
} as const;
