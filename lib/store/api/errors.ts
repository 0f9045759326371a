// Errors as etcd's JSON gateway reports them: a body {"error","message","code"} with the gRPC
// code, and the HTTP status grpc-gateway derives from that code.

import { StoreError, type StoreErrorCode } from "../errors.ts";

export const GrpcCode = {
  OK: 0,
  Canceled: 1,
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  AlreadyExists: 6,
  PermissionDenied: 7,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  Aborted: 10,
  OutOfRange: 11,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
  DataLoss: 15,
  Unauthenticated: 16,
} as const;

const HTTP_STATUS: Record<number, number> = {
  0: 200,
  1: 408,
  2: 500,
  3: 400,
  4: 504,
  5: 404,
  6: 409,
  7: 403,
  8: 429,
  9: 412,
  10: 409,
  11: 400,
  12: 501,
  13: 500,
  14: 503,
  15: 500,
  16: 401,
};

export function httpStatusOf(grpcCode: number): number {
  return HTTP_STATUS[grpcCode] ?? 500;
}

/** An error answered to the client as-is. */
export class ApiError extends Error {
  readonly grpcCode: number;
  constructor(grpcCode: number, message: string) {
    super(message);
    this.name = "ApiError";
    this.grpcCode = grpcCode;
  }
}

export function invalidArgument(message: string): ApiError {
  return new ApiError(GrpcCode.InvalidArgument, message);
}

const STORE_CODES: Record<StoreErrorCode, number> = {
  unavailable: GrpcCode.Unavailable,
  compacted: GrpcCode.OutOfRange,
  futureRevision: GrpcCode.OutOfRange,
  leaseNotFound: GrpcCode.NotFound,
  leaseExists: GrpcCode.FailedPrecondition,
  leaseTtlTooLarge: GrpcCode.OutOfRange,
  invalidArgument: GrpcCode.InvalidArgument,
  tooLarge: GrpcCode.InvalidArgument,
  internal: GrpcCode.Internal,
};

/** Any thrown value as an ApiError: StoreErrors keep their meaning; anything else is internal. */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof StoreError) return new ApiError(STORE_CODES[e.code] ?? 13, e.message);
  const detail = e instanceof Error ? e.message : String(e);
  return new ApiError(GrpcCode.Internal, `twill: internal error: ${detail}`);
}

export function errorBody(e: ApiError): { error: string; message: string; code: number } {
  return { error: e.message, message: e.message, code: e.grpcCode };
}

/** grpc-gateway's in-stream error object (once a streaming response has begun). */
export function streamErrorBody(e: ApiError): unknown {
  return {
    error: {
      grpc_code: e.grpcCode,
      http_code: httpStatusOf(e.grpcCode),
      message: e.message,
      http_status: STATUS_TEXT[httpStatusOf(e.grpcCode)] ?? "Internal Server Error",
    },
  };
}

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  412: "Precondition Failed",
  500: "Internal Server Error",
  503: "Service Unavailable",
};
