// Names of jurisdictions and codes, loaded once per session.

import { get } from "./api";
import { nameOf } from "./i18n";
import type { Code, JurisdictionNode } from "./types";

let nodes: Map<string, JurisdictionNode> | null = null;
let loading: Promise<void> | null = null;
const codes = new Map<string, Code[]>();

export async function loadJurisdictions() {
  if (nodes) return;
  loading ??= get<JurisdictionNode[] | { jurisdictions: JurisdictionNode[] }>("/jurisdictions")
    .then((reply) => {
      const list = Array.isArray(reply) ? reply : reply.jurisdictions;
      nodes = new Map(list.map((n) => [n.code, n]));
    })
    .catch(() => {
      loading = null;
    });
  await loading;
}

export function place(code: string | null | undefined): string {
  if (!code) return "—";
  const node = nodes?.get(code);
  return node ? nameOf(node) : code;
}

export async function loadCodes(kind: string): Promise<Code[]> {
  const known = codes.get(kind);
  if (known) return known;
  const reply = await get<Code[] | { codes: Code[] }>(`/codes/${kind}?active=true`);
  const list = Array.isArray(reply) ? reply : reply.codes;
  codes.set(kind, list);
  return list;
}

export function codeName(kind: string, code: string | null | undefined): string {
  if (!code) return "—";
  const found = codes.get(kind)?.find((c) => c.code === code);
  return found ? nameOf(found) : code;
}
