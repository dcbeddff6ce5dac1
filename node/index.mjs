// ES module entry: the same objects as the CommonJS entry (index.js).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const memsilo = require('./index.js');

export const {
  open,
  connect,
  serve,
  Memsilo,
  MemsiloError,
  InvalidArgumentError,
  UnauthorizedError,
  ForbiddenError,
  NotFoundError,
  ConflictError,
  QuotaExceededError,
  RateLimitedError,
  PayloadTooLargeError,
  InternalError,
  MethodNotAllowedError,
  OPERATIONS,
  ERROR_CODES,
} = memsilo;

export default memsilo;
