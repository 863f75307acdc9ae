/**
 * The one parser for a point in time given as text, shared by `GET /admin/stats?from=&to=` and
 * `meli-proxy stats --from/--to`: epoch milliseconds (digits only) or ISO-8601 date / date-time
 * text, checked against a strict pattern before Date.parse so its leniency ("-5" as May 2001,
 * "1,2" as 2001-01-02, February 30 as March 2) never lets a mistake through.
 */

/** The largest distance from the epoch a JavaScript Date can hold, in milliseconds. */
export const MAX_EPOCH_MS = 8.64e15;

const ISO =
  /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(?:Z|[+-](\d{2}):(\d{2}))?)?$/;

/** Epoch milliseconds of `text`, or undefined when it is neither epoch ms nor ISO-8601. */
export function parseInstant(text: string): number | undefined {
  if (/^\d+$/.test(text)) {
    const value = Number(text);
    return Number.isFinite(value) && value <= MAX_EPOCH_MS ? value : undefined;
  }
  const parts = ISO.exec(text);
  if (!parts) return undefined;
  const [year, month, day, hour = 0, minute = 0, second = 0, offsetHour = 0, offsetMinute = 0] = parts
    .slice(1)
    .map((part) => (part === undefined ? undefined : Number(part)));
  const leap = year! % 4 === 0 && (year! % 100 !== 0 || year! % 400 === 0);
  const daysInMonth = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month! - 1];
  if (daysInMonth === undefined || day! < 1 || day! > daysInMonth) return undefined;
  if (hour > 23 || minute > 59 || second > 59 || offsetHour > 23 || offsetMinute > 59) return undefined;
  const value = Date.parse(text);
  return Number.isFinite(value) && Math.abs(value) <= MAX_EPOCH_MS ? value : undefined;
}
