// Runs on the audio thread: the microphone's samples, mixed to mono and resampled to the
// rate the realtime session takes, posted as 16-bit PCM in pieces of about 100 ms.
// Messages out: {pcm: ArrayBuffer} for each piece, {flushed: true} after a "flush".

class PcmCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate = 24000, pieceMs = 100 } = options.processorOptions || {};
    this.step = sampleRate / targetRate; // input samples per output sample
    // A box filter over about one step of input keeps most of what would fold back
    // (alias) when dropping samples; cheap, and plenty for speech.
    this.taps = new Float32Array(Math.max(1, Math.round(this.step)));
    this.tap = 0;
    this.tapSum = 0;
    this.previous = 0; // the last filtered sample of the previous block
    this.position = 0; // where the next output sample lies, counted from that sample
    this.piece = new Int16Array(Math.round((targetRate * pieceMs) / 1000));
    this.filled = 0;
    this.port.onmessage = (event) => {
      if (event.data === "flush") {
        this.post(this.filled);
        this.port.postMessage({ flushed: true });
      }
    };
  }

  filtered(sample) {
    this.tapSum += sample - this.taps[this.tap];
    this.taps[this.tap] = sample;
    this.tap = (this.tap + 1) % this.taps.length;
    return this.tapSum / this.taps.length;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || !channels.length) return true;
    const length = channels[0].length;
    // x[0] is the previous block's last sample; x[1..length] are this block's.
    const x = new Float32Array(length + 1);
    x[0] = this.previous;
    for (let i = 0; i < length; i++) {
      let sum = 0;
      for (const channel of channels) sum += channel[i];
      x[i + 1] = this.filtered(sum / channels.length);
    }
    // Linear interpolation at each output position within [0, length).
    while (this.position < length) {
      const index = Math.floor(this.position);
      const fraction = this.position - index;
      const value = x[index] + (x[index + 1] - x[index]) * fraction;
      const clamped = Math.max(-1, Math.min(1, value));
      this.piece[this.filled++] = clamped < 0 ? clamped * 0x8000 : clamped * 0x7fff;
      if (this.filled === this.piece.length) this.post(this.filled);
      this.position += this.step;
    }
    this.position -= length;
    this.previous = x[length];
    return true; // keep running until the node is disconnected
  }

  post(count) {
    if (!count) return;
    const pcm = this.piece.slice(0, count).buffer;
    this.port.postMessage({ pcm }, [pcm]);
    this.filled = 0;
  }
}

registerProcessor("pcm-capture", PcmCapture);
