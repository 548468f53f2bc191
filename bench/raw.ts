/**
 * The raw node:net side of the channel benchmarks (bench/channels.ts,
 * bench/steady.ts): u32 big-endian length-prefixed messages.
 */

/**
 * Length-prefixed (u32 BE) stream parser for the raw baseline: messages inside
 * a chunk are views; a message that straddles chunks is assembled once, into
 * a buffer of its own size (no repeated concatenation of the remainder).
 */
export function rawParser(onMessage: (body: Buffer) => void): (chunk: Buffer) => void {
  let head: Buffer | undefined; // a partial length prefix
  let body: Buffer | undefined; // the straddling message being filled
  let fill = 0;
  return (chunk) => {
    let pos = 0;
    if (head !== undefined) {
      chunk = Buffer.concat([head, chunk]);
      head = undefined;
    }
    if (body !== undefined) {
      const take = Math.min(body.length - fill, chunk.length);
      chunk.copy(body, fill, 0, take);
      fill += take;
      pos = take;
      if (fill < body.length) return;
      onMessage(body);
      body = undefined;
    }
    while (chunk.length - pos >= 4) {
      const len = chunk.readUInt32BE(pos);
      if (chunk.length - pos - 4 < len) {
        body = Buffer.allocUnsafe(len);
        fill = chunk.copy(body, 0, pos + 4);
        return;
      }
      onMessage(chunk.subarray(pos + 4, pos + 4 + len));
      pos += 4 + len;
    }
    if (pos < chunk.length) head = Buffer.from(chunk.subarray(pos));
  };
}
