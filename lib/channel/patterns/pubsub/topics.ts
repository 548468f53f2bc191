/**
 * Topics and patterns of pub-sub (NATS semantics): dot-separated tokens;
 * in patterns `*` matches exactly one token and `>` one or more trailing
 * tokens.
 */

/** Longest topic or pattern, in UTF-8 bytes. */
export const MAX_TOPIC_BYTES = 1024;

/**
 * Splits a topic or pattern into tokens, or returns an error message.
 * Tokens are non-empty and contain no whitespace; `*` and `>` may only
 * appear as whole tokens, in patterns, and `>` only last.
 */
export function parseSubject(s: unknown, pattern: boolean): string[] | string {
  if (typeof s !== 'string' || s.length === 0) return 'must be a non-empty string';
  if (Buffer.byteLength(s) > MAX_TOPIC_BYTES) return `longer than ${MAX_TOPIC_BYTES} bytes`;
  const tokens = s.split('.');
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.length === 0) return 'has an empty token';
    if (/\s/.test(t)) return 'contains whitespace';
    if (t === '*' || t === '>') {
      if (!pattern) return `has a wildcard token "${t}" (topics are literal)`;
      if (t === '>' && i !== tokens.length - 1) return '">" must be the last token';
    } else if (t.includes('*') || t.includes('>')) {
      return `"${t}": wildcards must be whole tokens`;
    }
  }
  return tokens;
}

/** True if `pattern` is a valid subscription pattern. */
export function isValidPattern(pattern: string): boolean {
  return typeof parseSubject(pattern, true) !== 'string';
}

/** True if `topic` is a valid topic to publish on. */
export function isValidTopic(topic: string): boolean {
  return typeof parseSubject(topic, false) !== 'string';
}

/**
 * NATS semantics: `*` matches exactly one token, `>` one or more trailing
 * tokens; everything else matches itself.
 */
export function topicMatches(pattern: string, topic: string): boolean {
  const p = parseSubject(pattern, true);
  const t = parseSubject(topic, false);
  return typeof p !== 'string' && typeof t !== 'string' && tokensMatch(p, t);
}

export function tokensMatch(pattern: readonly string[], topic: readonly string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    if (p === '>') return topic.length > i;
    if (i >= topic.length) return false;
    if (p !== '*' && p !== topic[i]) return false;
  }
  return topic.length === pattern.length;
}
