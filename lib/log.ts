// The one structured log format of every twill process: one greppable line per meaningful
// event on stderr (stdout stays for output people pipe: the generated token, ctl results),
//   ts=2026-01-02T03:04:05.678Z level=info event=lease_acquired subnet=10.5.3.0/24 node=n1
// Values with spaces, quotes or `=` are JSON-quoted; fields set to undefined are left out; an
// Error is logged as its message. The subsystem's context fields (the agent's `node=`, the store
// member's `member=`) come last, after the event's own fields (an event's own field of the same
// name wins).

export type LogLevel = "debug" | "info" | "warn" | "error";
export type Logger = (level: LogLevel, event: string, fields?: object) => void;

const LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

function formatValue(v: unknown): string {
  if (v instanceof Error) v = v.message;
  const s = typeof v === "string"
    ? v
    : typeof v === "bigint"
    ? v.toString()
    : JSON.stringify(v) ?? String(v);
  // JSON.stringify escapes control characters, so a quoted value is always one line.
  const plain = s !== "" && !/[\s"=]/.test(s) && JSON.stringify(s) === `"${s}"`;
  return plain ? s : JSON.stringify(s);
}

/** `level=… event=… key=value…` without the timestamp (pure, for tests and parsers). */
export function formatLogLine(level: LogLevel, event: string, fields: object = {}): string {
  let line = `level=${level} event=${event}`;
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    line += ` ${k}=${formatValue(v)}`;
  }
  return line;
}

export interface LoggerOptions {
  /** Fields added to every line after the event's own, e.g. `{ node: "n1" }`. */
  context?: Record<string, unknown>;
  /** Lines below this level are dropped (default "info"). */
  minLevel?: LogLevel;
  /** Where a finished line goes (default: stderr). */
  write?: (line: string) => void;
  /** The clock for `ts=` (default: the wall clock). */
  now?: () => Date;
}

/** A logger writing `ts=<ISO> level=… event=… key=value…` lines. */
export function makeLogger(opts: LoggerOptions = {}): Logger {
  const min = LEVELS.indexOf(opts.minLevel ?? "info");
  const write = opts.write ?? ((s: string) => console.error(s));
  const now = opts.now ?? (() => new Date());
  const context = opts.context ?? {};
  return (level, event, fields = {}) => {
    if (LEVELS.indexOf(level) < min) return;
    const extra = Object.entries(context).filter(([k]) => !(k in fields));
    write(
      `ts=${now().toISOString()} ` +
        formatLogLine(level, event, { ...fields, ...Object.fromEntries(extra) }),
    );
  };
}

/** A logger that drops everything (the default where a caller passes none). */
export const silentLogger: Logger = () => {};
