// Errors as values with the service's `extensions.code`, never strings to
// parse. Outcomes (INSUFFICIENT_CREDITS, BUDGET_EXCEEDED, DUPLICATE) are not
// errors: they come back in the payload's `outcome`.

/** The codes the service answers with, and the kit's own for the network. */
export type CreditsErrorCode =
  | "UNAUTHENTICATED"
  | "FORBIDDEN"
  | "NOT_FOUND"
  | "BAD_USER_INPUT"
  | "IDEMPOTENCY_CONFLICT"
  | "HOLD_NOT_ACTIVE"
  | "LIMIT_EXCEEDED"
  | "SERVICE_UNAVAILABLE"
  | "INTERNAL_SERVER_ERROR"
  | "TRUSTED_DOCUMENT_REQUIRED"
  | "UNKNOWN_DOCUMENT"
  /** The service could not be reached, or answered something not GraphQL. */
  | "NETWORK_ERROR"
  | (string & {});

/** One GraphQL error as the service sends it. */
export interface GraphQLErrorShape {
  message: string;
  path?: (string | number)[];
  extensions?: { code?: string; [key: string]: unknown };
}

/** A call refused or failed: `code` says why (the first error's code). */
export class CreditsError extends Error {
  readonly code: CreditsErrorCode;
  /** Every error of the answer, as sent. */
  readonly errors: GraphQLErrorShape[];
  /** The HTTP status, when an answer came back. */
  readonly status?: number;

  constructor(code: CreditsErrorCode, message: string, errors: GraphQLErrorShape[] = [], status?: number) {
    super(message);
    this.name = "CreditsError";
    this.code = code;
    this.errors = errors;
    this.status = status;
  }

  /** From a GraphQL answer's `errors`. */
  static fromErrors(errors: GraphQLErrorShape[], status?: number): CreditsError {
    const first = errors[0] ?? { message: "unknown error" };
    const code = typeof first.extensions?.code === "string" ? first.extensions.code : "INTERNAL_SERVER_ERROR";
    return new CreditsError(code, errors.map((error) => error.message).join("; "), errors, status);
  }
}

/** Whether `error` is a CreditsError with `code`. */
export function isCreditsError(error: unknown, code?: CreditsErrorCode): error is CreditsError {
  return error instanceof CreditsError && (code === undefined || error.code === code);
}
