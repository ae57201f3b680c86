/**
 * The PostgreSQL ledger's schema. It describes the same tables as the SQLite migrations
 * (migrations.ts) - a test compares their columns - and is versioned with the same numbers: the
 * first entry is the whole schema at SQLite's version 7, and each later change to the ledger adds
 * an entry here and one there, with the same version. Never edit an entry that has shipped.
 *
 * Times are Unix epoch milliseconds (BIGINT, read back as numbers); JSON values are TEXT, as in
 * SQLite, so that both ledgers share one row mapping (sqlite-rows.ts).
 */
export const PG_MIGRATIONS: readonly { version: number; sql: string }[] = [
  {
    version: 7,
    sql: `
    CREATE TABLE uploads (
      id              TEXT PRIMARY KEY,
      owner           TEXT NOT NULL,
      layout          TEXT NOT NULL CHECK (layout IN ('grid', 'stream')),
      protocol        TEXT NOT NULL CHECK (protocol IN ('native', 'tus', 'ietf')),
      file_name       TEXT NOT NULL,
      content_type    TEXT NOT NULL,
      metadata        TEXT NOT NULL DEFAULT '{}',
      size            BIGINT NOT NULL CHECK (size >= 0),
      chunk_size      BIGINT NOT NULL CHECK (chunk_size > 0),
      total_chunks    INTEGER NOT NULL CHECK (total_chunks >= 0),
      expected_sha256 TEXT,
      status          TEXT NOT NULL CHECK (status IN ('uploading', 'finishing', 'processing', 'completed', 'failed', 'aborted', 'expired')),
      chunks_received INTEGER NOT NULL DEFAULT 0,
      bytes_received  BIGINT NOT NULL DEFAULT 0,
      sha256          TEXT,
      location        TEXT,
      failure         TEXT,
      created_at      BIGINT NOT NULL,
      updated_at      BIGINT NOT NULL,
      expires_at      BIGINT NOT NULL,
      completed_at    BIGINT,
      length_deferred INTEGER NOT NULL DEFAULT 0,
      echo            TEXT,
      is_part         INTEGER NOT NULL DEFAULT 0,
      parts           TEXT,
      transfer        TEXT NOT NULL DEFAULT 'server' CHECK (transfer IN ('server', 'direct')),
      multipart       TEXT,
      tail            TEXT,
      processing      TEXT,
      progress_at     BIGINT
    );
    CREATE INDEX uploads_owner_created ON uploads (owner, created_at DESC, id DESC);
    CREATE INDEX uploads_status_expires ON uploads (status, expires_at);
    CREATE INDEX uploads_composed ON uploads (status) WHERE parts IS NOT NULL;

    CREATE TABLE chunks (
      upload_id   TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
      idx         INTEGER NOT NULL CHECK (idx >= 0),
      "offset"    BIGINT NOT NULL CHECK ("offset" >= 0),
      length      BIGINT NOT NULL CHECK (length >= 0),
      sha256      TEXT,
      received_at BIGINT NOT NULL,
      PRIMARY KEY (upload_id, idx)
    );

    CREATE TABLE direct_parts (
      upload_id       TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
      idx             INTEGER NOT NULL CHECK (idx >= 0),
      length          BIGINT NOT NULL CHECK (length >= 0),
      declared_sha256 TEXT,
      etag            TEXT,
      sha256          TEXT,
      reported_at     BIGINT,
      PRIMARY KEY (upload_id, idx)
    );

    CREATE TABLE events (
      id         BIGSERIAL PRIMARY KEY,
      type       TEXT NOT NULL,
      owner      TEXT NOT NULL,
      upload_id  TEXT NOT NULL,
      data       TEXT NOT NULL,
      created_at BIGINT NOT NULL
    );
    CREATE INDEX events_owner ON events (owner, id);
    CREATE INDEX events_created ON events (created_at);

    CREATE TABLE webhook_endpoints (
      url        TEXT PRIMARY KEY,
      cursor     BIGINT NOT NULL,
      types      TEXT,
      stopped_at BIGINT,
      stop_note  TEXT
    );
    CREATE TABLE webhook_deliveries (
      endpoint   TEXT NOT NULL REFERENCES webhook_endpoints (url) ON DELETE CASCADE,
      event_id   BIGINT NOT NULL,
      upload_id  TEXT NOT NULL,
      state      TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
      attempts   INTEGER NOT NULL DEFAULT 0,
      next_at    BIGINT NOT NULL,
      created_at BIGINT NOT NULL,
      last_error TEXT,
      done_at    BIGINT,
      PRIMARY KEY (endpoint, event_id)
    );
    CREATE INDEX webhook_pending ON webhook_deliveries (endpoint, upload_id, event_id) WHERE state = 'pending';
    `,
  },
  {
    version: 8,
    sql: `
    ALTER TABLE uploads ADD COLUMN node TEXT;
    CREATE TABLE nodes (
      id      TEXT PRIMARY KEY,
      url     TEXT,
      seen_at BIGINT NOT NULL
    );
    `,
  },
  {
    version: 9,
    sql: `
    CREATE TABLE metadata_index (
      owner     TEXT NOT NULL,
      key       TEXT NOT NULL,
      value     TEXT NOT NULL,
      upload_id TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
      PRIMARY KEY (owner, key, value, upload_id)
    );
    CREATE INDEX metadata_index_upload ON metadata_index (upload_id);
    INSERT INTO metadata_index (owner, key, value, upload_id)
      SELECT u.owner, m.key, m.value, u.id FROM uploads u, jsonb_each_text(u.metadata::jsonb) m;
    CREATE INDEX uploads_owner_status_created ON uploads (owner, status, created_at DESC, id DESC);
    `,
  },
];
