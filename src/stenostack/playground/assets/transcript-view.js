// The transcript of a file on its timeline: segments with their start times, words as
// spans. The word being played is highlighted; clicking a word (or Enter on it) plays from
// there. Words form one tab stop: arrow keys move between them (a roving tabindex), so a
// long transcript does not bury the rest of the page under hundreds of tab stops.

/** `m:ss` or `h:mm:ss`, for a segment's start. */
export function clock(seconds) {
  const whole = Math.max(Math.floor(seconds), 0);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = String(whole % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/** Give each segment the words whose middle falls in it (verbose_json lists words apart). */
function wordsBySegment(segments, words) {
  const grouped = segments.map(() => []);
  let index = 0;
  for (const word of words) {
    const middle = (word.start + word.end) / 2;
    while (index < segments.length - 1 && middle >= segments[index].end) index += 1;
    grouped[index]?.push(word);
  }
  return grouped;
}

export class TranscriptView {
  constructor(container, player) {
    this.container = container;
    this.player = player;
    this.units = []; // {start, end, element}, in time order: words, or whole segments
    this.current = null;
    this.pending = null; // text of deltas whose segment has not come yet
    this.frame = 0;
    container.addEventListener("click", (event) => this.onClick(event));
    container.addEventListener("keydown", (event) => this.onKey(event));
    for (const kind of ["timeupdate", "seeked"]) {
      player.addEventListener(kind, () => this.highlight(player.currentTime));
    }
    // timeupdate comes only ~4 times a second: follow the words smoothly while playing.
    player.addEventListener("play", () => this.follow());
  }

  reset() {
    this.container.replaceChildren();
    this.units = [];
    this.current = null;
    this.pending = null;
    this.setState("empty");
  }

  /** "empty", "streaming", "done" or "failed" (styles and tests read it). */
  setState(state) {
    this.container.dataset.state = state;
    this.container.setAttribute("aria-busy", String(state === "streaming"));
  }

  addDelta(text) {
    if (!this.pending) {
      this.pending = document.createElement("p");
      this.pending.className = "pending";
      this.container.append(this.pending);
    }
    this.pending.textContent += text;
  }

  /** A segment as its stream event came: {id, start, end, text, words?, speaker?}. */
  addSegment(segment) {
    this.pending?.remove();
    this.pending = null;
    this.container.append(this.renderSegment(segment, segment.words || []));
  }

  /** Replace what the stream showed with the final verbose_json. */
  showFinal(verbose) {
    const segments = verbose.segments || [];
    const grouped = wordsBySegment(segments, verbose.words || []);
    this.units = [];
    this.current = null;
    this.container.replaceChildren(
      ...segments.map((segment, index) => this.renderSegment(segment, grouped[index])),
    );
    this.pending = null;
    this.setState("done");
    this.highlight(this.player.currentTime);
  }

  renderSegment(segment, words) {
    const row = document.createElement("div");
    row.className = "segment";
    row.dataset.start = segment.start;
    row.dataset.end = segment.end;
    const time = document.createElement("span");
    time.className = "time";
    time.textContent = clock(segment.start);
    const text = document.createElement("p");
    text.className = "text";
    if (segment.speaker) {
      const speaker = document.createElement("span");
      speaker.className = "speaker";
      speaker.textContent = `${segment.speaker}: `;
      text.append(speaker);
    }
    const said = segment.text.trim();
    if (!words.length) {
      // No word times (a model that gives none, or a translation): the segment is one unit.
      if (said) text.append(this.wordSpan(said, segment, "word whole"));
    } else {
      // Words come without punctuation: find each in the segment's text and keep the
      // text between them, so the transcript reads as the segment says it.
      let cursor = 0;
      for (const word of words) {
        const spoken = word.word.trim();
        const at = said.indexOf(spoken, cursor);
        if (at < 0) {
          text.append(" ", this.wordSpan(spoken, word, "word"));
          continue;
        }
        text.append(said.slice(cursor, at), this.wordSpan(spoken, word, "word"));
        cursor = at + spoken.length;
      }
      text.append(said.slice(cursor));
    }
    row.append(time, text);
    return row;
  }

  wordSpan(label, { start, end }, className) {
    const word = document.createElement("span");
    word.className = className;
    word.setAttribute("role", "button");
    word.dataset.start = start;
    word.dataset.end = end;
    word.textContent = label;
    word.tabIndex = this.units.length ? -1 : 0; // the first word is the tab stop
    this.units.push(unitOf(word));
    return word;
  }

  seekTo(element) {
    this.player.currentTime = Number(element.dataset.start);
    this.highlight(this.player.currentTime);
    this.player.play().catch(() => {}); // a browser may refuse; the seek still stands
  }

  onClick(event) {
    const word = event.target.closest(".word");
    if (word) {
      this.focusWord(word);
      this.seekTo(word);
    }
  }

  onKey(event) {
    const word = event.target.closest(".word");
    if (!word) return;
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      this.seekTo(word);
      return;
    }
    const words = [...this.container.querySelectorAll(".word")];
    const at = words.indexOf(word);
    const moves = {
      ArrowRight: at + 1,
      ArrowDown: at + 1,
      ArrowLeft: at - 1,
      ArrowUp: at - 1,
      Home: 0,
      End: words.length - 1,
    };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const next = words[Math.min(Math.max(moves[event.key], 0), words.length - 1)];
    this.focusWord(next);
  }

  focusWord(word) {
    for (const other of this.container.querySelectorAll('.word[tabindex="0"]')) other.tabIndex = -1;
    word.tabIndex = 0;
    word.focus();
  }

  follow() {
    cancelAnimationFrame(this.frame);
    const step = () => {
      this.highlight(this.player.currentTime);
      if (!this.player.paused && !this.player.ended) this.frame = requestAnimationFrame(step);
    };
    this.frame = requestAnimationFrame(step);
  }

  /** Mark the word being said at `time`: the last one started by then. */
  highlight(time) {
    let low = 0;
    let high = this.units.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (this.units[middle].start <= time) low = middle + 1;
      else high = middle;
    }
    const unit = low ? this.units[low - 1] : null;
    if (unit?.element === this.current) return;
    this.current?.classList.remove("current");
    this.current?.removeAttribute("aria-current");
    this.current = unit?.element ?? null;
    if (!this.current) return;
    this.current.classList.add("current");
    this.current.setAttribute("aria-current", "true");
    if (!this.player.paused) this.current.scrollIntoView({ block: "nearest" });
  }
}

function unitOf(element) {
  return { start: Number(element.dataset.start), end: Number(element.dataset.end), element };
}
