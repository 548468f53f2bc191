/**
 * What the cluster layer reports: the events of `events$`, the snapshot of
 * one peer that `peers()` returns, and the interface through which the
 * channel layer receives what the links carry (docs/guide.md, "Events").
 */
import type { PeerLostError, SwitchboardError } from '../errors.js';

/** Everything the switchboard reports, discriminated on `type`. */
export type SwitchboardEvent =
  | { readonly type: 'peer-up'; readonly node: number; readonly incarnation: string }
  | { readonly type: 'peer-suspect'; readonly node: number; readonly reason: string }
  | { readonly type: 'peer-reconnected'; readonly node: number }
  | { readonly type: 'peer-down'; readonly node: number; readonly error: PeerLostError }
  | { readonly type: 'peer-restarted'; readonly node: number; readonly incarnation: string }
  | {
      readonly type: 'link-error';
      readonly node: number | undefined;
      readonly error: SwitchboardError;
    }
  | {
      readonly type: 'auth-failure';
      readonly node: number | undefined;
      readonly remoteAddress: string | undefined;
      readonly error: SwitchboardError;
    }
  | {
      readonly type: 'drop';
      readonly channel: string;
      readonly count: number;
      readonly reason: string;
    }
  | {
      /** Member: a client (Switchboard.connect) linked; `client` is its id (its incarnation). */
      readonly type: 'client-up';
      readonly client: string;
      readonly address: string | undefined;
    }
  | {
      /** Member: a client's session ended (it closed, or went quiet past deadPeerMs). */
      readonly type: 'client-down';
      readonly client: string;
      readonly error: PeerLostError;
    }
  | { readonly type: 'error'; readonly error: Error };

/** The state of one peer, as `peers()` reports it. */
export type PeerState = 'connecting' | 'up' | 'suspect' | 'down';

/** A snapshot of one peer. */
export interface PeerInfo {
  readonly node: number;
  readonly address: string;
  readonly tags: readonly string[];
  readonly state: PeerState;
  /** Hex incarnation id of the peer's current session, if any. */
  readonly incarnation: string | undefined;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly framesIn: number;
  readonly framesOut: number;
  /** Bytes queued or sent but not yet acknowledged. */
  readonly bufferedBytes: number;
  /** Last heartbeat round trip, ms. */
  readonly rttMs: number | undefined;
}

/** A snapshot of one client linked to a member, as `clients()` and `stats().clients` report it. */
export interface ClientInfo {
  /** The client's id: its incarnation (hex), new at every start of the client process. */
  readonly client: string;
  /** Where it connected from. */
  readonly address: string | undefined;
  /** `up`, or `suspect` while it is silent or reconnecting (within deadPeerMs). */
  readonly state: 'up' | 'suspect';
  /** When it linked, ms since the epoch. */
  readonly since: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** Bytes queued or sent to it but not yet acknowledged. */
  readonly bufferedBytes: number;
  /** Last heartbeat round trip, ms. */
  readonly rttMs: number | undefined;
}

/** Receives what the links carry. The channel layer implements it. */
export interface ClusterHandler {
  onMessage(peer: number, stream: number, flags: number, message: Buffer): void;
  /** A message refused for being over this node's maxMessageSize (nothing of it was kept). */
  onOversize?(peer: number, stream: number, size: number): void;
  onControl(peer: number, type: number, flags: number, stream: number, payload: Buffer): void;
  onWritable(peer: number): void;
  /** A new session with `peer` began (first contact, or a new incarnation). */
  onSessionStart(peer: number): void;
  /** The session with `peer` ended: everything in flight to it has an unknown fate. */
  onSessionEnd(peer: number, reason: PeerLostError): void;
  /** A stale session with `peer` (see {@link Cluster.fresh}) is confirmed: what it holds may go. */
  onConfirmed?(peer: number): void;
  /**
   * The session with `peer` is ending by agreement (it said GOAWAY, or this
   * node is about to): queue the last delivery reports for it now, and hand
   * out nothing more of what it sent.
   */
  finalReports?(peer: number): void;
  /** Messages sent to `peer` not yet known delivered (a graceful close waits for none). */
  inflight?(peer: number): number;
  /** `peer` became suspect, or healthy again ({@link Cluster.healthy}). */
  onHealth?(peer: number): void;
}
