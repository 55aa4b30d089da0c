// A live transcription session over the Realtime API's WebSocket: audio in, turns out.

import { ApiError, realtimeTarget } from "./api.js";

const RATE = 24000; // OpenAI's PCM rate; the server takes it as is
const FINISH_TIMEOUT_MS = 30_000;

function base64(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  // In slices: String.fromCharCode takes its bytes as arguments, and arguments are bounded.
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/**
 * handlers: onSpeechStarted(itemId), onDelta(itemId, text), onCompleted(itemId, transcript),
 * onFailed(itemId, message), onError(message), onClosed(reason) (a close the page did not ask for).
 */
export class LiveSession {
  static RATE = RATE;

  constructor({ model, language }, handlers) {
    this.model = model;
    this.language = language || null;
    this.handlers = handlers;
    this.socket = null;
    this.speaking = false; // between speech_started and its commit
    this.pending = new Set(); // committed turns not transcribed yet
    this.finishing = false;
    this.settled = null; // resolves once nothing is pending while finishing
  }

  /** Connect and configure; resolves once the server took the configuration. */
  open() {
    const { url, protocols } = realtimeTarget(this.model);
    return new Promise((resolve, reject) => {
      let socket;
      try {
        socket = new WebSocket(url, protocols);
      } catch (error) {
        // A key with characters a subprotocol cannot hold.
        reject(new ApiError(`Could not open the live session: ${error.message}`));
        return;
      }
      this.socket = socket;
      let configured = false;
      socket.onmessage = ({ data }) => {
        const event = JSON.parse(data);
        if (!configured) {
          if (event.type === "session.created") this.configure();
          else if (event.type === "session.updated") {
            configured = true;
            resolve();
          } else if (event.type === "error") reject(new ApiError(event.error.message));
          return;
        }
        this.onEvent(event);
      };
      socket.onclose = ({ code, reason }) => {
        if (!configured) {
          reject(
            new ApiError(
              reason ||
                "The server refused the live session. If it needs an API key, enter it above.",
            ),
          );
        } else if (!this.finishing) {
          this.handlers.onClosed(reason || `The live session closed (code ${code}).`);
        }
        this.settled?.();
      };
    });
  }

  configure() {
    this.send({
      type: "session.update",
      session: {
        type: "transcription",
        audio: {
          input: {
            format: { type: "audio/pcm", rate: RATE },
            transcription: { model: this.model, language: this.language },
            turn_detection: { type: "server_vad" },
          },
        },
      },
    });
  }

  send(event) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(event));
  }

  appendPcm(buffer) {
    this.send({ type: "input_audio_buffer.append", audio: base64(buffer) });
  }

  onEvent(event) {
    const { handlers } = this;
    switch (event.type) {
      case "input_audio_buffer.speech_started":
        this.speaking = true;
        handlers.onSpeechStarted(event.item_id);
        break;
      case "input_audio_buffer.committed":
        this.speaking = false;
        this.pending.add(event.item_id);
        break;
      case "conversation.item.input_audio_transcription.delta":
        handlers.onDelta(event.item_id, event.delta);
        break;
      case "conversation.item.input_audio_transcription.completed":
        handlers.onCompleted(event.item_id, event.transcript);
        this.done(event.item_id);
        break;
      case "conversation.item.input_audio_transcription.failed":
        handlers.onFailed(event.item_id, event.error.message);
        this.done(event.item_id);
        break;
      case "error":
        // Stopping in silence commits too little audio; that refusal is expected.
        if (this.finishing && event.error.code === "input_audio_buffer_commit_empty") {
          this.speaking = false;
          this.checkSettled();
        } else handlers.onError(event.error.message);
        break;
      default:
        break; // session.updated, speech_stopped, item.added/done: nothing to show
    }
  }

  done(itemId) {
    this.pending.delete(itemId);
    this.checkSettled();
  }

  checkSettled() {
    if (this.finishing && !this.speaking && !this.pending.size) this.settled?.();
  }

  /** Commit the turn being spoken, wait for every turn's text, then close. */
  async finish() {
    this.finishing = true;
    if (this.speaking) this.send({ type: "input_audio_buffer.commit" });
    const open = this.socket?.readyState === WebSocket.OPEN;
    if (open && (this.speaking || this.pending.size)) {
      await new Promise((resolve) => {
        this.settled = resolve;
        setTimeout(resolve, FINISH_TIMEOUT_MS);
      });
    }
    this.socket?.close(1000, "done");
  }

  /** Close at once, dropping whatever is still being transcribed. */
  abort() {
    this.finishing = true;
    this.socket?.close(1000, "stopped");
  }
}
