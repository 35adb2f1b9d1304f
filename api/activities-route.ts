/** GET /api/v1/activities: filtered raw activities, newest first, one keyset page at a time. */
import type { FastifyPluginAsync } from 'fastify'
import { z } from 'zod'
import { ActivityRow, decodeCursor, encodeCursor, readPage } from './activity-pages.ts'
import type { ApiContext } from './context.ts'
import { DimensionFilters, RowFilters, TimeRange } from './query-params.ts'
import { route } from './route.ts'

export const ActivitiesQuery = TimeRange.extend(DimensionFilters.shape)
  .extend(RowFilters.shape)
  .extend({
    limit: z.coerce.number().int().min(1).max(1000).default(100).meta({ description: 'rows per page, at most 1000' }),
    cursor: z.string().max(200).optional().meta({ description: 'next_cursor of the previous page' }),
  })
  .strict()

export const ActivitiesResponse = z
  .object({
    data: z.array(ActivityRow),
    next_cursor: z.string().nullable().meta({ description: 'pass as cursor for the next page; null on the last' }),
  })
  .strict()

export const activitiesRoute: FastifyPluginAsync<ApiContext> = async (app, ctx) => {
  route(
    app,
    {
      url: '/activities',
      scope: 'read',
      query: ActivitiesQuery,
      response: ActivitiesResponse,
      summary: 'List activities, newest first',
      description:
        'Keyset pagination: pass `next_cursor` back as `cursor`. Pages stay stable while rows are inserted: no row is returned twice, none is skipped.',
    },
    async ({ limit, cursor, ...filters }) => {
      const page = await readPage(ctx.clickhouse, filters, limit, cursor === undefined ? undefined : decodeCursor(cursor))
      return { data: page.rows, next_cursor: page.next ? encodeCursor(page.next) : null }
    },
  )
}
