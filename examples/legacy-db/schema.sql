-- A product database that audits itself with triggers, in the shape teams
-- describe: 18 tables and 64 triggers. Every write is copied as to_jsonb
-- rows into one wide audit_logs table; many tables also write an activity
-- row, send a pg_notify, and touch updated_at; some have a second, older
-- audit trigger nobody removed. Eight triggers are the application's own
-- behaviour (stock, counters, validations, computed columns) and must
-- survive the migration. expected.json lists the kind of each trigger.
--
--   psql "$DB" -f examples/legacy-db/schema.sql

-- Where the triggers write ------------------------------------------------
CREATE TABLE audit_logs (
  id bigserial PRIMARY KEY,
  table_name text NOT NULL,
  operation text NOT NULL,
  row_id text,
  old_data jsonb,
  new_data jsonb,
  changed_by text,
  changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_logs_changed_at ON audit_logs (changed_at);
CREATE TABLE activity_events (id bigserial PRIMARY KEY, action text NOT NULL, entity_type text, entity_id text, actor text, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE change_history (id bigserial PRIMARY KEY, table_name text, row_id text, old_row json, new_row json, changed_at timestamptz NOT NULL DEFAULT now());

-- The product -----------------------------------------------------------
CREATE TABLE organizations (id serial PRIMARY KEY, name text NOT NULL, member_count int NOT NULL DEFAULT 0, updated_at timestamptz);
CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL UNIQUE, name text, last_login_at timestamptz, updated_at timestamptz);
CREATE TABLE user_profiles (user_id int PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE, bio text, locale text, updated_at timestamptz);
CREATE TABLE sessions (id bigserial PRIMARY KEY, user_id int NOT NULL REFERENCES users(id) ON DELETE CASCADE, ip inet, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE api_tokens (id serial PRIMARY KEY, user_id int NOT NULL REFERENCES users(id) ON DELETE CASCADE, token_hash text NOT NULL, scope text NOT NULL, revoked_at timestamptz);
CREATE TABLE memberships (id serial PRIMARY KEY, organization_id int NOT NULL REFERENCES organizations(id), user_id int NOT NULL REFERENCES users(id) ON DELETE CASCADE, role text NOT NULL, updated_at timestamptz);
CREATE TABLE projects (id serial PRIMARY KEY, organization_id int NOT NULL REFERENCES organizations(id), name text NOT NULL, slug text, available_units int NOT NULL DEFAULT 1000, updated_at timestamptz);
CREATE TABLE project_members (project_id int REFERENCES projects(id), user_id int REFERENCES users(id) ON DELETE CASCADE, role text, PRIMARY KEY (project_id, user_id));
CREATE TABLE investors (id serial PRIMARY KEY, user_id int REFERENCES users(id), kyc_status text NOT NULL DEFAULT 'pending', updated_at timestamptz);
CREATE TABLE investments (id serial PRIMARY KEY, investor_id int NOT NULL REFERENCES investors(id), project_id int NOT NULL REFERENCES projects(id), amount_cents bigint NOT NULL, updated_at timestamptz);
CREATE TABLE plans (id serial PRIMARY KEY, name text NOT NULL, price_cents int NOT NULL, updated_at timestamptz);
CREATE TABLE subscriptions (id serial PRIMARY KEY, organization_id int NOT NULL REFERENCES organizations(id), plan_id int NOT NULL REFERENCES plans(id), started_at timestamptz NOT NULL DEFAULT now(), current_period_end timestamptz, status text NOT NULL DEFAULT 'active', updated_at timestamptz);
CREATE TABLE invoices (id serial PRIMARY KEY, subscription_id int NOT NULL REFERENCES subscriptions(id), amount_cents int NOT NULL, status text NOT NULL DEFAULT 'open', updated_at timestamptz);
CREATE TABLE payments (id serial PRIMARY KEY, invoice_id int NOT NULL REFERENCES invoices(id), amount_cents int NOT NULL, paid_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE distributions (id serial PRIMARY KEY, project_id int NOT NULL REFERENCES projects(id), amount_cents bigint NOT NULL, status text NOT NULL DEFAULT 'draft', updated_at timestamptz);
CREATE TABLE approvals (id serial PRIMARY KEY, distribution_id int NOT NULL REFERENCES distributions(id), requested_by int NOT NULL REFERENCES users(id), approver_id int REFERENCES users(id), status text NOT NULL DEFAULT 'pending', updated_at timestamptz);
CREATE TABLE products (id serial PRIMARY KEY, name text NOT NULL, stock int NOT NULL CHECK (stock >= 0), updated_at timestamptz);
CREATE TABLE orders (id serial PRIMARY KEY, user_id int REFERENCES users(id), product_id int NOT NULL REFERENCES products(id), quantity int NOT NULL, updated_at timestamptz);

-- The audit triggers' functions -------------------------------------------
CREATE FUNCTION audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- Every audited table, one wide table; who did it comes from SET LOCAL app.user_id.
  IF TG_OP = 'DELETE' THEN
    INSERT INTO audit_logs (table_name, operation, row_id, old_data, changed_by)
    VALUES (TG_TABLE_NAME, TG_OP, to_jsonb(OLD)->>'id', to_jsonb(OLD), current_setting('app.user_id', true));
    RETURN OLD;
  END IF;
  INSERT INTO audit_logs (table_name, operation, row_id, old_data, new_data, changed_by)
  VALUES (TG_TABLE_NAME, TG_OP, to_jsonb(NEW)->>'id', CASE WHEN TG_OP = 'UPDATE' THEN to_jsonb(OLD) END, to_jsonb(NEW), current_setting('app.user_id', true));
  RETURN NEW;
END $$;

-- The first audit, from before audit_logs: still firing.
CREATE FUNCTION history_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO change_history (table_name, row_id, old_row) VALUES (TG_TABLE_NAME, OLD.id::text, row_to_json(OLD));
    RETURN OLD;
  END IF;
  INSERT INTO change_history (table_name, row_id, old_row, new_row) VALUES (TG_TABLE_NAME, NEW.id::text, row_to_json(OLD), row_to_json(NEW));
  RETURN NEW;
END $$;

CREATE FUNCTION log_change(tbl text, op text, id text, data jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO audit_logs (table_name, operation, row_id, new_data, changed_by) VALUES (tbl, op, id, data, current_setting('app.user_id', true));
END $$;

-- A billing team's own copy, through a helper.
CREATE FUNCTION audit_via_helper() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM log_change(TG_TABLE_NAME, TG_OP, NEW.id::text, to_jsonb(NEW));
  RETURN NEW;
END $$;

CREATE FUNCTION record_activity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO activity_events (action, entity_type, entity_id, actor) VALUES (TG_TABLE_NAME || '.deleted', TG_TABLE_NAME, OLD.id::text, current_setting('app.user_id', true));
    RETURN OLD;
  END IF;
  INSERT INTO activity_events (action, entity_type, entity_id, actor)
  VALUES (TG_TABLE_NAME || CASE TG_OP WHEN 'INSERT' THEN '.created' ELSE '.updated' END, TG_TABLE_NAME, NEW.id::text, current_setting('app.user_id', true));
  RETURN NEW;
END $$;

CREATE FUNCTION notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('changes', json_build_object('table', TG_TABLE_NAME, 'op', TG_OP, 'id', NEW.id)::text);
  RETURN NEW;
END $$;

CREATE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END $$;

-- The application's own behaviour: these stay -------------------------------
CREATE FUNCTION take_stock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE products SET stock = stock - NEW.quantity WHERE id = NEW.product_id;
  RETURN NEW;
END $$;

CREATE FUNCTION count_members() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE organizations SET member_count = member_count + 1 WHERE id = NEW.organization_id;
  RETURN NEW;
END $$;

CREATE FUNCTION project_slug() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.slug := lower(regexp_replace(NEW.name, '[^A-Za-z0-9]+', '-', 'g'));
  RETURN NEW;
END $$;

CREATE FUNCTION check_investment() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.amount_cents <= 0 THEN
    RAISE EXCEPTION 'an investment must be positive, got %', NEW.amount_cents;
  END IF;
  RETURN NEW;
END $$;

CREATE FUNCTION subscription_period() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.current_period_end := NEW.started_at + interval '1 month';
  RETURN NEW;
END $$;

CREATE FUNCTION check_invoice() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.amount_cents < 0 THEN
    RAISE EXCEPTION 'an invoice must not be negative, got %', NEW.amount_cents;
  END IF;
  RETURN NEW;
END $$;

CREATE FUNCTION settle_invoice() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE invoices SET status = 'paid' WHERE id = NEW.invoice_id;
  RETURN NEW;
END $$;

CREATE FUNCTION check_approval() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.approver_id = NEW.requested_by THEN
    RAISE EXCEPTION 'a distribution cannot be approved by who requested it';
  END IF;
  RETURN NEW;
END $$;

-- 64 triggers on 18 tables --------------------------------------------------
CREATE TRIGGER organizations_audit AFTER INSERT OR UPDATE OR DELETE ON organizations FOR EACH ROW EXECUTE FUNCTION audit_row();
CREATE TRIGGER organizations_activity AFTER INSERT OR UPDATE ON organizations FOR EACH ROW EXECUTE FUNCTION record_activity();
CREATE TRIGGER organizations_touch BEFORE UPDATE ON organizations FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

CREATE TRIGGER users_audit AFTER INSERT OR UPDATE OR DELETE ON users FOR EACH ROW EXECUTE FUNCTION audit_row();
CREATE TRIGGER users_audit_history AFTER UPDATE OR DELETE ON users FOR EACH ROW EXECUTE FUNCTION history_row();
CREATE TRIGGER users_activity AFTER INSERT OR UPDATE OR DELETE ON users FOR EACH ROW EXECUTE FUNCTION record_activity();
CREATE TRIGGER users_notify AFTER INSERT OR UPDATE ON users FOR EACH ROW EXECUTE FUNCTION notify_change();
CREATE TRIGGER users_touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

CREATE TRIGGER user_profiles_audit AFTER INSERT OR UPDATE OR DELETE ON user_profiles FOR EACH ROW EXECUTE FUNCTION audit_row();
CREATE TRIGGER user_profiles_touch BEFORE INSERT OR UPDATE ON user_profiles FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

CREATE TRIGGER sessions_audit AFTER INSERT OR DELETE ON sessions FOR EACH ROW EXECUTE FUNCTION audit_row();

CREATE TRIGGER api_tokens_audit AFTER INSERT OR UPDATE OR DELETE ON api_tokens FOR EACH ROW EXECUTE FUNCTION audit_row();
CREATE TRIGGER api_tokens_audit_legacy AFTER INSERT OR UPDATE ON api_tokens FOR EACH ROW EXECUTE FUNCTION audit_via_helper();
CREATE TRIGGER api_tokens_activity AFTER INSERT OR UPDATE OR DELETE ON api_tokens FOR EACH ROW EXECUTE FUNCTION record_activity();
CREATE TRIGGER api_tokens_notify AFTER INSERT ON api_tokens FOR EACH ROW EXECUTE FUNCTION notify_change();

CREATE TRIGGER memberships_audit AFTER INSERT OR UPDATE OR DELETE ON memberships FOR EACH ROW EXECUTE FUNCTION audit_row();
CREATE TRIGGER memberships_activity AFTER INSERT OR UPDATE ON memberships FOR EACH ROW EXECUTE FUNCTION record_activity();
CREATE TRIGGER memberships_touch BEFORE UPDATE ON memberships FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER memberships_count AFTER INSERT ON memberships FOR EACH ROW EXECUTE FUNCTION count_members();

CREATE TRIGGER projects_audit AFTER INSERT OR UPDATE OR DELETE ON projects FOR EACH ROW EXECUTE FUNCTION audit_row();
CREATE TRIGGER projects_audit_history AFTER UPDATE OR DELETE ON projects FOR EACH ROW EXECUTE FUNCTION history_row();
CREATE TRIGGER projects_activity AFTER INSERT OR UPDATE ON projects FOR EACH ROW EXECUTE FUNCTION record_activity();
CREATE TRIGGER projects_touch BEFORE UPDATE ON projects FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER projects_slug BEFORE INSERT OR UPDATE OF name ON projects FOR EACH ROW EXECUTE FUNCTION project_slug();

CREATE TRIGGER project_members_audit AFTER INSERT OR UPDATE OR DELETE ON project_members FOR EACH ROW EXECUTE FUNCTION audit_row();

CREATE TRIGGER investors_audit AFTER INSERT OR UPDATE OR DELETE ON investors FOR EACH ROW EXECUTE FUNCTION audit_row();
CREATE TRIGGER investors_activity AFTER INSERT OR UPDATE ON investors FOR EACH ROW EXECUTE FUNCTION record_activity();
CREATE TRIGGER investors_touch BEFORE UPDATE ON investors FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

CREATE TRIGGER investments_audit AFTER INSERT OR UPDATE OR DELETE ON investments FOR EACH ROW EXECUTE FUNCTION audit_row();
CREATE TRIGGER investments_audit_legacy AFTER INSERT OR UPDATE ON investments FOR EACH ROW EXECUTE FUNCTION audit_via_helper();
CREATE TRIGGER investments_activity AFTER INSERT OR UPDATE ON investments FOR EACH ROW EXECUTE FUNCTION record_activity();
CREATE TRIGGER investments_notify AFTER INSERT ON investments FOR EACH ROW EXECUTE FUNCTION notify_change();
CREATE TRIGGER investments_touch BEFORE UPDATE ON investments FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER investments_check BEFORE INSERT OR UPDATE ON investments FOR EACH ROW EXECUTE FUNCTION check_investment();

CREATE TRIGGER plans_audit AFTER INSERT OR UPDATE OR DELETE ON plans FOR EACH ROW EXECUTE FUNCTION audit_row();
CREATE TRIGGER plans_touch BEFORE UPDATE ON plans FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

CREATE TRIGGER subscriptions_audit AFTER INSERT OR UPDATE OR DELETE ON subscriptions FOR EACH ROW EXECUTE FUNCTION audit_row();
CREATE TRIGGER subscriptions_audit_history AFTER UPDATE ON subscriptions FOR EACH ROW EXECUTE FUNCTION history_row();
CREATE TRIGGER subscriptions_activity AFTER INSERT OR UPDATE ON subscriptions FOR EACH ROW EXECUTE FUNCTION record_activity();
CREATE TRIGGER subscriptions_notify AFTER INSERT OR UPDATE ON subscriptions FOR EACH ROW EXECUTE FUNCTION notify_change();
CREATE TRIGGER subscriptions_touch BEFORE UPDATE ON subscriptions FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER subscriptions_period BEFORE INSERT ON subscriptions FOR EACH ROW EXECUTE FUNCTION subscription_period();

CREATE TRIGGER invoices_audit AFTER INSERT OR UPDATE OR DELETE ON invoices FOR EACH ROW EXECUTE FUNCTION audit_row();
CREATE TRIGGER invoices_activity AFTER INSERT OR UPDATE ON invoices FOR EACH ROW EXECUTE FUNCTION record_activity();
CREATE TRIGGER invoices_touch BEFORE UPDATE ON invoices FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER invoices_check BEFORE INSERT OR UPDATE ON invoices FOR EACH ROW EXECUTE FUNCTION check_invoice();

CREATE TRIGGER payments_audit AFTER INSERT OR UPDATE OR DELETE ON payments FOR EACH ROW EXECUTE FUNCTION audit_row();
CREATE TRIGGER payments_audit_legacy AFTER INSERT ON payments FOR EACH ROW EXECUTE FUNCTION audit_via_helper();
CREATE TRIGGER payments_activity AFTER INSERT ON payments FOR EACH ROW EXECUTE FUNCTION record_activity();
CREATE TRIGGER payments_notify AFTER INSERT ON payments FOR EACH ROW EXECUTE FUNCTION notify_change();
CREATE TRIGGER payments_settle AFTER INSERT ON payments FOR EACH ROW EXECUTE FUNCTION settle_invoice();

CREATE TRIGGER distributions_audit AFTER INSERT OR UPDATE OR DELETE ON distributions FOR EACH ROW EXECUTE FUNCTION audit_row();
CREATE TRIGGER distributions_activity AFTER INSERT OR UPDATE ON distributions FOR EACH ROW EXECUTE FUNCTION record_activity();
CREATE TRIGGER distributions_touch BEFORE UPDATE ON distributions FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

CREATE TRIGGER approvals_audit AFTER INSERT OR UPDATE OR DELETE ON approvals FOR EACH ROW EXECUTE FUNCTION audit_row();
-- Deferred to the commit, so a rolled-back approval leaves no event.
CREATE CONSTRAINT TRIGGER approvals_activity AFTER INSERT OR UPDATE ON approvals DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION record_activity();
CREATE TRIGGER approvals_notify AFTER UPDATE ON approvals FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION notify_change();
CREATE TRIGGER approvals_touch BEFORE UPDATE ON approvals FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER approvals_check BEFORE INSERT OR UPDATE ON approvals FOR EACH ROW EXECUTE FUNCTION check_approval();

CREATE TRIGGER products_audit AFTER INSERT OR UPDATE OR DELETE ON products FOR EACH ROW EXECUTE FUNCTION audit_row();
CREATE TRIGGER products_touch BEFORE UPDATE ON products FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

CREATE TRIGGER orders_audit AFTER INSERT OR UPDATE OR DELETE ON orders FOR EACH ROW EXECUTE FUNCTION audit_row();
CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER orders_stock AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION take_stock();
