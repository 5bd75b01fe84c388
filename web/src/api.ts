// The API client: the session token, the error shape and the purpose header that reads
// of personal data need.

export interface ErrorDetail {
  at: string;
  reason: string;
}

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public details: ErrorDetail[] = [],
  ) {
    super(message);
  }
}

export interface User {
  id: number;
  username: string;
  display_name: string;
  role: string;
  jurisdiction: string;
}

export interface Session {
  token: string;
  user: User;
  permissions: string[];
}

const KEY = "fangkong.session";
let session: Session | null = null;
let onSignedOut: (() => void) | null = null;
let onReachability: ((reachable: boolean) => void) | null = null;

export function currentSession(): Session | null {
  if (!session) {
    const stored = sessionStorage.getItem(KEY);
    if (stored) session = JSON.parse(stored) as Session;
  }
  return session;
}

export function setSession(s: Session | null) {
  session = s;
  if (s) sessionStorage.setItem(KEY, JSON.stringify(s));
  else sessionStorage.removeItem(KEY);
}

export function whenSignedOut(f: () => void) {
  onSignedOut = f;
}

export function whenReachability(f: (reachable: boolean) => void) {
  onReachability = f;
}

export function can(permission: string): boolean {
  return currentSession()?.permissions.includes(permission) ?? false;
}

export interface Options {
  method?: string;
  body?: unknown;
  purpose?: string;
  headers?: Record<string, string>;
}

export async function call<T>(path: string, options: Options = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json", ...options.headers };
  const s = currentSession();
  if (s) headers.Authorization = `Bearer ${s.token}`;
  // Header values must be ASCII: the purpose travels percent-encoded (the server decodes it).
  if (options.purpose) headers["X-Purpose"] = encodeURIComponent(options.purpose);
  let body: BodyInit | undefined;
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.body);
  }
  let response: Response;
  try {
    response = await fetch(`/api/v1${path}`, { method: options.method ?? "GET", headers, body });
  } catch {
    onReachability?.(false);
    throw new ApiError(0, "unreachable", "the server cannot be reached");
  }
  onReachability?.(true);
  const text = await response.text();
  const json = text ? safeJson(text) : null;
  if (!response.ok) {
    const error = (json as { error?: { code: string; message: string; details?: ErrorDetail[] } } | null)?.error;
    if (response.status === 401 && s && path !== "/auth/login") {
      setSession(null);
      onSignedOut?.();
    }
    throw new ApiError(response.status, error?.code ?? "http_" + response.status, error?.message ?? response.statusText, error?.details ?? []);
  }
  return json as T;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

export const get = <T>(path: string, purpose?: string) => call<T>(path, { purpose });
export const post = <T>(path: string, body: unknown, purpose?: string) => call<T>(path, { method: "POST", body, purpose });

export async function signIn(username: string, password: string, totp?: string): Promise<Session> {
  const reply = await call<{ token: string; user: User }>("/auth/login", {
    method: "POST",
    body: { username, password, totp: totp || undefined },
  });
  setSession({ token: reply.token, user: reply.user, permissions: [] });
  const me = await get<{ user: User; permissions: string[] }>("/auth/me");
  const s = { token: reply.token, user: me.user, permissions: me.permissions };
  setSession(s);
  return s;
}

export async function signOut() {
  try {
    await call("/auth/logout", { method: "POST" });
  } catch {
    // Signed out locally whatever the server said.
  }
  setSession(null);
}

export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}
