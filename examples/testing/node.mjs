/**
 * A user's node module for switchboard/testing: what one node of the
 * cluster does once its switchboard is started, and the functions a test
 * may call in it. Plain JavaScript, so every runner loads it as it is.
 */

/** @param {import('switchboard/testing').NodeContext} ctx */
export default function node({ sb, id }) {
  sb.serve('hello', (name) => `hello ${name}, from node ${id}`);
  return {
    /** Asks `peer` to greet `name`, over RPC across the link under test. */
    greet: (peer, name) => sb.call('hello', name, { node: peer, timeoutMs: 2_000 }),
  };
}
