// Downloads built from a verbose_json body. SRT, VTT and text follow the server's own
// rules (src/stenostack/api/formats.py) exactly, so a file saved here is byte for byte the
// one `response_format=srt` (vtt, text) gives for the same audio and options.

// Python's str.strip() whitespace (str.isspace), which differs from JavaScript's trim():
// it includes \x1c-\x1f and \x85 but not \ufeff.
const PY_SPACE = "[\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
const PY_STRIP = new RegExp(`^${PY_SPACE}+|${PY_SPACE}+$`, "g");

function strip(text) {
  return text.replace(PY_STRIP, "");
}

// Python's round(): halves go to the even neighbour.
function roundHalfEven(value) {
  const rounded = Math.round(value);
  return Math.abs(value % 1) === 0.5 ? 2 * Math.round(value / 2) : rounded;
}

const pad = (number, width) => String(number).padStart(width, "0");

/** `HH:MM:SS,mmm` (SRT) or `HH:MM:SS.mmm` (VTT), rounded to the millisecond. */
export function subtitleTime(seconds, decimalMarker) {
  let millis = Math.max(roundHalfEven(seconds * 1000), 0);
  const hours = Math.floor(millis / 3_600_000);
  millis -= hours * 3_600_000;
  const minutes = Math.floor(millis / 60_000);
  millis -= minutes * 60_000;
  const secs = Math.floor(millis / 1000);
  millis -= secs * 1000;
  return `${pad(hours, 2)}:${pad(minutes, 2)}:${pad(secs, 2)}${decimalMarker}${pad(millis, 3)}`;
}

// "-->" inside a cue would end the cue's timing line for a subtitle parser.
const cueText = (text) => strip(text).replaceAll("-->", "->");
const vttEscaped = (text) => text.replaceAll("&", "&amp;").replaceAll("<", "&lt;");
const hasSpeaker = (segment) => segment.speaker !== undefined && segment.speaker !== null;

export function toSrt(segments) {
  let number = 0;
  return segments
    .filter((segment) => strip(segment.text))
    .map((segment) => {
      number += 1;
      const timing = `${subtitleTime(segment.start, ",")} --> ${subtitleTime(segment.end, ",")}`;
      let text = cueText(segment.text);
      if (hasSpeaker(segment)) text = `${segment.speaker}: ${text}`;
      return `${number}\n${timing}\n${text}\n\n`;
    })
    .join("");
}

export function toVtt(segments) {
  const blocks = ["WEBVTT\n\n"];
  for (const segment of segments) {
    if (!strip(segment.text)) continue;
    let text = vttEscaped(cueText(segment.text));
    if (hasSpeaker(segment)) {
      // A voice tag: players show the name, and captions styled per voice.
      text = `<v ${vttEscaped(segment.speaker).replaceAll(">", "&gt;")}>${text}`;
    }
    const timing = `${subtitleTime(segment.start, ".")} --> ${subtitleTime(segment.end, ".")}`;
    blocks.push(`${timing}\n${text}\n\n`);
  }
  return blocks.join("");
}

/** The `text` format: the text and a newline, or one line per speaker's turn. */
export function toText(verbose) {
  const segments = verbose.segments || [];
  if (!segments.some(hasSpeaker)) return `${verbose.text}\n`;
  const lines = [];
  let speaker;
  for (const segment of segments) {
    const text = strip(segment.text);
    if (!text) continue;
    if (lines.length && segment.speaker === speaker) lines[lines.length - 1] += ` ${text}`;
    else {
      lines.push(`${segment.speaker}: ${text}`);
      speaker = segment.speaker;
    }
  }
  return lines.map((line) => `${line}\n`).join("");
}

/** Each download: its file extension, MIME type and contents. */
export const DOWNLOADS = {
  txt: { type: "text/plain", build: (verbose) => toText(verbose) },
  srt: { type: "application/x-subrip", build: (verbose) => toSrt(verbose.segments || []) },
  vtt: { type: "text/vtt", build: (verbose) => toVtt(verbose.segments || []) },
  json: { type: "application/json", build: (verbose) => `${JSON.stringify(verbose, null, 2)}\n` },
};
