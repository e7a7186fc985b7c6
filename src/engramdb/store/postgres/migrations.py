"""Forward-only schema migrations for the PostgreSQL store.

``MIGRATIONS[i]`` upgrades a schema from version ``i`` to ``i + 1``; the version lives in the
one-row table ``engramdb_schema``. Migrations run on open, in one transaction, under a
database-wide advisory lock, so processes opening the same database at once never race: the
first applies them, the others wait and then find the schema current. Released migrations are
never edited: add a new one instead.

Tables live in the connection's current schema (the first entry of ``search_path``), so one
database can hold several independent engramdb stores in different schemas.
"""

from __future__ import annotations

import psycopg

from ...errors import SchemaVersionError, StoreUnavailableError

# pg_advisory_xact_lock key: "engramdb" in ASCII, as a bigint
MIGRATION_LOCK = 0x656E6772616D6462

# Full text: the english snowball stemmer (as SQLite's porter tokenizer stems) but without a
# stopword list, so a query made only of common words still matches, as it does on SQLite.
TEXT_CONFIG = "engramdb_text"

MIGRATIONS: list[list[str]] = [
    # 1: everything the SQLite schema holds at its version 4. Times are integer microseconds
    # since the epoch, like SQLite's. Session items are TEXT, stored exactly as given (jsonb
    # would reorder keys and lose the byte-for-byte round trip).
    [
        """CREATE TABLE sessions (
            namespace  text   NOT NULL,
            session_id text   NOT NULL,
            created_at bigint NOT NULL,
            updated_at bigint NOT NULL,
            item_count bigint NOT NULL DEFAULT 0,
            next_seq   bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (namespace, session_id)
        )""",
        "CREATE INDEX sessions_by_update ON sessions (namespace, updated_at, session_id)",
        """CREATE TABLE session_items (
            namespace  text   NOT NULL,
            session_id text   NOT NULL,
            seq        bigint NOT NULL,
            data       text   NOT NULL,
            created_at bigint NOT NULL,
            PRIMARY KEY (namespace, session_id, seq)
        )""",
        """CREATE TABLE leases (
            namespace  text   NOT NULL,
            name       text   NOT NULL,
            owner      text   NOT NULL,
            expires_at bigint NOT NULL,
            PRIMARY KEY (namespace, name)
        )""",
        f"""CREATE TEXT SEARCH DICTIONARY {TEXT_CONFIG}_stem (
            TEMPLATE = pg_catalog.snowball, Language = english
        )""",
        f"CREATE TEXT SEARCH CONFIGURATION {TEXT_CONFIG} (COPY = pg_catalog.english)",
        f"""ALTER TEXT SEARCH CONFIGURATION {TEXT_CONFIG} ALTER MAPPING FOR
            asciiword, asciihword, hword_asciipart, word, hword, hword_part
            WITH {TEXT_CONFIG}_stem""",
        # rowid is internal (search keys, list cursors); id is the public id. tags and metadata
        # are JSON text as given; tag_text, search_text and context_text (the text of the
        # memories stored just before and after in the same session) feed the full-text
        # column, weighted like SQLite's bm25 columns (content A, tags B, metadata values C,
        # context D). Embeddings are
        # pgvector values of any dimension; embedding_dim selects a per-dimension HNSW index
        # (created when the first vector of that dimension arrives).
        f"""CREATE TABLE memories (
            rowid           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id              text   NOT NULL UNIQUE,
            namespace       text   NOT NULL,
            user_id         text,
            agent_id        text,
            session_id      text,
            content         text   NOT NULL,
            content_hash    text   NOT NULL,
            tags            text   NOT NULL,
            tag_text        text   NOT NULL,
            metadata        text   NOT NULL,
            search_text     text   NOT NULL,
            context_text    text   NOT NULL DEFAULT '',
            importance      double precision NOT NULL,
            occurred_at     bigint,
            created_at      bigint NOT NULL,
            updated_at      bigint NOT NULL,
            version         integer NOT NULL,
            embedding       vector,
            embedding_model text,
            embedding_dim   integer,
            fts tsvector GENERATED ALWAYS AS (
                setweight(to_tsvector('{TEXT_CONFIG}'::regconfig, content), 'A') ||
                setweight(to_tsvector('{TEXT_CONFIG}'::regconfig, tag_text), 'B') ||
                setweight(to_tsvector('{TEXT_CONFIG}'::regconfig, search_text), 'C') ||
                setweight(to_tsvector('{TEXT_CONFIG}'::regconfig, context_text), 'D')
            ) STORED
        )""",
        # identical content in the same scope is stored once
        """CREATE UNIQUE INDEX memories_identity ON memories (namespace, coalesce(user_id, ''),
            coalesce(agent_id, ''), coalesce(session_id, ''), content_hash)""",
        "CREATE INDEX memories_by_namespace ON memories (namespace, rowid)",
        "CREATE INDEX memories_by_hash ON memories (content_hash)",
        "CREATE INDEX memories_by_user ON memories (namespace, user_id)",
        "CREATE INDEX memories_by_session ON memories (namespace, session_id, rowid)",
        "CREATE INDEX memories_by_agent ON memories (namespace, agent_id)",
        "CREATE INDEX memories_fts ON memories USING gin (fts)",
        # tags lower-cased: matching ignores case, as SQLite's NOCASE does
        """CREATE TABLE memory_tags (
            namespace    text   NOT NULL,
            tag          text   NOT NULL,
            memory_rowid bigint NOT NULL REFERENCES memories (rowid) ON DELETE CASCADE,
            PRIMARY KEY (namespace, tag, memory_rowid)
        )""",
        "CREATE INDEX memory_tags_by_memory ON memory_tags (memory_rowid)",
        # the users a namespace has had (kept after their memories go): recall recognises
        # their names in queries
        """CREATE TABLE memory_users (
            namespace text NOT NULL,
            user_id   text NOT NULL,
            PRIMARY KEY (namespace, user_id)
        )""",
        """CREATE TABLE memory_history (
            memory_id   text    NOT NULL,
            version     integer NOT NULL,
            content     text    NOT NULL,
            tags        text    NOT NULL,
            metadata    text    NOT NULL,
            importance  double precision NOT NULL,
            replaced_at bigint  NOT NULL,
            PRIMARY KEY (memory_id, version)
        )""",
        """CREATE TABLE triples (
            rowid      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id         text   NOT NULL UNIQUE,
            namespace  text   NOT NULL,
            subject    text   NOT NULL,
            predicate  text   NOT NULL,
            object     text   NOT NULL,
            confidence double precision NOT NULL,
            source     text,
            valid_from bigint NOT NULL,
            valid_to   bigint,
            created_at bigint NOT NULL,
            memory_id  text
        )""",
        # entity matching ignores case (lower(), like SQLite's NOCASE)
        """CREATE INDEX triples_by_subject ON triples
            (namespace, lower(subject), lower(predicate))""",
        "CREATE INDEX triples_by_object ON triples (namespace, lower(object))",
        "CREATE INDEX triples_by_predicate ON triples (namespace, lower(predicate))",
    ],
    # 2: the server's bookkeeping, as SQLite's version 5: API keys (only the SHA-256 of a
    # secret; limits as JSON text), usage counters per subject, counter and window, and the
    # responses of requests sent with an Idempotency-Key (status NULL while the first attempt
    # runs). "window" is a reserved word here, hence the quotes.
    [
        """CREATE TABLE api_keys (
            id          text   PRIMARY KEY,
            namespace   text   NOT NULL,
            name        text   NOT NULL,
            purpose     text,
            prefix      text   NOT NULL,
            secret_hash text   NOT NULL UNIQUE,
            limits      text   NOT NULL,
            created_at  bigint NOT NULL,
            revoked_at  bigint
        )""",
        "CREATE INDEX api_keys_by_namespace ON api_keys (namespace, created_at)",
        """CREATE TABLE usage (
            namespace text   NOT NULL,
            subject   text   NOT NULL,
            counter   text   NOT NULL,
            "window"  text   NOT NULL,
            value     bigint NOT NULL,
            PRIMARY KEY (namespace, subject, counter, "window")
        )""",
        """CREATE TABLE idempotency (
            namespace    text    NOT NULL,
            key          text    NOT NULL,
            request_hash text    NOT NULL,
            status       integer,
            body         bytea,
            created_at   bigint  NOT NULL,
            PRIMARY KEY (namespace, key)
        )""",
        "CREATE INDEX idempotency_by_age ON idempotency (created_at)",
    ],
    # 3: as SQLite's version 6: per-namespace counts maintained in every write transaction
    # (the quota check locks and reads one row instead of counting), backfilled; and the
    # namespace key that created each key.
    [
        """CREATE TABLE namespace_counts (
            namespace text   PRIMARY KEY,
            memories  bigint NOT NULL DEFAULT 0,
            facts     bigint NOT NULL DEFAULT 0
        )""",
        """INSERT INTO namespace_counts (namespace, memories, facts)
            SELECT namespace, sum(m), sum(f) FROM (
                SELECT namespace, 1 AS m, 0 AS f FROM memories
                UNION ALL SELECT namespace, 0, 1 FROM triples
            ) AS t GROUP BY namespace""",
        "ALTER TABLE api_keys ADD COLUMN created_by text",
        "CREATE INDEX api_keys_by_creator ON api_keys (created_by)",
    ],
    # 4: random secrets of this store, shared by every process and replica using it (the key
    # that seals page cursors)
    [
        """CREATE TABLE IF NOT EXISTS secrets (
            name  text  PRIMARY KEY,
            value bytea NOT NULL
        )""",
    ],
    # 5: as SQLite's version 8: invalidated memories (excluded from recall, kept and
    # restorable), memory_events (why each memory exists) and per-session extraction marks.
    [
        "ALTER TABLE memories ADD COLUMN IF NOT EXISTS invalidated_at bigint",
        "ALTER TABLE memories ADD COLUMN IF NOT EXISTS invalidated_reason text",
        """CREATE TABLE IF NOT EXISTS memory_events (
            seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            namespace      text   NOT NULL,
            memory_id      text   NOT NULL,
            at             bigint NOT NULL,
            action         text   NOT NULL,
            reason         text,
            model          text,
            prompt_version text,
            session_id     text,
            item_seqs      text   NOT NULL,
            details        text   NOT NULL
        )""",
        """CREATE INDEX IF NOT EXISTS memory_events_by_memory
            ON memory_events (namespace, memory_id, seq)""",
        """CREATE TABLE IF NOT EXISTS extraction_marks (
            namespace  text   NOT NULL,
            session_id text   NOT NULL,
            last_seq   bigint NOT NULL,
            updated_at bigint NOT NULL,
            PRIMARY KEY (namespace, session_id)
        )""",
    ],
    # 6: as SQLite's version 9: lease-locked background jobs (trace consolidation), one row
    # per (namespace, kind, job_key): the ownership token of the current run, its lease expiry
    # and heartbeat, the retry budget and time, the last error and the input watermark of the
    # last completed run. Times are microseconds. Operational state: not exported.
    [
        """CREATE TABLE IF NOT EXISTS jobs (
            namespace        text NOT NULL,
            kind             text NOT NULL,
            job_key          text NOT NULL,
            status           text NOT NULL,
            owner            text,
            token            text,
            lease_expires_at bigint,
            heartbeat_at     bigint,
            input_watermark  text,
            attempts         bigint NOT NULL DEFAULT 0,
            max_attempts     bigint NOT NULL,
            retry_at         bigint,
            last_error       text,
            created_at       bigint NOT NULL,
            updated_at       bigint NOT NULL,
            PRIMARY KEY (namespace, kind, job_key)
        )""",
        """CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (namespace, status, kind, job_key)""",
    ],
    # 7: as SQLite's version 10: the spend of each job, the per-day spend ledger and the
    # per-scope consolidation settings. Operational state: not exported.
    [
        "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS sessions bigint NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS llm_calls bigint NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS input_tokens bigint NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS output_tokens bigint NOT NULL DEFAULT 0",
        """CREATE TABLE IF NOT EXISTS spend_days (
            namespace     text NOT NULL,
            day           text NOT NULL,
            scope         text NOT NULL,
            sessions      bigint NOT NULL DEFAULT 0,
            llm_calls     bigint NOT NULL DEFAULT 0,
            input_tokens  bigint NOT NULL DEFAULT 0,
            output_tokens bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (namespace, day, scope)
        )""",
        """CREATE TABLE IF NOT EXISTS consolidation_scopes (
            namespace      text NOT NULL,
            scope          text NOT NULL,
            enabled        boolean NOT NULL,
            session_prefix text,
            created_at     bigint NOT NULL,
            updated_at     bigint NOT NULL,
            PRIMARY KEY (namespace, scope)
        )""",
    ],
    # 8: as SQLite's version 12: session_items.plain, decided when an item is written
    # (validation.plain_item); NULL for rows written before, which take the careful path.
    [
        "ALTER TABLE session_items ADD COLUMN IF NOT EXISTS plain boolean",
    ],
    # 9: the text lane's per-namespace statistics and index settings (issue 14).
    # memory_terms: how many of a namespace's memories hold each lexeme of the full-text
    # column, kept exact by statement-level triggers (every path that writes memories: inserts,
    # edits, context refreshes, deletes, imports). Recall reads them to drop the commonest
    # query terms before matching (as SQLite does from its FTS5 index), so a query no longer
    # ranks every row that shares one common word. Writers of one namespace already queue on
    # its namespace_counts row, and rows are upserted in lexeme order, so the counters add no
    # deadlock. The GIN index stops using its pending list (fastupdate): every query would
    # otherwise scan the unsorted list of recent entries (up to 4 MB) row by row.
    [
        """CREATE TABLE IF NOT EXISTS memory_terms (
            namespace text   NOT NULL,
            lexeme    text   NOT NULL,
            docs      bigint NOT NULL,
            PRIMARY KEY (namespace, lexeme)
        )""",
        """CREATE OR REPLACE FUNCTION engramdb_count_terms() RETURNS trigger
        LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO memory_terms AS t (namespace, lexeme, docs)
                SELECT r.namespace, l.lexeme, count(*) FROM new_rows r, unnest(r.fts) l
                GROUP BY 1, 2 ORDER BY 1, 2
                ON CONFLICT (namespace, lexeme) DO UPDATE SET docs = t.docs + excluded.docs;
            ELSIF TG_OP = 'DELETE' THEN
                UPDATE memory_terms t SET docs = t.docs - d.n FROM (
                    SELECT r.namespace, l.lexeme, count(*) AS n FROM old_rows r, unnest(r.fts) l
                    GROUP BY 1, 2 ORDER BY 1, 2) d
                WHERE t.namespace = d.namespace AND t.lexeme = d.lexeme;
            ELSE
                -- only rows whose text changed (not a new embedding or an invalidation)
                INSERT INTO memory_terms AS t (namespace, lexeme, docs)
                SELECT d.namespace, d.lexeme, sum(d.n) FROM new_rows nr JOIN old_rows o
                    ON o.rowid = nr.rowid AND (o.fts IS DISTINCT FROM nr.fts
                        OR o.namespace <> nr.namespace)
                    CROSS JOIN LATERAL (
                        SELECT nr.namespace, l.lexeme, 1 AS n FROM unnest(nr.fts) l
                        UNION ALL
                        SELECT o.namespace, l.lexeme, -1 FROM unnest(o.fts) l) d
                GROUP BY 1, 2 HAVING sum(d.n) <> 0 ORDER BY 1, 2
                ON CONFLICT (namespace, lexeme) DO UPDATE SET docs = t.docs + excluded.docs;
                DELETE FROM memory_terms t WHERE t.docs <= 0 AND (t.namespace, t.lexeme) IN (
                    SELECT o.namespace, l.lexeme FROM new_rows nr JOIN old_rows o
                    ON o.rowid = nr.rowid AND (o.fts IS DISTINCT FROM nr.fts
                        OR o.namespace <> nr.namespace), unnest(o.fts) l);
            END IF;
            IF TG_OP = 'DELETE' THEN
                -- a word no memory holds any more leaves no trace (forget erases its text)
                DELETE FROM memory_terms t WHERE t.docs <= 0 AND (t.namespace, t.lexeme) IN (
                    SELECT r.namespace, l.lexeme FROM old_rows r, unnest(r.fts) l);
            END IF;
            RETURN NULL;
        END $$""",
        "DROP TRIGGER IF EXISTS memories_terms_insert ON memories",
        "DROP TRIGGER IF EXISTS memories_terms_update ON memories",
        "DROP TRIGGER IF EXISTS memories_terms_delete ON memories",
        """CREATE TRIGGER memories_terms_insert AFTER INSERT ON memories
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION engramdb_count_terms()""",
        """CREATE TRIGGER memories_terms_update AFTER UPDATE ON memories
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION engramdb_count_terms()""",
        """CREATE TRIGGER memories_terms_delete AFTER DELETE ON memories
            REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION engramdb_count_terms()""",
        # the counts of the rows already stored (re-runnable: recounted from scratch). A lexeme
        # whose count reaches zero is deleted: forgotten words leave no row behind.
        "DELETE FROM memory_terms",
        """INSERT INTO memory_terms (namespace, lexeme, docs)
            SELECT m.namespace, l.lexeme, count(*) FROM memories m, unnest(m.fts) l
            GROUP BY 1, 2""",
        "ALTER INDEX memories_fts SET (fastupdate = off)",
        "SELECT gin_clean_pending_list('memories_fts'::regclass)",
    ],
    # 10: embeddings leave the memories table for memory_vectors, one row per (memory, chunk)
    # (a long memory is embedded in overlapping chunks, each with its character span), with
    # the namespace and model alongside so a vector search reads this table only until it
    # joins its hits. Each dimension has a partial HNSW index (memory_vectors_hnsw_<dim>). The
    # old columns go, and their indexes with them; rows go with their memory (ON DELETE
    # CASCADE). Re-runnable: the copy runs while the old column exists.
    [
        """CREATE TABLE IF NOT EXISTS memory_vectors (
            memory_rowid bigint  NOT NULL REFERENCES memories (rowid) ON DELETE CASCADE,
            chunk        integer NOT NULL,
            namespace    text    NOT NULL,
            model        text    NOT NULL,
            dim          integer NOT NULL,
            embedding    vector  NOT NULL,
            span_start   integer NOT NULL,
            span_end     integer NOT NULL,
            PRIMARY KEY (memory_rowid, chunk)
        )""",
        # a small namespace's vectors are ranked exactly, read through this index
        """CREATE INDEX IF NOT EXISTS memory_vectors_by_namespace
            ON memory_vectors (namespace, model)""",
        """DO $$
        DECLARE
            d integer;
            dims integer[];
        BEGIN
            IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema =
                    current_schema() AND table_name = 'memories' AND column_name = 'embedding')
            THEN
                INSERT INTO memory_vectors (memory_rowid, chunk, namespace, model, dim,
                    embedding, span_start, span_end)
                SELECT rowid, 0, namespace, embedding_model, embedding_dim, embedding, 0,
                    char_length(content) FROM memories
                WHERE embedding IS NOT NULL AND embedding_model IS NOT NULL
                ON CONFLICT DO NOTHING;
                ALTER TABLE memories DROP COLUMN embedding, DROP COLUMN embedding_model,
                    DROP COLUMN embedding_dim;
            END IF;
            dims := ARRAY(SELECT DISTINCT dim FROM memory_vectors WHERE dim BETWEEN 1 AND 2000);
            FOREACH d IN ARRAY dims LOOP
                EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON memory_vectors USING hnsw '
                    '((embedding::vector(%s)) vector_cosine_ops) WHERE dim = %s',
                    'memory_vectors_hnsw_' || d, d, d);
            END LOOP;
        END $$""",
    ],
    # 11 (issue 15, "what is indexed"; SQLite's 14): metadata values
    # are full-text indexed only for the keys a Memory names (index_metadata, none by
    # default): existing rows' indexed metadata text is rewritten under that default (the
    # term-count triggers follow). Memory.reindex() indexes named keys. Re-runnable.
    [
        "UPDATE memories SET search_text = '' WHERE search_text <> ''",
    ],
    # 12 (issue 14): with pgvector >= 0.7 each dimension's HNSW index holds half-precision
    # copies of the vectors (memory_vectors_half_<dim>, up to 4,000 dimensions): half the size
    # (100k x 384-d: 195 -> 112 MB, so it stays in shared_buffers), a walk a third cheaper, the
    # same neighbours found; scores are still computed from the stored float4 vectors. The
    # float4 indexes go. On an older pgvector nothing changes. Re-runnable.
    [
        """DO $$
        DECLARE
            d integer;
            old text;
        BEGIN
            IF string_to_array((SELECT extversion FROM pg_extension WHERE extname = 'vector'),
                    '.')::integer[] < ARRAY[0, 7] THEN
                RETURN;
            END IF;
            -- lists first: no query over the table may be open while its indexes change
            FOREACH old IN ARRAY ARRAY(SELECT indexname FROM pg_indexes
                    WHERE schemaname = current_schema() AND tablename = 'memory_vectors'
                    AND indexname LIKE 'memory\\_vectors\\_hnsw\\_%') LOOP
                EXECUTE format('DROP INDEX %I', old);
            END LOOP;
            FOREACH d IN ARRAY ARRAY(SELECT DISTINCT dim FROM memory_vectors
                    WHERE dim BETWEEN 1 AND 4000) LOOP
                EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON memory_vectors USING hnsw '
                    '((embedding::halfvec(%s)) halfvec_cosine_ops) WHERE dim = %s',
                    'memory_vectors_half_' || d, d, d);
            END LOOP;
        END $$""",
    ],
]

