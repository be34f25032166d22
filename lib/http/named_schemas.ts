/**
 * The registry of zod schemas that get a name in `GET /openapi.json`. The
 * admin schemas and each API format's error and list shapes register here;
 * the OpenAPI document is generated from it, so it cannot drift.
 */
import { z } from "zod";

/** Schemas that get a name in the OpenAPI document. */
export const schemaRegistry = z.registry<{ id: string }>();

/** Registers `schema` under `id` and returns it. */
export function named<T extends z.ZodType>(id: string, schema: T): T {
  schemaRegistry.add(schema, { id });
  return schema;
}
