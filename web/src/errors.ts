/** A stream that does not follow docs/FORMAT.md: the message names the chunk and byte offset. */
export class FormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FormatError";
  }
}
