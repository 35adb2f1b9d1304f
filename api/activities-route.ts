/**
 * GET /api/v1/activities: filtered raw activities, newest first, one keyset
 * page at a time; GET /api/v1/activities/count: how many the same filters
 * match, for a list that says what it holds before it is scrolled.
 */
import type { FastifyPluginAsync } from 'fastify'
import { z } from 'zod'
import { ActivityRow, countRows, decodeCursor, encodeCursor, PageQuery, pageBody, readPage } from './activity-pages.ts'
import type { ApiContext } from './context.ts'
import { route } from './route.ts'

export const activitiesRoute: FastifyPluginAsync<ApiContext> = async (app, ctx) => {
  route(
    app,
    {
      url: '/activities',
      scope: 'read',
      query: PageQuery,
      response: pageBody(ActivityRow),
      summary: 'List activities, newest first',
      description:
        'Keyset pagination: pass `next_cursor` back as `cursor`. Pages stay stable while rows are inserted: no row is returned twice, none is skipped.',
    },
    async ({ limit, cursor, ...filters }) => {
      const page = await readPage(ctx.clickhouse, filters, limit, cursor === undefined ? undefined : decodeCursor(cursor))
      return { data: page.rows, next_cursor: page.next ? encodeCursor(page.next) : null }
    },
  )
  route(
    app,
    {
      url: '/activities/count',
      scope: 'read',
      query: PageQuery.omit({ limit: true, cursor: true }),
      response: z.object({ count: z.number().int().meta({ description: 'activities matching the filters, exactly' }) }).strict(),
      summary: 'Count the activities the same filters list',
    },
    async (filters) => ({ count: await countRows(ctx.clickhouse, filters) }),
  )
}
