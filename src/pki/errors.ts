/**
 * A failure a user can cause (a bad CA Secret, an impossible request). `code` is stable and
 * machine-readable (it becomes a status reason); `message` says what is wrong and how to fix it and never
 * contains key material.
 */
export class PkiError extends Error {
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.name = 'PkiError';
    this.code = code;
  }
}
