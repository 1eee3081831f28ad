/** A stream that does not follow docs/FORMAT.md: the message names the chunk and byte offset. */
export class FormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FormatError";
  }
}

/** A read past the end of bytes that are only a prefix of what will arrive (a ByteReader made with
 * `partial`): not a problem of the stream, the rest has not come yet. */
export class Truncated extends FormatError {
  constructor(message: string) {
    super(message);
    this.name = "Truncated";
  }
}
