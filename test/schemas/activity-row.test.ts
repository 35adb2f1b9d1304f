/**
 * The migrations' DDL stays literal SQL, and the stored row is defined once
 * (schemas/activity-row.ts): this is what keeps the two the same. A column
 * added to one and not the other fails here, not in production.
 */
import { describe, expect, it } from 'vitest'
import { ACTIVITY_ROW, postgresColumn } from '../../schemas/activity-row.ts'
import { clickhouseMigrations } from '../../schemas/clickhouse-schema.ts'
import { postgresMigrations } from '../../schemas/postgres-schema.ts'
import { isStep } from '../../schemas/migrations.ts'
import { sqlOf } from '../../schemas/migrations.ts'
import { PG_TYPE } from '../../exporters/postgres/json-insert.ts'

/** The column definitions of a CREATE TABLE: name and type, in order; indexes and keys left out. */
function columnsOf(ddl: string): { name: string; type: string }[] {
  const body = ddl.slice(ddl.indexOf('(') + 1, ddl.lastIndexOf(')'))
  return body
    .split('\n')
    .map((line) => line.replace(/--.*$/, '').trim().replace(/,$/, ''))
    .filter((line) => /^[a-z_]+\s+[A-Za-z]/.test(line) && !/^(INDEX|PRIMARY|CONSTRAINT)\b/i.test(line))
    .map((line) => {
      const [, name, type] = /^([a-z_]+)\s+(.+)$/.exec(line)!
      return { name: name!, type: type!.trim() }
    })
}

function createStatement(statements: readonly unknown[], table: string): string {
  const ddl = statements.map((s) => sqlOf(s as never)).find((s) => new RegExp(`CREATE TABLE IF NOT EXISTS (\\w+\\.)?${table}\\b`).test(s))
  if (!ddl) throw new Error(`no CREATE TABLE ${table} in the migrations`)
  return ddl.slice(0, ddl.lastIndexOf(')') + 1)
}

describe('the stored row and the DDL', () => {
  const clickhouse = columnsOf(createStatement(clickhouseMigrations.flatMap((m) => m.statements({ database: 'actline', ttlDays: 0 })), 'activities'))
  const postgres = columnsOf(createStatement(postgresMigrations.flatMap((m) => m.statements({})).filter((s) => !isStep(s)), 'audit_log'))

  it('ClickHouse activities has the row fields, in order', () => {
    expect(clickhouse.map((c) => c.name)).toEqual(ACTIVITY_ROW.map((f) => f.name))
  })

  it('ClickHouse makes Nullable exactly the fields the exporter writes NULL for', () => {
    const nullable = clickhouse.filter((c) => c.type.startsWith('Nullable(')).map((c) => c.name)
    expect(nullable).toEqual(ACTIVITY_ROW.filter((f) => f.kind === 'optional-number' || f.kind === 'ip').map((f) => f.name))
  })

  it('PostgreSQL audit_log has the row fields under their PostgreSQL names, in order, with the types the exporter casts to', () => {
    expect(postgres.map((c) => c.name)).toEqual(ACTIVITY_ROW.map(postgresColumn))
    expect(postgres.map((c) => c.type.split(/\s+NOT NULL|\s+DEFAULT/)[0]!.trim())).toEqual(ACTIVITY_ROW.map((f) => PG_TYPE[f.kind]))
  })

  it('reads the DDL it checks (the parser is not vacuous)', () => {
    expect(clickhouse).toHaveLength(21)
    expect(postgres.find((c) => c.name === 'occurred_at')?.type).toMatch(/^timestamptz/)
  })
})
