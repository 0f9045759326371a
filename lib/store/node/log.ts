// One structured, greppable line per meaningful event: `level=info event=leader_changed term=3 leader=2`.
// Values with spaces or quotes are JSON-quoted. Lines go to stderr so stdout stays for output
// people pipe (the generated token, ctl results).

export type LogLevel = "debug" | "info" | "warn" | "error";
export type EventLogger = (
  level: LogLevel,
  event: string,
  fields?: Record<string, unknown>,
) => void;

function formatValue(v: unknown): string {
  if (v instanceof Error) v = v.message;
  const s = typeof v === "string" ? v : JSON.stringify(v) ?? String(v);
  return /^[A-Za-z0-9_.:\/,@+\-\[\]]*$/.test(s) && s !== "" ? s : JSON.stringify(s);
}

export function formatEvent(
  level: LogLevel,
  event: string,
  fields: Record<string, unknown> = {},
): string {
  let line = `level=${level} event=${event}`;
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    line += ` ${k}=${formatValue(v)}`;
  }
  return line;
}

/** A logger writing to stderr, each line prefixed with an ISO timestamp and the member's name. */
export function stderrLogger(name?: string, minLevel: LogLevel = "info"): EventLogger {
  const order: LogLevel[] = ["debug", "info", "warn", "error"];
  const min = order.indexOf(minLevel);
  return (level, event, fields = {}) => {
    if (order.indexOf(level) < min) return;
    const line = `ts=${new Date().toISOString()} ` +
      formatEvent(level, event, name ? { member: name, ...fields } : fields);
    console.error(line);
  };
}

export const silentLogger: EventLogger = () => {};
