/**
 * `GET /v1/key`: a client asks about its own key with its own secret: its
 * allowlists, limits with their consumption and reset times, and today's
 * and this month's usage and cost (`USAGE_TZ` calendar). Never another
 * key's data, never the secret.
 */
import { keyFields, limitsView, standingsOf } from "../admin/key_view.ts";
import { periodStats } from "../admin/reports.ts";
import type { ClientHandler } from "./call.ts";
import { jsonResponse } from "./json.ts";

/** `GET /v1/key` */
export const ownKey: ClientHandler = async (_req, ctx, call) => {
  const k = call.key;
  const now = ctx.clock.now();
  const today = ctx.buckets.today(now);
  const src = { usage: ctx.usageReader, limits: ctx.limits, now };
  const [month, standings] = await Promise.all([
    ctx.usageReader.byKey(k.id, `${today.slice(0, 7)}-01`, today),
    standingsOf(src, k),
  ]);
  const { key: _masked, source: _source, ...fields } = keyFields(k, now);
  return jsonResponse(200, {
    ...fields,
    limits: limitsView(standings),
    time_zone: ctx.buckets.timeZone,
    usage: {
      today: { date: today, ...periodStats(month.filter((r) => r.day === today)) },
      month: { month: today.slice(0, 7), ...periodStats(month) },
    },
  });
};
