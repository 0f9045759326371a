// One structured, greppable line per meaningful event on stderr:
//   level=info event=lease_acquired subnet=10.5.3.0/24 public_ip=192.0.2.1
export type Level = "info" | "warn" | "error";
export type Logger = (level: Level, event: string, fields?: object) => void;

function fmtValue(v: unknown): string {
  const s = typeof v === "string" ? v : typeof v === "bigint" ? v.toString() : JSON.stringify(v);
  return /^[^\s"=]*$/.test(s) && s !== "" ? s : JSON.stringify(s);
}

export function formatLogLine(level: Level, event: string, fields: object = {}): string {
  let line = `level=${level} event=${event}`;
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    line += ` ${k}=${fmtValue(v)}`;
  }
  return line;
}

export function makeLogger(node: string, write = (s: string) => console.error(s)): Logger {
  return (level, event, fields = {}) =>
    write(formatLogLine(level, event, node ? { ...fields, node } : fields));
}
