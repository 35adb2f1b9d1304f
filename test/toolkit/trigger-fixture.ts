/**
 * A database that audits itself with triggers of every kind the scan
 * tells apart, and the kind each must be read as. Business triggers must
 * never be proposed for removal.
 */
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import pg from 'pg'
import type { Kind } from '../../toolkit/triggers/classify.ts'
import { startPostgresTarget, type PostgresTarget } from '../helpers/postgres-target.ts'

const BIN = join(import.meta.dirname, '../../bin/actline.js')

export const FIXTURE_SQL = `
CREATE TABLE users (id serial PRIMARY KEY, email text, updated_at timestamptz);
CREATE TABLE products (id serial PRIMARY KEY, stock int NOT NULL DEFAULT 100);
CREATE TABLE orders (id serial PRIMARY KEY, user_id int REFERENCES users(id), product_id int REFERENCES products(id), total numeric, updated_at timestamptz);
CREATE TABLE audit_logs (id bigserial PRIMARY KEY, table_name text, operation text, row_id text, old_data jsonb, new_data jsonb, changed_at timestamptz DEFAULT now());
CREATE TABLE activities (id bigserial PRIMARY KEY, action text, entity_type text, entity_id text, actor text, created_at timestamptz DEFAULT now());
CREATE TABLE users_history (user_id int, email text, old_email text, changed_at timestamptz);
CREATE TABLE events (id int, at timestamptz) PARTITION BY RANGE (at);
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');

CREATE FUNCTION audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- One wide table for every audited table.
  IF TG_OP = 'DELETE' THEN
    INSERT INTO audit_logs (table_name, operation, row_id, old_data) VALUES (TG_TABLE_NAME, TG_OP, OLD.id::text, to_jsonb(OLD));
    RETURN OLD;
  ELSE
    INSERT INTO audit_logs (table_name, operation, row_id, old_data, new_data)
    VALUES (TG_TABLE_NAME, TG_OP, NEW.id::text, CASE WHEN TG_OP = 'UPDATE' THEN to_jsonb(OLD) END, to_jsonb(NEW));
    RETURN NEW;
  END IF;
END $$;

CREATE FUNCTION users_history_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO users_history (user_id, email, old_email, changed_at) VALUES (NEW.id, NEW.email, OLD.email, now());
  RETURN NEW;
END $$;

CREATE FUNCTION log_change(tbl text, op text, data jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO audit_logs (table_name, operation, new_data) VALUES (tbl, op, data);
END $$;

CREATE FUNCTION audit_via_helper() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM log_change(TG_TABLE_NAME, TG_OP, to_jsonb(NEW));
  RETURN NEW;
END $$;

CREATE FUNCTION record_activity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO activities (action, entity_type, entity_id, actor)
  VALUES (lower(TG_OP), TG_TABLE_NAME, NEW.id::text, current_setting('app.user', true));
  RETURN NEW;
END $$;

CREATE FUNCTION notify_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('orders', row_to_json(NEW)::text);
  RETURN NEW;
END $$;

CREATE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END $$;

CREATE FUNCTION add_tax() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  NEW.total := NEW.total * 1.2;
  RETURN NEW;
END $$;

CREATE FUNCTION take_stock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE products SET stock = stock - 1 WHERE id = NEW.product_id;
  RETURN NEW;
END $$;

CREATE FUNCTION check_total() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.total < 0 THEN
    RAISE EXCEPTION 'total must not be negative: %', NEW.total;
  END IF;
  RETURN NEW;
END $$;

CREATE FUNCTION audit_and_stock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO audit_logs (table_name, operation, new_data) VALUES (TG_TABLE_NAME, TG_OP, to_jsonb(NEW));
  UPDATE products SET stock = stock - 1 WHERE id = NEW.product_id;
  RETURN NEW;
END $$;

CREATE FUNCTION audit_dynamic() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('INSERT INTO %I (operation) VALUES ($1)', 'audit_logs') USING TG_OP;
  RETURN NEW;
END $$;

CREATE TRIGGER users_audit AFTER INSERT OR UPDATE OR DELETE ON users FOR EACH ROW EXECUTE FUNCTION audit_row();
CREATE TRIGGER users_history AFTER UPDATE ON users FOR EACH ROW EXECUTE FUNCTION users_history_row();
CREATE TRIGGER users_touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
ALTER TABLE users DISABLE TRIGGER users_touch;
CREATE TRIGGER orders_audit_helper AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION audit_via_helper();
CREATE TRIGGER orders_activity AFTER INSERT OR UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION record_activity();
CREATE TRIGGER orders_notify AFTER UPDATE ON orders FOR EACH ROW WHEN (OLD.total IS DISTINCT FROM NEW.total) EXECUTE FUNCTION notify_order();
CREATE TRIGGER orders_tax BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION add_tax();
CREATE TRIGGER orders_stock AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION take_stock();
CREATE TRIGGER orders_check BEFORE INSERT OR UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION check_total();
CREATE TRIGGER orders_audit_stock AFTER UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION audit_and_stock();
CREATE TRIGGER orders_audit_dynamic AFTER DELETE ON orders FOR EACH ROW EXECUTE FUNCTION audit_dynamic();
CREATE CONSTRAINT TRIGGER orders_audit_deferred AFTER INSERT ON orders DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_row();
CREATE TRIGGER products_touch BEFORE UPDATE ON products FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER events_audit AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION audit_row();
CREATE TRIGGER orders_truncate AFTER TRUNCATE ON orders FOR EACH STATEMENT EXECUTE FUNCTION notify_order();
`

/** trigger name -> the kind the scan must read. */
export const EXPECTED: Record<string, Kind> = {
  users_audit: 'audit',
  users_history: 'audit',
  users_touch: 'timestamp',
  orders_audit_helper: 'audit',
  orders_activity: 'activity',
  orders_notify: 'notify',
  orders_tax: 'business',
  orders_stock: 'business',
  orders_check: 'business',
  orders_audit_stock: 'business',
  orders_audit_dynamic: 'business',
  orders_audit_deferred: 'audit',
  products_touch: 'timestamp',
  events_audit: 'audit',
  orders_truncate: 'notify',
}

/** `actline triggers ...` as a process, asynchronously: PGlite is served by the test's process, which must keep running meanwhile. */
export function triggersCli(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [BIN, 'triggers', ...args], { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ status: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  )
}

/** A database (PGlite, or a scratch one on the server) holding the fixture, and a client on it. */
export async function openFixture(dataDir: string, kind: 'pglite' | 'server'): Promise<{ target: PostgresTarget; client: pg.Client; db: string }> {
  const target = await startPostgresTarget(dataDir, kind)
  const db = target.url.toString()
  const client = new pg.Client({ connectionString: db })
  await client.connect()
  await client.query(FIXTURE_SQL)
  return { target, client, db }
}
