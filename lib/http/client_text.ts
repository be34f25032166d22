/**
 * Client input quoted back in error messages and log lines: at most
 * {@link MAX_QUOTED} characters, so a huge or hostile string costs nothing
 * to echo.
 */

/** Most characters of client input quoted in a message. */
const MAX_QUOTED = 200;

/** `"text"`, cut to {@link MAX_QUOTED} characters with a note when longer. */
export function quote(text: string): string {
  if (text.length <= MAX_QUOTED) return JSON.stringify(text);
  return `${JSON.stringify(text.slice(0, MAX_QUOTED))}... (${text.length} characters)`;
}
