// How a request carries the cluster credential: `Authorization: Bearer <token>`. The one HTTP
// client writes it and the servers (the store API, the peer routes) check it, both here, so the
// credential's form changes in one place.

const enc = new TextEncoder();

/** The Authorization header's value for `token`. */
export function bearerHeader(token: string): string {
  return `Bearer ${token}`;
}

/** Whether an Authorization header presents `token`, compared in constant time (no early exit
 *  on the first differing byte). An empty token matches nothing. */
export function bearerMatches(header: string | undefined, token: string): boolean {
  if (!token || !header) return false;
  const got = enc.encode(header);
  const want = enc.encode(bearerHeader(token));
  let diff = got.length ^ want.length;
  for (let i = 0; i < want.length; i++) diff |= (got[i] ?? 0) ^ want[i];
  return diff === 0;
}
