// The drop zone: a button that opens the file picker, and a target for a dropped file.

/** Call `onFile(file)` for a file chosen through `button` and `input`, or dropped on `button`. */
export function acceptFiles(button, input, onFile) {
  button.addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    if (input.files.length) onFile(input.files[0]);
    input.value = ""; // choosing the same file again is a new choice
  });
  button.addEventListener("dragover", (event) => {
    event.preventDefault(); // without this the browser refuses the drop
    button.classList.add("dragging");
  });
  button.addEventListener("dragleave", () => button.classList.remove("dragging"));
  button.addEventListener("drop", (event) => {
    event.preventDefault();
    button.classList.remove("dragging");
    const file = event.dataTransfer?.files[0];
    if (file) onFile(file);
  });
  // A file dropped beside the zone must not replace the page with the file.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
}
