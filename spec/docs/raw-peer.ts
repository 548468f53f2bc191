/**
 * A raw socket that speaks switchboard frames, for the specs of
 * docs/wire-protocol.md that play a node from the document's own pieces:
 * what arrives is decoded and queued, what is sent is written as given.
 */
import net from 'node:net';
import { FrameDecoder } from '../../lib/protocol/decoder.js';
import { encodeFrame } from '../../lib/protocol/frame.js';

export interface Frame {
  readonly type: number;
  readonly stream: number;
  readonly payload: Buffer;
}

/** A frame to send. */
export interface RawOut {
  readonly type: number;
  readonly stream?: number;
  readonly payload: Buffer;
}

/** A socket that speaks frames: what arrives is decoded and queued. */
export class RawPeer {
  readonly frames: Frame[] = [];
  readonly closed: Promise<void>;
  private read = 0;
  private wake: (() => void) | undefined;
  private ended = false;
  private readonly decoder = new FrameDecoder(
    {
      onFrame: (type, _flags, stream, payload) => {
        this.frames.push({ type, stream, payload: Buffer.from(payload) });
        this.wake?.();
      },
    },
    { maxFramePayload: 1 << 20 },
  );

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => this.decoder.push(chunk));
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.ended = true;
        this.wake?.();
        resolve();
      }),
    );
  }

  static connect(port: number): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawPeer(socket));
      });
    });
  }

  /** The next frame not yet taken; rejects when the socket closed first, or after `timeoutMs`. */
  async next(timeoutMs = 10_000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames[this.read];
      if (f !== undefined) {
        this.read++;
        return f;
      }
      if (this.ended) throw new Error('closed while waiting for a frame');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          this.wake = undefined;
          resolve();
        };
      });
    }
  }

  /** The next frame of `type`, skipping others (SETTINGS, PING, ACK...). */
  async nextOf(type: number): Promise<Frame> {
    for (;;) {
      const f = await this.next();
      if (f.type === type) return f;
    }
  }

  /** Writes the frames in one write. */
  send(frames: readonly RawOut[]): void {
    this.socket.write(
      Buffer.concat(frames.map((f) => encodeFrame(f.type, 0, f.stream ?? 0, f.payload))),
    );
  }

  destroy(): void {
    this.socket.destroy();
  }
}
