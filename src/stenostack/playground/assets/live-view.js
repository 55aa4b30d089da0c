// Live turns as they are spoken: interim text while a turn is transcribed, then its final
// text. One list item per turn, in the order the turns began.

export class LiveView {
  constructor(list) {
    this.list = list;
    this.turns = new Map(); // item id -> <li>
  }

  reset() {
    this.list.replaceChildren();
    this.turns.clear();
  }

  turn(itemId) {
    let item = this.turns.get(itemId);
    if (!item) {
      item = document.createElement("li");
      item.className = "turn interim";
      item.dataset.itemId = itemId;
      this.list.append(item);
      this.turns.set(itemId, item);
    }
    return item;
  }

  started(itemId) {
    this.turn(itemId);
  }

  delta(itemId, text) {
    this.turn(itemId).textContent += text;
  }

  completed(itemId, transcript) {
    const item = this.turn(itemId);
    item.textContent = transcript;
    item.className = "turn final";
    // A turn that was silence after all: nothing to show.
    if (!transcript.trim()) this.remove(itemId);
  }

  failed(itemId, message) {
    const item = this.turn(itemId);
    item.className = "turn failed";
    item.textContent = message;
  }

  remove(itemId) {
    this.turns.get(itemId)?.remove();
    this.turns.delete(itemId);
  }
}