LATEST_VERSION = len(MIGRATIONS)


def schema_version(conn: psycopg.Connection[tuple[object, ...]]) -> int | None:
    """The schema version of the current schema, ``None`` if engramdb never wrote there."""
    schema = current_schema(conn)
    row = conn.execute(
        "SELECT to_regclass(format('%%I.engramdb_schema', %s::text)) IS NOT NULL", (schema,)
    ).fetchone()
    if not row or not row[0]:
        return None
    found = conn.execute("SELECT version FROM engramdb_schema").fetchone()
    return int(str(found[0])) if found else 0


def current_schema(conn: psycopg.Connection[tuple[object, ...]]) -> str:
    """The schema engramdb's tables live in: the first existing one on ``search_path``."""
    row = conn.execute("SELECT current_schema()").fetchone()
    if not row or row[0] is None:
        path = conn.execute("SHOW search_path").fetchone()
        raise StoreUnavailableError(
            f"none of the schemas on search_path ({path[0] if path else '?'!s}) exists in this "
            "database; create the schema first (CREATE SCHEMA ...) or fix search_path in the URL"
        )
    return str(row[0])


def migrate(
    conn: psycopg.Connection[tuple[object, ...]], *, target: int = LATEST_VERSION, create: bool
) -> int:
    """Bring the current schema up to ``target``; returns the version. ``conn`` must be in
    autocommit mode: the migration is one transaction of its own."""
    version = schema_version(conn)
    if version is not None and version >= target:
        _check_not_newer(version)
        return version
    if version is None and not create:
        raise StoreUnavailableError(
            f"schema {current_schema(conn)!r} of this PostgreSQL database holds no engramdb "
            "data; check the URL, or open it with create=True to set it up"
        )
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        ensure_vector_extension(conn)
        conn.execute("CREATE TABLE IF NOT EXISTS engramdb_schema (version integer NOT NULL)")
        row = conn.execute("SELECT version FROM engramdb_schema FOR UPDATE").fetchone()
        if row is None:
            conn.execute("INSERT INTO engramdb_schema (version) VALUES (0)")
            version = 0
        else:
            version = int(str(row[0]))
        _check_not_newer(version)
        for step in range(version, target):
            for statement in MIGRATIONS[step]:
                conn.execute(statement)
        if target > version:
            conn.execute("UPDATE engramdb_schema SET version = %s", (target,))
    return max(version, target)


def _check_not_newer(version: int) -> None:
    if version > LATEST_VERSION:
        raise SchemaVersionError(
            f"this database has engramdb schema version {version}, newer than this engramdb "
            f"supports ({LATEST_VERSION}); upgrade engramdb to open it"
        )


def ensure_vector_extension(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Create pgvector in this database if it is missing, or explain what to do."""
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
        return
    available = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
    ).fetchone()
    if not available:
        raise StoreUnavailableError(
            "the pgvector extension is not installed on this PostgreSQL server; install it "
            "(https://github.com/pgvector/pgvector, or a server image that ships it such as "
            "pgvector/pgvector) and open the store again"
        )
    try:
        with conn.transaction():  # a savepoint: the error must not end the outer transaction
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.errors.InsufficientPrivilege:
        database = conn.execute("SELECT current_database()").fetchone()
        raise StoreUnavailableError(
            "the pgvector extension is available but not enabled in database "
            f"{database[0] if database else '?'!s}, and this user may not enable it; ask a "
            "superuser to run: CREATE EXTENSION vector;"
        ) from None
