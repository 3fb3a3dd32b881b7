-- rowstream: capture DDL into the logical replication stream.
--
-- Logical decoding carries no DDL. These event triggers emit a *transactional* logical decoding
-- message (prefix `rowstream.ddl`) holding the command tag, the statement text and, for each
-- table the statement touched, its columns *after* the change. The message is decoded in order
-- with the data of the same transaction, so rowstream writes the DDL record before any row that
-- has the new shape.
--
-- Installed by `rowstream run` (source.capture_ddl = true, the default) or `rowstream check --fix`,
-- or by hand: psql -d <db> -f migrations/postgres/001_ddl_capture.sql (needs a superuser: event
-- triggers are superuser-only). Idempotent.
--
-- The functions are SECURITY DEFINER and swallow their own errors with a WARNING: capturing DDL
-- must never make a user's DDL fail.

CREATE SCHEMA IF NOT EXISTS rowstream;

CREATE OR REPLACE FUNCTION rowstream.table_columns(rel oid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT coalesce(jsonb_agg(jsonb_build_object('name', attname, 'type', atttypid::bigint, 'typmod', atttypmod)
                            ORDER BY attnum), '[]'::jsonb)
  FROM pg_attribute
  WHERE attrelid = rel AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
$$;

CREATE OR REPLACE FUNCTION rowstream.capture_ddl() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
  r record;
  rel oid;
  seen oid[] := '{}';
  objs jsonb := '[]'::jsonb;
BEGIN
  FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
    rel := NULL;
    IF r.classid = 'pg_class'::regclass THEN
      SELECT CASE WHEN c.relkind IN ('r', 'p') THEN c.oid
                  WHEN c.relkind IN ('i', 'I') THEN (SELECT i.indrelid FROM pg_index i WHERE i.indexrelid = c.oid)
             END
        INTO rel FROM pg_class c WHERE c.oid = r.objid;
    END IF;
    IF rel IS NOT NULL AND NOT rel = ANY (seen) THEN
      seen := seen || rel;
      objs := objs || jsonb_build_object(
        'oid', rel::bigint,
        'schema', (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel),
        'table', (SELECT c.relname FROM pg_class c WHERE c.oid = rel),
        'columns', rowstream.table_columns(rel));
    END IF;
  END LOOP;
  IF jsonb_array_length(objs) > 0 THEN
    PERFORM pg_logical_emit_message(true, 'rowstream.ddl',
      jsonb_build_object('tag', tg_tag, 'query', current_query(), 'objects', objs)::text);
  END IF;
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'rowstream DDL capture failed: %', SQLERRM;
END
$$;

CREATE OR REPLACE FUNCTION rowstream.capture_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
  objs jsonb;
BEGIN
  SELECT coalesce(jsonb_agg(jsonb_build_object('oid', objid::bigint, 'schema', schema_name, 'table', object_name)), '[]'::jsonb)
    INTO objs
    FROM pg_event_trigger_dropped_objects()
   WHERE object_type = 'table' AND original;
  IF jsonb_array_length(objs) > 0 THEN
    PERFORM pg_logical_emit_message(true, 'rowstream.ddl',
      jsonb_build_object('tag', tg_tag, 'query', current_query(), 'objects', objs)::text);
  END IF;
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'rowstream DDL capture failed: %', SQLERRM;
END
$$;

DROP EVENT TRIGGER IF EXISTS rowstream_ddl;
CREATE EVENT TRIGGER rowstream_ddl ON ddl_command_end EXECUTE FUNCTION rowstream.capture_ddl();
DROP EVENT TRIGGER IF EXISTS rowstream_drop;
CREATE EVENT TRIGGER rowstream_drop ON sql_drop EXECUTE FUNCTION rowstream.capture_drop();

-- rowstream re-runs this file when the version below differs from the installed one.
COMMENT ON FUNCTION rowstream.capture_ddl() IS 'rowstream ddl capture v3';
