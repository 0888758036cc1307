/**
 * HTTP/2 settings of the tunnel, shared by both ends. The defaults are
 * ztunnel's (istio/ztunnel src/config.rs: 4 MiB stream window, 1 MiB frames;
 * a larger session window so one bulk stream does not starve the others) and
 * sized for bulk transfer: with HTTP/2's default 64 KiB windows a stream
 * stalls on every round trip.
 */
import type { Settings } from 'node:http2';

/** The HBONE port, by Istio's convention. */
export const hbonePort = 15008;

export interface TunnelSettings {
  /** SETTINGS_INITIAL_WINDOW_SIZE: how much one stream may send before the receiver acknowledges. */
  streamWindowBytes: number;
  /** The connection-level flow-control window (WINDOW_UPDATE on stream 0). */
  sessionWindowBytes: number;
  /** SETTINGS_MAX_FRAME_SIZE we accept: 16 KiB to 16 MiB - 1. */
  maxFrameBytes: number;
  /** Node's `maxSessionMemory` in MiB: received data not yet consumed counts against it. */
  maxSessionMemoryMiB: number;
}

const MiB = 1024 * 1024;

export const defaultTunnelSettings: Readonly<TunnelSettings> = {
  streamWindowBytes: 4 * MiB,
  sessionWindowBytes: 16 * MiB,
  maxFrameBytes: 1 * MiB,
  // Room for a full session window buffered behind a slow consumer, plus headers.
  maxSessionMemoryMiB: 64,
};

/** The SETTINGS frame either end sends. */
export function http2Settings(settings: TunnelSettings): Settings {
  return {
    initialWindowSize: settings.streamWindowBytes,
    maxFrameSize: settings.maxFrameBytes,
    enablePush: false,
  };
}
