// The microphone as 16-bit mono PCM at the session's rate, in ~100 ms pieces.

const WORKLET_URL = "/playground/pcm-worklet.js";

export class Microphone {
  /** An AudioContext made during the user's click: made later, a browser may keep it
   * suspended for want of a user gesture. */
  static context() {
    return new AudioContext();
  }

  /** Start capturing into `context`; `onPcm(ArrayBuffer)` gets each piece. Throws if access
   * is denied. */
  static async open(context, onPcm, rate = 24000) {
    // Browsers give the microphone (and audio worklets) only to secure pages: HTTPS, or
    // this very machine.
    if (!window.isSecureContext || !navigator.mediaDevices || !context.audioWorklet) {
      throw new Error(
        "The browser allows the microphone only on a secure page: open the playground " +
          "over HTTPS, or as http://127.0.0.1 or http://localhost on the server's machine " +
          "(an SSH tunnel does it: ssh -L 8000:127.0.0.1:8000 server)."
      );
    }
    // The audio graph is ready before the microphone opens, so no speech is lost at the
    // start while the worklet loads.
    let stream = null;
    try {
      await context.audioWorklet.addModule(WORKLET_URL);
      // Unprocessed: echo cancelling and noise suppression garble the start of speech, and
      // the model copes with noise better than with their artefacts.
      stream = await navigator.mediaDevices.getUserMedia({
        audio: {
          channelCount: 1,
          echoCancellation: false,
          noiseSuppression: false,
          autoGainControl: false,
        },
      });
      const source = context.createMediaStreamSource(stream);
      const node = new AudioWorkletNode(context, "pcm-capture", {
        processorOptions: { targetRate: rate, pieceMs: 100 },
      });
      source.connect(node);
      // Connected to the output (it writes only silence) so the browser keeps it running.
      node.connect(context.destination);
      await context.resume();
      return new Microphone(stream, context, node, onPcm);
    } catch (error) {
      stream?.getTracks().forEach((track) => track.stop());
      if (error.name === "NotAllowedError") {
        throw new Error("The browser was not allowed to use the microphone.");
      }
      if (error.name === "NotFoundError") throw new Error("The browser found no microphone.");
      throw error; // the caller, who made the context, closes it
    }
  }

  constructor(stream, context, node, onPcm) {
    this.stream = stream;
    this.context = context;
    this.node = node;
    this.flushed = null;
    node.port.onmessage = ({ data }) => {
      if (data.pcm) onPcm(data.pcm);
      if (data.flushed) this.flushed?.();
    };
  }

  /** Stop capturing, after handing on the samples still gathered into a piece. */
  async close() {
    this.stream.getTracks().forEach((track) => track.stop());
    await new Promise((resolve) => {
      this.flushed = resolve;
      this.node.port.postMessage("flush");
      setTimeout(resolve, 500); // a suspended context never answers
    });
    this.node.disconnect();
    await this.context.close();
  }
}
