/**
 * Versioned schema migrations; entry i brings the schema to version i + 1. Never edit an entry
 * that has shipped: append a new one.
 *
 * Times are Unix epoch milliseconds. `chunks` holds one row per byte range that is durable on disk
 * and verified: it is the source of truth for what has been received.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE uploads (
    id              TEXT PRIMARY KEY,
    owner           TEXT NOT NULL,
    protocol        TEXT NOT NULL CHECK (protocol IN ('native', 'tus')),
    file_name       TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    metadata        TEXT NOT NULL DEFAULT '{}',
    size            INTEGER NOT NULL CHECK (size >= 0),
    chunk_size      INTEGER NOT NULL CHECK (chunk_size > 0),
    total_chunks    INTEGER NOT NULL CHECK (total_chunks >= 0),
    expected_sha256 TEXT,
    status          TEXT NOT NULL CHECK (status IN ('uploading', 'finishing', 'completed', 'failed', 'aborted', 'expired')),
    chunks_received INTEGER NOT NULL DEFAULT 0,
    bytes_received  INTEGER NOT NULL DEFAULT 0,
    sha256          TEXT,
    location        TEXT,
    failure         TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    completed_at    INTEGER
  );
  CREATE INDEX uploads_owner_created ON uploads (owner, created_at DESC, id DESC);
  CREATE INDEX uploads_status_expires ON uploads (status, expires_at);

  CREATE TABLE chunks (
    upload_id   TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL CHECK (idx >= 0),
    offset      INTEGER NOT NULL CHECK (offset >= 0),
    length      INTEGER NOT NULL CHECK (length >= 0),
    sha256      TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (upload_id, idx)
  ) WITHOUT ROWID;
  `,
  `
  -- tus: a length that is not known yet (creation-defer-length), the raw Upload-Metadata to echo,
  -- and concatenation: 'partial', or 'final;<urls>' with the partial ids in order in parts (JSON).
  ALTER TABLE uploads ADD COLUMN length_deferred INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE uploads ADD COLUMN tus_metadata TEXT;
  ALTER TABLE uploads ADD COLUMN concat TEXT;
  ALTER TABLE uploads ADD COLUMN parts TEXT;
  CREATE INDEX uploads_finals ON uploads (status) WHERE concat LIKE 'final%';
  `,
  `
  -- An append's SHA-256 may cover the file from this byte (0) instead of the extent's own bytes:
  -- appends that continue the whole-file digest are hashed once. NULL: from offset, as before.
  ALTER TABLE chunks ADD COLUMN sha256_from INTEGER CHECK (sha256_from >= 0 AND sha256_from <= offset);
  `,
  `
  -- The byte layout (grid: chunks at fixed offsets; stream: appended in order) replaces the
  -- protocol as what decides behaviour; the protocol stays as information and now tells IETF
  -- uploads apart. Composition is a flag (is_part) and the parts list, not a tus header value;
  -- what a protocol echoes back as sent (tus Upload-Metadata, Upload-Concat) is one JSON object. A stream's extents are covered by the whole-file
  -- digest: their own sha256 and sha256_from were written and never read, so they go.
  -- (SQLite cannot change a CHECK or drop a constrained column in place: both tables are rebuilt,
  -- with foreign keys off around the migration; see migrate().)
  CREATE TABLE uploads_v4 (
    id              TEXT PRIMARY KEY,
    owner           TEXT NOT NULL,
    layout          TEXT NOT NULL CHECK (layout IN ('grid', 'stream')),
    protocol        TEXT NOT NULL CHECK (protocol IN ('native', 'tus', 'ietf')),
    file_name       TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    metadata        TEXT NOT NULL DEFAULT '{}',
    size            INTEGER NOT NULL CHECK (size >= 0),
    chunk_size      INTEGER NOT NULL CHECK (chunk_size > 0),
    total_chunks    INTEGER NOT NULL CHECK (total_chunks >= 0),
    expected_sha256 TEXT,
    status          TEXT NOT NULL CHECK (status IN ('uploading', 'finishing', 'completed', 'failed', 'aborted', 'expired')),
    chunks_received INTEGER NOT NULL DEFAULT 0,
    bytes_received  INTEGER NOT NULL DEFAULT 0,
    sha256          TEXT,
    location        TEXT,
    failure         TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    completed_at    INTEGER,
    length_deferred INTEGER NOT NULL DEFAULT 0,
    echo            TEXT,
    is_part         INTEGER NOT NULL DEFAULT 0,
    parts           TEXT
  );
  INSERT INTO uploads_v4
    SELECT id, owner, CASE protocol WHEN 'native' THEN 'grid' ELSE 'stream' END, protocol, file_name, content_type,
           metadata, size, chunk_size, total_chunks, expected_sha256, status, chunks_received, bytes_received, sha256,
           location, failure, created_at, updated_at, expires_at, completed_at, length_deferred,
           CASE WHEN tus_metadata IS NULL AND concat IS NULL THEN NULL
                ELSE json_patch('{}', json_object('upload-metadata', tus_metadata, 'upload-concat', concat)) END,
           CASE WHEN concat = 'partial' THEN 1 ELSE 0 END, parts
    FROM uploads;
  DROP TABLE uploads;
  ALTER TABLE uploads_v4 RENAME TO uploads;
  CREATE INDEX uploads_owner_created ON uploads (owner, created_at DESC, id DESC);
  CREATE INDEX uploads_status_expires ON uploads (status, expires_at);
  CREATE INDEX uploads_composed ON uploads (status) WHERE parts IS NOT NULL;

  CREATE TABLE chunks_v4 (
    upload_id   TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL CHECK (idx >= 0),
    offset      INTEGER NOT NULL CHECK (offset >= 0),
    length      INTEGER NOT NULL CHECK (length >= 0),
    sha256      TEXT,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (upload_id, idx)
  ) WITHOUT ROWID;
  INSERT INTO chunks_v4
    SELECT c.upload_id, c.idx, c.offset, c.length, CASE WHEN u.layout = 'grid' THEN c.sha256 END, c.received_at
    FROM chunks c JOIN uploads u ON u.id = c.upload_id;
  DROP TABLE chunks;
  ALTER TABLE chunks_v4 RENAME TO chunks;
  `,
  // 5: direct uploads - the client sends parts straight to the store and reports them; an upload
  // says how its bytes travel, and keeps the store's multipart reference. A part's declared
  // SHA-256 (signed into its URL) is kept until it is reported with its ETag.
  `
  ALTER TABLE uploads ADD COLUMN transfer TEXT NOT NULL DEFAULT 'server' CHECK (transfer IN ('server', 'direct'));
  ALTER TABLE uploads ADD COLUMN multipart TEXT;
  CREATE TABLE direct_parts (
    upload_id       TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    idx             INTEGER NOT NULL CHECK (idx >= 0),
    length          INTEGER NOT NULL CHECK (length >= 0),
    declared_sha256 TEXT,
    etag            TEXT,
    sha256          TEXT,
    reported_at     INTEGER,
    PRIMARY KEY (upload_id, idx)
  ) WITHOUT ROWID;
  `,
  // 6: a stream upload staged in the store keeps the bytes past its last whole part in one object
  // of the store (its "tail"), so that any node can go on with it; the ledger names the one that
  // counts (a writer that lost its lease may leave another behind, which is never read).
  `
  ALTER TABLE uploads ADD COLUMN tail TEXT;
  `,
  // 7: events for applications. An upload may wait for a post-processor (`processing`: its file
  // is stored, the processor's answer is not in), which the status CHECK must allow (so the table
  // is rebuilt, as in 4); `processing` keeps the processor's answer (JSON), `progress_at` when the
  // last progress event was written. The event outbox is written in the transaction of the change
  // it reports; each webhook endpoint has a cursor into it and a delivery row per event it takes.
  `
  CREATE TABLE uploads_v7 (
    id              TEXT PRIMARY KEY,
    owner           TEXT NOT NULL,
    layout          TEXT NOT NULL CHECK (layout IN ('grid', 'stream')),
    protocol        TEXT NOT NULL CHECK (protocol IN ('native', 'tus', 'ietf')),
    file_name       TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    metadata        TEXT NOT NULL DEFAULT '{}',
    size            INTEGER NOT NULL CHECK (size >= 0),
    chunk_size      INTEGER NOT NULL CHECK (chunk_size > 0),
    total_chunks    INTEGER NOT NULL CHECK (total_chunks >= 0),
    expected_sha256 TEXT,
    status          TEXT NOT NULL CHECK (status IN ('uploading', 'finishing', 'processing', 'completed', 'failed', 'aborted', 'expired')),
    chunks_received INTEGER NOT NULL DEFAULT 0,
    bytes_received  INTEGER NOT NULL DEFAULT 0,
    sha256          TEXT,
    location        TEXT,
    failure         TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    completed_at    INTEGER,
    length_deferred INTEGER NOT NULL DEFAULT 0,
    echo            TEXT,
    is_part         INTEGER NOT NULL DEFAULT 0,
    parts           TEXT,
    transfer        TEXT NOT NULL DEFAULT 'server' CHECK (transfer IN ('server', 'direct')),
    multipart       TEXT,
    tail            TEXT,
    processing      TEXT,
    progress_at     INTEGER
  );
  INSERT INTO uploads_v7
    SELECT id, owner, layout, protocol, file_name, content_type, metadata, size, chunk_size, total_chunks, expected_sha256,
           status, chunks_received, bytes_received, sha256, location, failure, created_at, updated_at, expires_at,
           completed_at, length_deferred, echo, is_part, parts, transfer, multipart, tail, NULL, NULL
    FROM uploads;
  DROP TABLE uploads;
  ALTER TABLE uploads_v7 RENAME TO uploads;
  CREATE INDEX uploads_owner_created ON uploads (owner, created_at DESC, id DESC);
  CREATE INDEX uploads_status_expires ON uploads (status, expires_at);
  CREATE INDEX uploads_composed ON uploads (status) WHERE parts IS NOT NULL;

  CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    type       TEXT NOT NULL,
    owner      TEXT NOT NULL,
    upload_id  TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE INDEX events_owner ON events (owner, id);
  CREATE INDEX events_created ON events (created_at);

  CREATE TABLE webhook_endpoints (
    url        TEXT PRIMARY KEY,
    cursor     INTEGER NOT NULL,
    types      TEXT,
    stopped_at INTEGER,
    stop_note  TEXT
  );
  CREATE TABLE webhook_deliveries (
    endpoint     TEXT NOT NULL REFERENCES webhook_endpoints (url) ON DELETE CASCADE,
    event_id     INTEGER NOT NULL,
    upload_id    TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    last_error   TEXT,
    done_at      INTEGER,
    PRIMARY KEY (endpoint, event_id)
  ) WITHOUT ROWID;
  CREATE INDEX webhook_pending ON webhook_deliveries (endpoint, upload_id, event_id) WHERE state = 'pending';
  `,
  // 8: several nodes on one ledger. An upload staged on a node's local disk belongs to that node
  // (`node`; NULL with the embedded ledger, where there is one); `nodes` says where each node is
  // and when it was last seen.
  `
  ALTER TABLE uploads ADD COLUMN node TEXT;
  CREATE TABLE nodes (
    id      TEXT PRIMARY KEY,
    url     TEXT,
    seen_at INTEGER NOT NULL
  );
  `,
  // 9: files listed by metadata (seed 003's parent_content_type / parent_object_id and any other
  // key): one row per key of each upload's metadata, kept with it, so that a filter is an index
  // lookup however many files an owner has.
  `
  CREATE TABLE metadata_index (
    owner     TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    upload_id TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    PRIMARY KEY (owner, key, value, upload_id)
  ) WITHOUT ROWID;
  CREATE INDEX metadata_index_upload ON metadata_index (upload_id);
  INSERT INTO metadata_index (owner, key, value, upload_id)
    SELECT u.owner, m.key, m.value, u.id FROM uploads u, json_each(u.metadata) m;
  CREATE INDEX uploads_owner_status_created ON uploads (owner, status, created_at DESC, id DESC);
  `,
];
