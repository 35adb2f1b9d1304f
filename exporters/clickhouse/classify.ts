/**
 * ClickHouse's error codes, for the shared classifier (../classify.ts): the
 * codes that say the rows are bad, and those that say the server is unwell.
 * Any other code is unknown: retried for a bounded time, then split.
 */
import type { StoreClassifier } from '../classify.ts'

/** ClickHouse codes that say "these rows are bad": the same rows fail the same way forever. */
const CLICKHOUSE_DATA = new Set([
  '6', // CANNOT_PARSE_TEXT
  '25', // CANNOT_PARSE_ESCAPE_SEQUENCE (a lone surrogate's \ud800)
  '26', // CANNOT_PARSE_QUOTED_STRING
  '27', // CANNOT_PARSE_INPUT_ASSERTION_FAILED
  '38', // CANNOT_PARSE_DATE
  '41', // CANNOT_PARSE_DATETIME
  '53', // TYPE_MISMATCH
  '69', // ARGUMENT_OUT_OF_BOUND
  '70', // CANNOT_CONVERT_TYPE
  '72', // CANNOT_PARSE_NUMBER
  '117', // INCORRECT_DATA
  '130', // CANNOT_READ_ARRAY_FROM_TEXT
  '131', // TOO_LARGE_STRING_SIZE
  '321', // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
  '407', // DECIMAL_OVERFLOW
  '441', // CANNOT_PARSE_UUID
  '469', // VIOLATED_CONSTRAINT (a CHECK constraint refused the row)
  '676', // CANNOT_PARSE_IPV6
  '677', // CANNOT_PARSE_IPV4
  '691', // UNKNOWN_ELEMENT_OF_ENUM
])

/** ClickHouse codes that say "the store is unwell": retried until it is back. */
const CLICKHOUSE_OUTAGE = new Set([
  '60', // UNKNOWN_TABLE (detached for maintenance; it returns)
  '81', // UNKNOWN_DATABASE
  '159', // TIMEOUT_EXCEEDED
  '164', // READONLY
  '202', // TOO_MANY_SIMULTANEOUS_QUERIES
  '203', // NO_FREE_CONNECTION
  '209', // SOCKET_TIMEOUT
  '210', // NETWORK_ERROR
  '236', // ABORTED
  '241', // MEMORY_LIMIT_EXCEEDED
  '242', // TABLE_IS_READ_ONLY
  '243', // NOT_ENOUGH_SPACE
  '252', // TOO_MANY_PARTS
  '285', // TOO_FEW_LIVE_REPLICAS
  '319', // UNKNOWN_STATUS_OF_INSERT
  '394', // QUERY_WAS_CANCELLED
  '425', // SYSTEM_ERROR
  '497', // ACCESS_DENIED
  '516', // AUTHENTICATION_FAILED
  '999', // KEEPER_EXCEPTION
  '1000', // POCO_EXCEPTION (network)
])

export const classifyClickHouse: StoreClassifier = (error, code) => {
  if (error.constructor.name !== 'ClickHouseError' || !code) return undefined
  if (CLICKHOUSE_DATA.has(code)) return 'data'
  return CLICKHOUSE_OUTAGE.has(code) ? 'outage' : 'unknown'
}
